#include "destroy_events.h"

#include <algorithm>

#include "sockstate/collect/host.h"

namespace sockstate::daemon {

DestroyEventSource::DestroyEventSource(collect::NamespaceView& view,
                                       std::function<flow::Perimeter()> perimeter,
                                       std::size_t max_buffer)
    : view_(view),
      listener_(*view.destroy()),
      perimeter_(std::move(perimeter)),
      max_buffer_(std::max<std::size_t>(max_buffer, 64U << 20)) {}

int DestroyEventSource::fd() const {
  return listener_.fd();
}

Result<EventSource::Drained> DestroyEventSource::drain(tracking::Tracker& tracker,
                                                       std::size_t budget) {
  const std::uint64_t inode = view_.info().inode;
  const flow::Perimeter p = perimeter_();
  auto complete = listener_.drain(
      [&](const netlink::SocketEntry& e) {
        // The kernel's message names no namespace: the listener's is the socket's.
        netlink::SocketEntry tagged = e;
        tagged.netns = inode;
        tagged.protocol = listener_.protocol();
        tracker.destroyed(tagged, view_.listeners(), p, collect::realtime_ms());
      },
      max_buffer_, budget);
  if (!complete) {
    return complete.error();
  }
  return Drained{!*complete};
}

EventCounters DestroyEventSource::counters() const {
  return EventCounters{listener_.events(), listener_.overflows()};
}

std::string DestroyEventSource::describe() const {
  return "destroy events of network namespace " + std::to_string(view_.info().inode);
}

}  // namespace sockstate::daemon
