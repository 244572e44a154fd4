// The kernel-event source of a build without BPF (SOCKSTATE_BPF=OFF, or AUTO without
// clang, bpftool and libbpf): open() says so, and the daemon runs on sock_diag alone.
#include "sockstate/bpf/kernel_events.h"
#include "sockstate/bpf/socket_holders.h"

namespace sockstate::bpf {

struct KernelEvents::Impl {};

Result<std::unique_ptr<KernelEvents>> KernelEvents::open(const KernelEventsOptions& /*options*/) {
  return Error{0, "this sockstate was built without the kernel-event source (SOCKSTATE_BPF=OFF)"};
}

KernelEvents::KernelEvents(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
KernelEvents::~KernelEvents() = default;

int KernelEvents::fd() const {
  return -1;
}

Result<std::size_t> KernelEvents::drain(std::size_t /*budget*/,
                                        const std::function<void(const Event&)>& /*each*/) {
  return std::size_t{0};
}

KernelEvents::Positions KernelEvents::positions() const {
  return {};
}

std::uint64_t KernelEvents::lost() const {
  return 0;
}

Result<std::vector<SocketHolder>> socket_holders() {
  return Error{0, "this sockstate was built without BPF (SOCKSTATE_BPF=OFF)"};
}

bool built_with_bpf() {
  return false;
}

}  // namespace sockstate::bpf
