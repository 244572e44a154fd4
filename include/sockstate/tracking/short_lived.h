#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <unordered_map>

#include "sockstate/flow/address.h"
#include "sockstate/flow/observation.h"

namespace sockstate::tracking {

// How many sockets seen only in their destroy event (no poll ever saw them: a DNS
// resolver's socket per query lives milliseconds) get a Close record of their own: at most
// `per_second` in each second, the rest of that second folded into one summary Close per
// peer (namespace, protocol, local address, remote address and port), whose `count` says how
// many sockets it stands for. 0: every socket its own record. A socket that had a Listen or
// Open record always gets its own Close; this is only about sockets never reported before.
//
// Summaries are bounded: at most kMaxPeers a second; the sockets of further peers fold into
// one summary per namespace and local address, with no remote end. Pure: the caller
// passes the time (ms since the epoch) and writes the summaries take() returns.
class ShortLivedLimit {
 public:
  static constexpr std::size_t kMaxPeers = 1024;
  static constexpr std::int64_t kWindowMs = 1000;

  explicit ShortLivedLimit(std::uint32_t per_second = 0) : per_second_(per_second) {}
  void set_per_second(std::uint32_t per_second) { per_second_ = per_second; }

  // Whether the socket whose Close `close` is gets its own record now; if not, it is
  // folded into its peer's summary (counted).
  bool admit(const flow::Observation& close, std::int64_t now_ms);

  // The summaries of the second that ended by `now_ms` (every one, with `all`: at stop),
  // each passed to `write` once.
  void take(std::int64_t now_ms, bool all,
            const std::function<void(const flow::Observation&)>& write);
  // When take() has summaries to give (ms since the epoch); 0: none waits.
  [[nodiscard]] std::int64_t due_ms() const {
    return peers_.empty() ? 0 : window_start_ + kWindowMs;
  }

  [[nodiscard]] std::uint64_t summarised() const { return summarised_; }  // sockets folded
  [[nodiscard]] std::uint64_t summaries() const { return summaries_; }    // records written

 private:
  struct Peer {
    flow::Address local;
    flow::Address remote;
    std::uint64_t netns = 0;
    std::uint16_t remote_port = 0;
    std::uint8_t protocol = 0;
    bool operator==(const Peer&) const = default;
  };
  struct PeerHash {
    std::size_t operator()(const Peer& p) const;
  };
  struct Summary {
    flow::Observation first;  // the first socket's Close: what the summary says of them all
    std::uint32_t count = 0;
    std::int64_t last_ms = 0;
  };
  void fold(const flow::Observation& close);

  std::uint32_t per_second_ = 0;
  std::int64_t window_start_ = 0;
  std::uint32_t admitted_ = 0;  // in this window
  std::unordered_map<Peer, Summary, PeerHash> peers_;
  std::uint64_t summarised_ = 0;
  std::uint64_t summaries_ = 0;
};

}  // namespace sockstate::tracking
