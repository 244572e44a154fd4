#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "event_source.h"
#include "sockstate/collect/collector.h"
#include "sockstate/flow/address.h"

namespace sockstate::daemon {

// The kernel's socket-destroy events of one protocol in one network namespace (sock_diag's
// multicast groups), read from the namespace's DestroyListener of that protocol: one Close
// (or Fail, Refuse) each, with TCP's final counters. The view must outlive the source.
class DestroyEventSource final : public EventSource {
 public:
  // `perimeter`: the namespace's addresses and the internal networks, at drain time.
  // `max_buffer`: how far the listener's receive buffer may grow after an overflow.
  // The view's listener of `protocol` must exist.
  DestroyEventSource(collect::NamespaceView& view, std::uint8_t protocol,
                     std::function<flow::Perimeter()> perimeter, std::size_t max_buffer);

  [[nodiscard]] int fd() const override;
  Result<Drained> drain(tracking::Tracker& tracker, std::size_t budget) override;
  [[nodiscard]] EventCounters counters() const override;
  [[nodiscard]] std::string describe() const override;

 private:
  collect::NamespaceView& view_;
  netlink::DestroyListener& listener_;
  std::function<flow::Perimeter()> perimeter_;
  std::size_t max_buffer_;
};

}  // namespace sockstate::daemon
