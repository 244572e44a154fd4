#include "kernel_source.h"

#include <chrono>
#include <thread>

namespace sockstate::daemon {

KernelEventSource::KernelEventSource(std::unique_ptr<bpf::KernelEvents> events,
                                     history::SocketHistory& history)
    : events_(std::move(events)), history_(history) {}

int KernelEventSource::fd() const {
  return events_->fd();
}

Result<EventSource::Drained> KernelEventSource::drain(tracking::Tracker& /*tracker*/,
                                                      std::size_t /*budget*/) {
  // Everything written before now: a destroy event read next then finds what its socket's
  // events said. A drain stops at an event whose program was interrupted between reserving
  // and writing it (by an interrupt and the softirq after it, measured at 140 us): the
  // events after it are read once it is written, waited for here up to kCatchUp.
  // Asked before every destroy event and for sockets a poll looks up: most times nothing
  // is waiting, and two loads of the ring's positions say so.
  const bpf::KernelEvents::Positions at = events_->positions();
  if (at.consumer != at.producer) {
    if (auto caught_up = catch_up(at.producer); !caught_up) {
      return caught_up.error();
    }
  }
  const std::uint64_t lost = events_->lost();
  const bool overflowed = lost != lost_seen_;
  if (overflowed) {
    lost_seen_ = lost;
    ++overflows_;
  }
  return Drained{overflowed};
}

Result<void> KernelEventSource::catch_up(std::uint64_t target) {
  static constexpr std::chrono::microseconds kCatchUp{2000};
  const auto deadline = std::chrono::steady_clock::now() + kCatchUp;
  for (;;) {
    auto drained = events_->drain(SIZE_MAX, [this](const bpf::Event& e) { history_.add(e); });
    if (!drained) {
      return drained.error();
    }
    read_ += *drained;
    if (events_->positions().consumer >= target) {
      break;
    }
    if (std::chrono::steady_clock::now() >= deadline) {
      ++stalls_;  // the rest comes at the next drain
      break;
    }
    std::this_thread::yield();
  }
  return {};
}

EventCounters KernelEventSource::counters() const {
  return EventCounters{read_, overflows_};
}

std::string KernelEventSource::describe() const {
  return "kernel events (BPF ring buffer)";
}

}  // namespace sockstate::daemon
