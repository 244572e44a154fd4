#pragma once

#include <chrono>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "sockstate/common/error.h"
#include "sockstate/sink/sink.h"
#include "sockstate/sink/sink_config.h"

namespace sockstate::sink {

// The daemon's sinks across reloads. A reload keeps every sink whose configuration did not
// change (its queue, connection and counters go on); a sink that changed or went away is
// retired: it stops taking records and delivers what it queued in the background, so a
// reload never blocks the collector. Counters are kept by sink name, so a sink replaced
// by one of the same name (a file sink given another mode) continues its counts instead
// of starting again from zero.
//
// One thread (the daemon's) calls everything but the sinks' own thread-safe members.
class SinkSet {
 public:
  // How a sink looks to the stats line and the metrics: live counters plus those of
  // earlier sinks of the same name.
  struct View {
    std::string name;
    SinkStats stats;
    bool live = true;  // false: retired, counters kept
  };

  // A retired sink that has finished: what it did with the records it held.
  struct Ended {
    std::string name;
    std::size_t left = 0;  // records it still held when its time ran out (counted dropped)
  };

  SinkSet() = default;
  SinkSet(const SinkSet&) = delete;
  SinkSet& operator=(const SinkSet&) = delete;
  ~SinkSet();

  // Makes the sinks `configs` lists: kept ones as they are, the others made and started.
  // If one cannot start, nothing changes (the new ones are stopped) and the Error names it.
  // `retire_within` is how long a retired sink may take to deliver its queue.
  Result<void> apply(const std::vector<SinkConfig>& configs,
                     std::chrono::milliseconds retire_within);

  // What sinks made from now on know of the host (the kafka sink's key).
  void set_context(SinkContext context) { context_ = std::move(context); }

  // Every live sink gets the record.
  void submit(std::string_view record);
  // Sink::defer_wakeups() for every live sink (and those made while deferred).
  void defer_wakeups(bool defer);

  // Which sinks keep up, for room() and room_to_half(): the daemon calls it on every pass
  // of its loop. A sink whose queue has not been nearly empty (at most a quarter of what
  // pacing lets it hold) for `patience` while another sink's has is left out of the
  // pacing decision until its queue is nearly empty again: it drops and counts its own
  // records, and the others go on at their own pace (a slow sink never makes a healthy one
  // drop). Counted as SinkStats::left_out.
  void watch(std::int64_t now_ms);
  void set_patience(std::chrono::milliseconds patience) { patience_ms_ = patience.count(); }
  // Some counted sink (not a disconnected socket sink) was nearly empty within the
  // patience, as of the last watch(); true with none to wait for.
  [[nodiscard]] bool any_keeping_up() const;

  // How many records of up to `record_bytes` every live sink can take now within half its
  // queue (records and bytes) and within kPaceWindowBytes queued; SIZE_MAX with no sink to
  // wait for. A socket sink that is not connected does not count: what it cannot take is
  // dropped and counted whatever the pace. For producers that can wait (baseline and
  // Traffic records), so that a burst goes out as fast as the sinks take it instead of
  // overflowing their queues, and without filling them (memory).
  [[nodiscard]] std::size_t room(std::size_t record_bytes) const;
  // How many records of up to `record_bytes` every live sink (not a disconnected socket
  // sink) can take before its queue is half full (records or bytes); SIZE_MAX with none.
  // For producers that cannot be paced but can be held back: the kernel's destroy events
  // wait in their socket's buffer while it is 0.
  [[nodiscard]] std::size_t room_to_half(std::size_t record_bytes) const;
  // What paced records may keep queued in one sink: enough to keep a writer busy between
  // two looks (the daemon looks every millisecond while records are owed).
  static constexpr std::size_t kPaceWindowBytes = std::size_t{1} << 20;
  // Sink::take_failure_kinds() of every live sink: (sink name, reason) pairs.
  std::vector<std::pair<std::string, std::string>> take_failure_kinds();
  // Sink::take_notices() of every live sink: (sink name, text) pairs.
  std::vector<std::pair<std::string, std::string>> take_notices();

  // SIGHUP: every live sink reopens its file.
  void reopen();

  // Retired sinks that have finished since the last call (their counters are folded in).
  std::vector<Ended> reap();

  // Stops everything: live sinks deliver for at most `timeout`, retired ones within what
  // is left of theirs (bounded by `timeout` too).
  void stop(std::chrono::milliseconds timeout);

  [[nodiscard]] std::vector<View> views() const;
  // The sum over every sink, live and retired.
  [[nodiscard]] SinkStats totals() const;

  [[nodiscard]] std::size_t size() const { return live_.size(); }
  [[nodiscard]] const Sink& at(std::size_t i) const { return *live_[i].sink; }

 private:
  std::vector<std::pair<std::string, std::string>> take_each(
      std::vector<std::string> (Sink::*take)());
  // The least of room_of(stats, limit) over the live sinks but disconnected socket sinks;
  // SIZE_MAX with none.
  template <typename RoomOf>
  [[nodiscard]] std::size_t least_room(RoomOf room_of) const;
  struct Entry {
    SinkConfig config;
    std::unique_ptr<Sink> sink;
    std::int64_t drained_ms = -1;  // when watch() last saw its queue nearly empty
    bool counted = true;           // as of the last watch(): not a disconnected socket sink
    bool left_out = false;         // left out of room() and room_to_half()
  };
  [[nodiscard]] bool keeps_up(const Entry& e) const {
    return e.counted && watched_ms_ - e.drained_ms < patience_ms_;
  }
  void fold(const Sink& sink);

  std::vector<Entry> live_;
  std::vector<std::unique_ptr<Sink>> retiring_;
  std::map<std::string, SinkStats, std::less<>> earlier_;       // finished sinks, by name
  std::map<std::string, std::uint64_t, std::less<>> left_out_;  // by name, across reloads
  std::int64_t patience_ms_ = 5000;
  bool deferred_ = false;  // defer_wakeups()
  std::int64_t watched_ms_ = 0;
  SinkContext context_;
};

}  // namespace sockstate::sink
