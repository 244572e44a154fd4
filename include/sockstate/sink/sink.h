#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "sockstate/common/error.h"
#include "sockstate/sink/sink_config.h"

namespace sockstate::sink {

// How much a sink's queue may hold. A record is charged its size plus kQueueEntryBytes
// (the string and deque bookkeeping around it), so `bytes` bounds the memory it takes.
struct QueueLimit {
  std::size_t records = 65536;
  std::size_t bytes = 16U << 20;
};
inline constexpr std::size_t kQueueEntryBytes = 64;

// Counters only ever grow, except `queued`. For every sink, at any moment:
//   records submitted == written + dropped + queued
// (a record being written right now counts as queued until it is written or dropped).
struct SinkStats {
  std::uint64_t written = 0;     // records delivered
  std::uint64_t dropped = 0;     // records lost: queue full, or not deliverable
  std::uint64_t errors = 0;      // write/connect failures (each may drop records)
  std::uint64_t reconnects = 0;  // socket sinks: connections made after the first; kafka
                                 // sinks: producers replaced after a fatal error
  std::uint64_t reopens = 0;     // file sinks: reopened (SIGHUP) or rotated
  std::size_t queued = 0;        // records waiting now
  std::size_t queued_bytes = 0;  // what they hold, as the queue counts it (see QueueLimit)
  int connected = -1;            // socket and kafka sinks: 1 connected, 0 not; -1 for others
  int brokers_up = -1;           // kafka sinks: brokers with a connection up; -1 for others
  std::uint64_t left_out = 0;    // times the sink set left it out of pacing (SinkSet::watch)
};

// What sinks may need to know of the host: the kafka sink's message key.
struct SinkContext {
  std::string device_uid;
};

// What every sink counts and reports, kept once for all of them: the counters of
// SinkStats, the queue's charge against its QueueLimit, the last failure, the notices and
// the kinds of drop reported once each. Thread safe; charge() and its check are atomic
// only under the caller's own submit lock (every sink submits under one).
class SinkLedger {
 public:
  explicit SinkLedger(QueueLimit limit) : limit_(limit) {}

  [[nodiscard]] QueueLimit limit() const { return limit_; }
  // One record of `cost` bytes joins the queue if the limit lets it; else it is dropped.
  bool charge(std::size_t cost);
  // `count` records of `cost` bytes in all left the queue: written, or dropped.
  void settle(std::size_t count, std::size_t cost, bool written);
  // Everything still queued is lost (a stop's deadline passed).
  void drop_queued();
  void count_dropped(std::uint64_t n = 1) { dropped_.fetch_add(n, std::memory_order_relaxed); }

  void count_error(const std::string& why);
  void count_reconnect() { reconnects_.fetch_add(1, std::memory_order_relaxed); }
  void count_reopen() { reopens_.fetch_add(1, std::memory_order_relaxed); }
  void set_connected(bool up) { connected_.store(up ? 1 : 0, std::memory_order_relaxed); }
  void set_brokers_up(int n) { brokers_up_.store(n, std::memory_order_relaxed); }
  // Why records were dropped: `reason` is reported once for each `kind` (take_failure_kinds).
  void drop_reason(int kind, const std::string& reason);
  // What the sink waits for while no failure has been counted ("" once it waits no more):
  // last_error() says it then.
  void set_waiting(std::string what);
  void notice(std::string text);

  [[nodiscard]] SinkStats stats() const;
  [[nodiscard]] std::string last_error() const;
  std::vector<std::string> take_failure_kinds();
  std::vector<std::string> take_notices();

 private:
  const QueueLimit limit_;
  std::atomic<std::uint64_t> written_{0};
  std::atomic<std::uint64_t> dropped_{0};
  std::atomic<std::uint64_t> errors_{0};
  std::atomic<std::uint64_t> reconnects_{0};
  std::atomic<std::uint64_t> reopens_{0};
  std::atomic<std::size_t> queued_{0};
  std::atomic<std::size_t> queued_bytes_{0};
  std::atomic<int> connected_{-1};
  std::atomic<int> brokers_up_{-1};

  mutable std::mutex mutex_;
  std::string last_error_;              // guarded by mutex_
  std::string waiting_;                 // guarded by mutex_
  std::vector<std::string> notices_;    // guarded by mutex_
  std::set<int> kinds_seen_;            // guarded by mutex_
  std::vector<std::string> kinds_new_;  // guarded by mutex_
};

// One destination for records. Each sink owns a bounded queue and a worker thread, so a
// slow or dead destination never blocks the collector or the other sinks: submit() never
// waits; what does not fit is dropped and counted.
//
// A sink type implements five calls; what it counts and reports is its ledger's, the
// same for all. Thread safety: submit(), reopen(), stats() and the reports may be called
// from any thread at any time; start() and stop() from one controlling thread. Library
// code does not log: the daemon reads stats() and the reports and logs what it wants.
class Sink {
 public:
  Sink(std::string name, QueueLimit limit) : name_(std::move(name)), ledger_(limit) {}
  Sink(const Sink&) = delete;
  Sink& operator=(const Sink&) = delete;
  virtual ~Sink() = default;

  // Opens the destination and starts the worker. A file that cannot be opened is an
  // Error (the daemon refuses to start); a socket sink that cannot connect yet is not
  // (it keeps trying with backoff, dropping what overflows its queue).
  virtual Result<void> start() = 0;

  // Queues one record: a complete JSON object ending in '\n'. Never blocks (it takes a
  // mutex only for a queue push). After stop(), records are dropped and counted.
  virtual void submit(std::string_view record) = 0;

  // While deferred, submit() wakes the worker only once a batch worth a write waits
  // (kWakeBatch records); undeferring wakes it for what waits. The daemon defers between
  // two waits of its loop, so that the records of one pass cost the worker one wakeup and
  // one write, not one each. Never blocks.
  virtual void defer_wakeups(bool /*defer*/) {}
  static constexpr std::size_t kWakeBatch = 64;

  // SIGHUP: reopen files (after logrotate renamed them). Asynchronous; never blocks.
  virtual void reopen() {}

  // stop() without the wait: from now on submit() drops, and the worker delivers what is
  // queued until `timeout` has passed, then ends. Never blocks. stop() afterwards keeps
  // this deadline and returns at once when finished().
  virtual void request_stop(std::chrono::milliseconds timeout) = 0;

  // Delivers what is queued (waiting at most `timeout`), then stops the worker. What is
  // still queued after the timeout is counted as dropped. Returns within about `timeout`
  // even when the destination is dead or stalled. Calling it again does nothing.
  virtual void stop(std::chrono::milliseconds timeout) = 0;

  // "stdout", "file:/var/log/sockstate/sockstate.jsonl", "tcp:127.0.0.1:5170", ...
  [[nodiscard]] const std::string& name() const { return name_; }
  // What its queue may hold.
  [[nodiscard]] QueueLimit limit() const { return ledger_.limit(); }
  [[nodiscard]] SinkStats stats() const { return ledger_.stats(); }
  // The most recent write, open or connect failure ("connect unix:/run/x.sock: Connection
  // refused"), or what it waits for, or "": for the daemon's periodic stats line.
  [[nodiscard]] std::string last_error() const { return ledger_.last_error(); }
  // Why records were dropped, each kind of failure once since start (a short reason such
  // as "Local: Message timed out"), for the daemon to log the first of each kind.
  std::vector<std::string> take_failure_kinds() { return ledger_.take_failure_kinds(); }
  // What the sink did of its own accord that an operator should hear of, once each (a file
  // sink whose file was deleted made it again), since the last call.
  std::vector<std::string> take_notices() { return ledger_.take_notices(); }

  // The worker has ended (or never started): stop() would not wait.
  [[nodiscard]] bool finished() const { return finished_->load(std::memory_order_acquire); }
  // True once the worker has ended, shared: for follow().
  [[nodiscard]] std::shared_ptr<const std::atomic<bool>> finished_flag() const { return finished_; }
  // Before start(): the worker writes nothing until `predecessor` is true (a sink of the
  // same destination still delivering what it queued before a reload), so the two never
  // write at once; records wait in the queue meanwhile. A type that delivers the moment a
  // record is submitted (kafka) does not wait (README: a reload that changes a kafka sink).
  void follow(std::shared_ptr<const std::atomic<bool>> predecessor) {
    predecessor_ = std::move(predecessor);
  }

 protected:
  SinkLedger& ledger() { return ledger_; }
  void set_finished(bool done) { finished_->store(done, std::memory_order_release); }
  [[nodiscard]] const std::shared_ptr<const std::atomic<bool>>& predecessor() const {
    return predecessor_;
  }

 private:
  const std::string name_;
  SinkLedger ledger_;
  // No worker running. Shared with a successor that follow()s this sink.
  std::shared_ptr<std::atomic<bool>> finished_ = std::make_shared<std::atomic<bool>>(true);
  std::shared_ptr<const std::atomic<bool>> predecessor_;  // set before start()
};

// The sink a configuration entry describes (not started).
std::unique_ptr<Sink> make_sink(const SinkConfig& config,
                                const SinkContext& context = SinkContext{});

// What a sink will need from this host that its configuration cannot say: for a file
// sink, the directory exists and is writable, and the group exists; for a kafka sink,
// librdkafka takes every property and loads the certificates and keys (no connection is
// made). For check-config, so
// that a configuration it accepts does not fail at start.
Result<void> preflight(const SinkConfig& sink);

// The limit a configuration entry sets.
QueueLimit queue_limit(const SinkConfig& config);

// A sink writing to an already open descriptor (the stdout sink is make_fd_sink(1,
// "stdout", limit)). The caller keeps ownership of `fd` and keeps it open until stop()
// returns. Each record goes out whole in order; on a pipe or socket the sink writes
// without blocking (a pipe is reopened through /proc/self/fd as its own non-blocking open
// file description, so the shared descriptor's flags are left alone), which is what lets
// stop() return when the reader has stalled. A pipe whose reader is gone raises SIGPIPE:
// the daemon ignores SIGPIPE.
std::unique_ptr<Sink> make_fd_sink(int fd, std::string name, QueueLimit limit);

// journald's native protocol socket.
inline constexpr std::string_view kJournalSocket = "/run/systemd/journal/socket";

// The journald sink of make_sink(), sending to `socket_path` instead of kJournalSocket
// (tests point it at a datagram socket of their own).
std::unique_ptr<Sink> make_journald_sink(const SinkConfig& config, std::string socket_path);

}  // namespace sockstate::sink
