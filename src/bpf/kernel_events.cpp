#include "sockstate/bpf/kernel_events.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <mutex>
#include <string_view>

// Generated from kernel_events.bpf.c by bpftool gen skeleton (src/bpf/CMakeLists.txt).
#include "kernel_events.skel.h"
#include "socket_holders.skel.h"
#include "sockstate/bpf/socket_holders.h"
#include "wire.h"

namespace sockstate::bpf {
namespace {

constexpr const char* kKernelBtf = "/sys/kernel/btf/vmlinux";

// libbpf prints its warnings; library code does not log. The last one is kept for the
// one line an Error gives.
std::mutex last_message_mutex;
std::string last_message;

int keep_last_message(enum libbpf_print_level level, const char* format, va_list args) {
  if (level == LIBBPF_DEBUG) {
    return 0;
  }
  std::array<char, 512> line{};
  const int n = std::vsnprintf(line.data(), line.size(), format, args);
  std::string_view text(line.data(), n < 0 ? 0 : std::min(line.size() - 1, std::size_t(n)));
  while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) {
    text.remove_suffix(1);
  }
  if (text.starts_with("libbpf: ")) {
    text.remove_prefix(8);  // failure() names it
  }
  std::lock_guard lock(last_message_mutex);
  last_message = text;
  return 0;
}

std::string take_last_message() {
  std::lock_guard lock(last_message_mutex);
  return std::exchange(last_message, {});
}

// One line for an errno of libbpf's, with what libbpf said last.
Error failure(std::string what, int err) {
  const int errnum = err < 0 ? -err : err;
  if (errnum == EPERM || errnum == EACCES) {
    what += " (not permitted: CAP_BPF and CAP_PERFMON are needed)";
  }
  const std::string said = take_last_message();
  if (!said.empty()) {
    what += " [libbpf: " + said + "]";
  }
  return Error{errnum, what};
}

Task task_of(const sockstate_task& t) {
  Task out;
  out.tgid = t.tgid;
  out.pid = t.pid;
  out.uid = t.uid;
  out.ppid = t.ppid;
  out.start_boottime_ns = t.start_boottime_ns;
  out.comm.assign(t.comm, ::strnlen(t.comm, sizeof t.comm));
  return out;
}

StateEvent decode(const sockstate_state_event& w) {
  StateEvent e;
  e.cookie = w.cookie;
  e.netns = w.netns;
  e.boottime_ns = w.boottime_ns;
  e.old_state = static_cast<std::uint8_t>(w.old_state);
  e.new_state = static_cast<std::uint8_t>(w.new_state);
  e.family = static_cast<std::uint8_t>(w.family);
  std::copy(std::begin(w.saddr), std::end(w.saddr), e.local.begin());
  std::copy(std::begin(w.daddr), std::end(w.daddr), e.remote.begin());
  e.local_port = w.sport;
  e.remote_port = w.dport;
  e.error = w.error;
  e.has_counters = (w.flags & SOCKSTATE_EV_F_TCP_INFO) != 0;
  e.bytes_acked = w.bytes_acked;
  e.bytes_received = w.bytes_received;
  e.bytes_sent = w.bytes_sent;
  e.bytes_retrans = w.bytes_retrans;
  e.total_retrans = w.total_retrans;
  e.rtt_us = w.srtt_us >> 3;
  e.task = task_of(w.task);
  return e;
}

AcceptEvent decode(const sockstate_accept_event& w) {
  AcceptEvent e;
  e.cookie = w.cookie;
  e.inode = w.inode;
  e.fd = w.fd;
  e.boottime_ns = w.boottime_ns;
  e.task = task_of(w.task);
  return e;
}

ExecEvent decode(const sockstate_exec_event& w) {
  ExecEvent e;
  e.old_pid = w.old_pid;
  e.boottime_ns = w.boottime_ns;
  e.task = task_of(w.task);
  e.filename.assign(w.filename, ::strnlen(w.filename, sizeof w.filename));
  const std::string_view args(w.args, std::min<std::size_t>(w.args_len, sizeof w.args));
  for (std::size_t at = 0; at < args.size();) {
    const std::size_t end = std::min(args.find('\0', at), args.size());
    e.args.emplace_back(args.substr(at, end - at));
    at = end + 1;
  }
  return e;
}

// The event a ring-buffer sample holds, if it is whole and of a known type.
template <typename Wire>
bool read_as(const void* data, std::size_t size, Event& out) {
  if (size < sizeof(Wire)) {
    return false;
  }
  Wire w;
  std::memcpy(&w, data, sizeof w);
  out = decode(w);
  return true;
}

bool decode_sample(const void* data, std::size_t size, Event& out) {
  std::uint32_t type = 0;
  if (size < sizeof type) {
    return false;
  }
  std::memcpy(&type, data, sizeof type);
  switch (type) {
    case SOCKSTATE_EV_STATE:
      return read_as<sockstate_state_event>(data, size, out);
    case SOCKSTATE_EV_ACCEPT:
      return read_as<sockstate_accept_event>(data, size, out);
    case SOCKSTATE_EV_EXEC:
      return read_as<sockstate_exec_event>(data, size, out);
    default:
      return false;
  }
}

std::size_t ring_size(std::size_t wanted) {
  const auto page = static_cast<std::size_t>(::sysconf(_SC_PAGESIZE));
  std::size_t size = page;
  while (size < wanted) {
    size <<= 1U;
  }
  return size;
}

constexpr int kBudgetReached = -ECANCELED;

}  // namespace

struct KernelEvents::Impl {
  kernel_events* skel = nullptr;
  ring_buffer* ring = nullptr;
  // The ring's two position pages, mapped read-only again for positions() (libbpf 1.1 has
  // no ring__avail_data_size()): the consumer's, then the producer's.
  void* consumer_page = MAP_FAILED;
  void* producer_page = MAP_FAILED;
  std::size_t page = 0;
  // Set for the duration of one drain().
  const std::function<void(const Event&)>* each = nullptr;
  std::size_t budget = 0;
  std::size_t handed = 0;
  std::uint64_t malformed = 0;

  ~Impl() {
    if (consumer_page != MAP_FAILED) {
      ::munmap(consumer_page, page);
    }
    if (producer_page != MAP_FAILED) {
      ::munmap(producer_page, page);
    }
    ring_buffer__free(ring);
    kernel_events__destroy(skel);
  }

  static int on_sample(void* ctx, void* data, std::size_t size) {
    auto* self = static_cast<Impl*>(ctx);
    Event event;
    if (!decode_sample(data, size, event)) {
      ++self->malformed;
      return 0;
    }
    (*self->each)(event);
    return ++self->handed >= self->budget ? kBudgetReached : 0;
  }
};

Result<std::unique_ptr<KernelEvents>> KernelEvents::open(const KernelEventsOptions& options) {
  if (::access(kKernelBtf, R_OK) != 0) {
    return Error{errno, std::string("no kernel BTF at ") + kKernelBtf};
  }
  libbpf_set_print(keep_last_message);
  auto impl = std::make_unique<Impl>();
  impl->skel = kernel_events__open();
  if (impl->skel == nullptr) {
    return failure("opening the BPF programs", errno);
  }
  if (int err = bpf_map__set_max_entries(impl->skel->maps.events,
                                         static_cast<std::uint32_t>(ring_size(options.ring_bytes)));
      err != 0) {
    return failure("sizing the ring buffer", err);
  }
  // In a pid namespace of its own (a container), pids as the reader sees them.
  struct stat ns {};
  constexpr std::uint64_t kInitialPidNamespace = 0xEFFFFFFCU;  // PROC_PID_INIT_INO
  if (::stat("/proc/self/ns/pid", &ns) == 0 && ns.st_ino != kInitialPidNamespace) {
    impl->skel->rodata->pidns_dev = ns.st_dev;
    impl->skel->rodata->pidns_ino = ns.st_ino;
  }
  if (int err = kernel_events__load(impl->skel); err != 0) {
    return failure("loading the BPF programs", err);
  }
  if (int err = kernel_events__attach(impl->skel); err != 0) {
    return failure("attaching the BPF programs to their tracepoints", err);
  }
  impl->ring =
      ring_buffer__new(bpf_map__fd(impl->skel->maps.events), Impl::on_sample, impl.get(), nullptr);
  if (impl->ring == nullptr) {
    return failure("opening the ring buffer", errno);
  }
  const int map_fd = bpf_map__fd(impl->skel->maps.events);
  impl->page = static_cast<std::size_t>(::sysconf(_SC_PAGESIZE));
  impl->consumer_page = ::mmap(nullptr, impl->page, PROT_READ, MAP_SHARED, map_fd, 0);
  impl->producer_page =
      ::mmap(nullptr, impl->page, PROT_READ, MAP_SHARED, map_fd, static_cast<off_t>(impl->page));
  if (impl->consumer_page == MAP_FAILED || impl->producer_page == MAP_FAILED) {
    return failure("mapping the ring buffer's positions", errno);
  }
  return std::unique_ptr<KernelEvents>(new KernelEvents(std::move(impl)));
}

KernelEvents::KernelEvents(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
KernelEvents::~KernelEvents() = default;

int KernelEvents::fd() const {
  return ring_buffer__epoll_fd(impl_->ring);
}

Result<std::size_t> KernelEvents::drain(std::size_t budget,
                                        const std::function<void(const Event&)>& each) {
  if (budget == 0) {
    return std::size_t{0};
  }
  impl_->each = &each;
  impl_->budget = budget;
  impl_->handed = 0;
  const int r = ring_buffer__consume(impl_->ring);
  impl_->each = nullptr;
  if (r < 0 && r != kBudgetReached) {
    return Error{-r, "reading the BPF ring buffer"};
  }
  return impl_->handed;
}

KernelEvents::Positions KernelEvents::positions() const {
  // Each page starts with its position (an unsigned long the kernel and libbpf update
  // atomically).
  const auto* consumer = static_cast<const unsigned long*>(impl_->consumer_page);
  const auto* producer = static_cast<const unsigned long*>(impl_->producer_page);
  return Positions{__atomic_load_n(consumer, __ATOMIC_ACQUIRE),
                   __atomic_load_n(producer, __ATOMIC_ACQUIRE)};
}

std::uint64_t KernelEvents::lost() const {
  // The programs' global, in the skeleton's mmapped .bss: no syscall.
  const auto* bss = impl_->skel->bss;
  return bss == nullptr ? 0 : __atomic_load_n(&bss->lost_events, __ATOMIC_RELAXED);
}

bool built_with_bpf() {
  return true;
}

namespace {

struct HolderIter {
  ::socket_holders* skel = nullptr;
  bpf_link* link = nullptr;
  int fd = -1;
  HolderIter() = default;
  HolderIter(const HolderIter&) = delete;
  HolderIter& operator=(const HolderIter&) = delete;
  ~HolderIter() {
    if (fd >= 0) {
      ::close(fd);
    }
    bpf_link__destroy(link);
    socket_holders__destroy(skel);
  }
};

}  // namespace

Result<std::vector<SocketHolder>> socket_holders() {
  if (::access(kKernelBtf, R_OK) != 0) {
    return Error{errno, std::string("no kernel BTF at ") + kKernelBtf};
  }
  struct stat ns {};
  if (::stat("/proc/self/ns/pid", &ns) != 0 || ns.st_ino != 0xEFFFFFFCU) {
    return Error{0, "in a pid namespace of its own: the iterator's pids are the host's"};
  }
  libbpf_set_print(keep_last_message);
  HolderIter it;
  it.skel = socket_holders__open_and_load();
  if (it.skel == nullptr) {
    return failure("loading the socket iterator", errno);
  }
  it.link = bpf_program__attach_iter(it.skel->progs.socket_holders, nullptr);
  if (it.link == nullptr) {
    return failure("attaching the socket iterator", errno);
  }
  it.fd = bpf_iter_create(bpf_link__fd(it.link));
  if (it.fd < 0) {
    return failure("starting the socket iterator", errno);
  }
  std::vector<SocketHolder> out;
  std::vector<sockstate_holder> buf(8192);
  std::size_t partial = 0;  // bytes of a record cut by the last read
  for (;;) {
    auto* bytes = reinterpret_cast<char*>(buf.data());
    const ssize_t n = ::read(it.fd, bytes + partial, buf.size() * sizeof buf[0] - partial);
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n < 0) {
      return errno_error("reading the socket iterator");
    }
    if (n == 0) {
      break;
    }
    const std::size_t have = partial + static_cast<std::size_t>(n);
    const std::size_t whole = have / sizeof buf[0];
    for (std::size_t i = 0; i < whole; ++i) {
      out.push_back(SocketHolder{static_cast<std::int32_t>(buf[i].tgid), buf[i].inode});
    }
    partial = have % sizeof buf[0];
    std::memmove(bytes, bytes + whole * sizeof buf[0], partial);
  }
  return out;
}

}  // namespace sockstate::bpf
