#include "destroy_events.h"

#include <algorithm>

#include "sockstate/collect/host.h"
#include "sockstate/flow/orientation.h"

namespace sockstate::daemon {

DestroyEventSource::DestroyEventSource(collect::NamespaceView& view, std::uint8_t protocol,
                                       std::function<flow::Perimeter()> perimeter,
                                       std::size_t max_buffer)
    : view_(view),
      listener_(*view.destroy(protocol)),
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
        // The kernel's message carries what makes a TCP entry a full socket (tcp_info),
        // and nothing of the kind for UDP, which has no minisockets.
        tagged.full_socket = tagged.full_socket || !flow::has_tcp_states(tagged.protocol);
        tracker.destroyed(tagged, view_.listeners(), p, collect::realtime_ms());
      },
      max_buffer_, budget);
  if (!complete) {
    return complete.error();
  }
  if (!*complete) {
    tracker.destroy_events_lost(inode, listener_.protocol());  // none may wait for its own
  }
  return Drained{!*complete};
}

EventCounters DestroyEventSource::counters() const {
  return EventCounters{listener_.events(), listener_.overflows(), listener_.dropped()};
}

std::string DestroyEventSource::describe() const {
  const char* protocol = flow::has_tcp_states(listener_.protocol()) ? "TCP" : "UDP";
  return std::string(protocol) + " destroy events of network namespace " +
         std::to_string(view_.info().inode);
}

}  // namespace sockstate::daemon
