#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "event_source.h"
#include "sockstate/bpf/kernel_events.h"
#include "sockstate/history/socket_history.h"

namespace sockstate::daemon {

// The kernel's own TCP events (the BPF programs' ring buffer) into the socket history:
// who made each socket and when, the counters an abort clears. It writes no records: the
// loop reads it before every source that does (a destroy event's Close then finds its
// owner), whatever the sinks' room, and never holds it back.
class KernelEventSource final : public EventSource {
 public:
  KernelEventSource(std::unique_ptr<bpf::KernelEvents> events, history::SocketHistory& history);

  [[nodiscard]] int fd() const override;
  // Everything waiting (the ring buffer is bounded); `tracker` and `budget` are not used.
  Result<Drained> drain(tracking::Tracker& tracker, std::size_t budget) override;
  [[nodiscard]] EventCounters counters() const override;
  [[nodiscard]] std::string describe() const override;
  [[nodiscard]] bool writes_records() const override { return false; }

  // Events the ring buffer had no room for.
  [[nodiscard]] std::uint64_t lost() const { return events_->lost(); }
  // Drains that stopped before an event whose program was still writing it after 2 ms.
  [[nodiscard]] std::uint64_t stalls() const { return stalls_; }

 private:
  // Reads until the consumer reaches `target` (the producer when the drain began), or 2 ms.
  Result<void> catch_up(std::uint64_t target);

  std::unique_ptr<bpf::KernelEvents> events_;
  history::SocketHistory& history_;
  std::uint64_t read_ = 0;
  std::uint64_t lost_seen_ = 0;
  std::uint64_t overflows_ = 0;
  std::uint64_t stalls_ = 0;  // drains that gave up waiting for an interrupted event
};

}  // namespace sockstate::daemon
