#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "sockstate/collect/collector.h"
#include "sockstate/collect/host.h"
#include "sockstate/common/error.h"
#include "sockstate/flow/observation.h"
#include "sockstate/history/socket_history.h"
#include "sockstate/netlink/cookie_set.h"
#include "sockstate/ocsf/record.h"
#include "sockstate/sink/sink_set.h"

namespace sockstate::daemon {

// The daemon's one way out: observations become records here and go to the sinks. It alone
// owns the owners (the attributor and its /proc walks), rendering, the records that wait
// for an owner, and the submission to the sinks. It never calls back into the daemon's
// other parts.
//
// A record about a socket whose owner is not known yet waits for the next flush() (the
// /proc walk that follows a dump); so does every later record about the same socket, its
// terminal one included, so that nothing about a socket follows its end and no /proc walk
// ever runs where observe() is called (inside a netlink dump's callback, for instance).
class Emitter {
 public:
  // The namespace's container for a socket's netns (nullptr: none, or not known).
  using ContainerOf = std::function<const proc::Container*(std::uint64_t netns)>;

  explicit Emitter(sink::SinkSet& sinks) : sinks_(sinks) {}

  // Once the configuration is known: how records are written and who owns a socket. The
  // full /proc walk (with `process`) is done here, before the baseline, so that its records
  // name their owners.
  // `history` (the kernel's events; nullptr: none) names the owners it saw: with `process`,
  // a socket it knows the owner of waits for no walk, and its record names the process
  // that made or accepted it, also once that process has exited.
  Result<void> start(const ocsf::RecordContext& context, bool process, ContainerOf container_of,
                     const history::SocketHistory* history = nullptr,
                     collect::OwnerWalk walk = collect::OwnerWalk::kAuto);

  // Records from now on in version `v` (a reload); the sequence goes on.
  void set_ocsf_version(ocsf::OcsfVersion v) { builder_->set_ocsf_version(v); }

  // An observation from the tracker: written now, or queued until flush().
  void observe(const flow::Observation& obs);
  // The seam: one /proc walk for the sockets whose records wait, then those records, in
  // the order they were observed. Nothing to do when nothing waits.
  void flush();

  // Records owed in a round (a baseline, a Traffic tick: one for every connection) go out
  // in chunks while the sinks have room. `produce(chunk)` writes at most `chunk` records
  // through observe() and returns true when the round has no more to write.
  using Produce = std::function<bool(std::size_t chunk)>;
  void begin_round(Produce produce, std::chrono::milliseconds patience);
  // Writes what the sinks have room for now; all of it when `all_now` or when the round
  // is older than its patience (what a full sink cannot take is dropped and counted).
  void pace(bool all_now = false);
  [[nodiscard]] bool round_pending() const { return static_cast<bool>(produce_); }

  // Records the sinks take before the fullest is full, or half full.
  [[nodiscard]] std::size_t room() const;
  [[nodiscard]] std::size_t room_to_half() const;
  // Some sink keeps up (SinkSet::any_keeping_up): what waits for room will get it.
  [[nodiscard]] bool sinks_keep_up() const { return sinks_.any_keeping_up(); }

  // Forgets the owners of sockets no longer tracked, once they outgrow `tracked` by an
  // eighth (a listing of every tracked inode costs a poll 8% at 100,000 sockets).
  void prune_owners(std::size_t tracked, const std::function<std::vector<std::uint32_t>()>& inodes);

  [[nodiscard]] std::uint64_t records() const { return records_; }
  [[nodiscard]] const std::array<std::uint64_t, 9>& by_activity() const { return by_activity_; }
  [[nodiscard]] std::uint64_t owner_walks() const { return owner_walks_; }
  [[nodiscard]] std::uint64_t owner_errors() const { return owner_errors_; }

 private:
  void write_now(const flow::Observation& observed);
  [[nodiscard]] bool must_wait(const flow::Observation& obs) const;

  sink::SinkSet& sinks_;
  std::optional<ocsf::RecordBuilder> builder_;
  std::optional<collect::Attributor> attributor_;
  proc::OwnerMap* owners_ = nullptr;                 // the attributor's, with `process`
  const history::SocketHistory* history_ = nullptr;  // with `process` and the kernel's events
  ContainerOf container_of_;
  collect::TimezoneOffset timezone_;
  std::vector<flow::Observation> waiting_;  // in the order observed
  netlink::CookieSet waiting_cookies_;      // the sockets those records are about
  std::string record_;                      // reused for every record
  std::uint64_t records_ = 0;
  std::array<std::uint64_t, 9> by_activity_{};  // records written, by flow::Activity
  std::uint64_t owner_walks_ = 0;
  std::uint64_t owner_errors_ = 0;  // pids whose sockets could not be attributed
  Produce produce_;                 // the round being paced; empty: none
  std::int64_t round_since_ = 0;    // monotonic ms
  std::chrono::milliseconds patience_{0};
};

}  // namespace sockstate::daemon
