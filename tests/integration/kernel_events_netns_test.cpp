// The kernel-event source against the real kernel: its BPF programs loaded and attached,
// real processes connecting, accepting, exec'ing and aborting in the test's own network
// namespace. Needs root (CAP_BPF, CAP_PERFMON, a network namespace) and a build with BPF.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "sockstate/bpf/kernel_events.h"
#include "sockstate/netlink/dumper.h"
#include "sockstate/netlink/socket.h"
#include "support/netns_test.h"
#include "support/unique_fd.h"

namespace sockstate::testing {
namespace {

using namespace std::chrono_literals;
using bpf::AcceptEvent;
using bpf::Event;
using bpf::ExecEvent;
using bpf::StateEvent;

constexpr std::uint8_t kSynSent = 2;
constexpr std::uint8_t kEstablished = 1;
constexpr std::uint8_t kClose = 7;

class KernelEvents : public NetnsTest {
 protected:
  void SetUp() override {
    NetnsTest::SetUp();
    if (IsSkipped() || HasFatalFailure()) {
      return;
    }
    if (!bpf::built_with_bpf()) {
      GTEST_SKIP() << "built without the kernel-event source";
    }
    auto opened = bpf::KernelEvents::open({});
    // Root on this machine kind has BTF and tracepoints: it must load.
    ASSERT_TRUE(opened) << opened.error().message();
    events_ = std::move(*opened);
    struct stat st {};
    ASSERT_EQ(::stat("/proc/self/ns/net", &st), 0);
    netns_ = st.st_ino;
  }

  // Reads events until `done` says enough (true) or `timeout` passes; returns all read.
  std::vector<Event> read_until(const std::function<bool(const std::vector<Event>&)>& done,
                                std::chrono::milliseconds timeout = 5s) {
    std::vector<Event> got;
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (!done(got) && std::chrono::steady_clock::now() < deadline) {
      pollfd p{events_->fd(), POLLIN, 0};
      ::poll(&p, 1, 50);
      auto n = events_->drain(4096, [&](const Event& e) { got.push_back(e); });
      EXPECT_TRUE(n) << n.error().message();
    }
    return got;
  }

  std::unique_ptr<bpf::KernelEvents> events_;
  std::uint64_t netns_ = 0;
};

sockaddr_in loopback(std::uint16_t port) {
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  return a;
}

UniqueFd listener(std::uint16_t port) {
  UniqueFd l(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  const sockaddr_in a = loopback(port);
  EXPECT_EQ(::bind(l.get(), reinterpret_cast<const sockaddr*>(&a), sizeof a), 0);
  EXPECT_EQ(::listen(l.get(), 16), 0);
  return l;
}

UniqueFd connect_to(std::uint16_t port) {
  UniqueFd c(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  const sockaddr_in a = loopback(port);
  EXPECT_EQ(::connect(c.get(), reinterpret_cast<const sockaddr*>(&a), sizeof a), 0);
  return c;
}

template <typename T>
std::vector<T> all_of(const std::vector<Event>& events, const std::function<bool(const T&)>& keep) {
  std::vector<T> out;
  for (const auto& e : events) {
    if (const T* t = std::get_if<T>(&e); t != nullptr && keep(*t)) {
      out.push_back(*t);
    }
  }
  return out;
}

// The ESTABLISHED sockets on `port` (either end), as sock_diag sees them.
std::vector<netlink::SocketEntry> dump_port(std::uint16_t port) {
  std::vector<netlink::SocketEntry> out;
  auto sock = netlink::NetlinkSocket::open();
  EXPECT_TRUE(sock) << sock.error().message();
  netlink::CookieSet seen;
  netlink::DumpStats stats;
  const netlink::DumpRequest request{
      AF_INET, netlink::state_bit(netlink::kTcpEstablished), false, {}};
  auto done = netlink::run_dump(*sock, request, seen, stats, [&](const netlink::SocketEntry& e) {
    if (e.local_port == port || e.remote_port == port) {
      out.push_back(e);
    }
  });
  EXPECT_TRUE(done) << done.error().message();
  return out;
}

// A child process connects and exits; this process accepts. The connect's transition
// names the child, the accept names this process, and both cookies are sock_diag's.
TEST_F(KernelEvents, ConnectAndAcceptNameTheirProcessesWithSockDiagsCookies) {
  const std::uint16_t port = 5601;
  UniqueFd l = listener(port);
  int go[2];
  int ready[2];
  ASSERT_EQ(::pipe(go), 0);
  ASSERT_EQ(::pipe(ready), 0);
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    UniqueFd c = connect_to(port);
    char b = 'r';
    (void)!::write(ready[1], &b, 1);
    (void)!::read(go[0], &b, 1);  // held open until the parent has dumped it
    ::_exit(0);
  }
  char b = 0;
  ASSERT_EQ(::read(ready[0], &b, 1), 1);
  UniqueFd s(::accept4(l.get(), nullptr, nullptr, SOCK_CLOEXEC));
  ASSERT_TRUE(s.valid());
  struct stat st {};
  ASSERT_EQ(::fstat(s.get(), &st), 0);
  const auto dumped = dump_port(port);
  ASSERT_EQ(dumped.size(), 2U);
  std::uint64_t client_cookie = 0;
  std::uint64_t server_cookie = 0;
  for (const auto& e : dumped) {
    (e.remote_port == port ? client_cookie : server_cookie) = e.cookie;
  }
  ASSERT_EQ(::write(go[1], &b, 1), 1);
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);

  const auto connects = [&](const std::vector<Event>& got) {
    return all_of<StateEvent>(got, [&](const StateEvent& e) {
      return e.new_state == kSynSent && e.remote_port == port && e.netns == netns_;
    });
  };
  const auto accepts = [&](const std::vector<Event>& got) {
    return all_of<AcceptEvent>(got, [&](const AcceptEvent& e) { return e.inode == st.st_ino; });
  };
  const auto got = read_until(
      [&](const std::vector<Event>& g) { return !connects(g).empty() && !accepts(g).empty(); });
  const auto c = connects(got);
  ASSERT_EQ(c.size(), 1U);
  EXPECT_EQ(c[0].task.tgid, static_cast<std::uint32_t>(child));
  EXPECT_EQ(c[0].old_state, kClose);
  EXPECT_EQ(c[0].cookie, client_cookie);
  EXPECT_EQ(c[0].task.start_boottime_ns > 0, true);
  const auto a = accepts(got);
  ASSERT_EQ(a.size(), 1U);
  EXPECT_EQ(a[0].task.tgid, static_cast<std::uint32_t>(::getpid()));
  EXPECT_EQ(a[0].fd, s.get());
  EXPECT_EQ(a[0].cookie, server_cookie);
  ::close(go[0]);
  ::close(go[1]);
  ::close(ready[0]);
  ::close(ready[1]);
}

// exec(): the program and its arguments, named by the process that ran it.
TEST_F(KernelEvents, ExecNamesTheProgramAndItsArguments) {
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    ::execl("/bin/true", "/bin/true", "sockstate-exec-test", "second", nullptr);
    ::_exit(127);
  }
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  const auto mine = [&](const std::vector<Event>& got) {
    return all_of<ExecEvent>(
        got, [&](const ExecEvent& e) { return e.task.tgid == static_cast<std::uint32_t>(child); });
  };
  const auto got = read_until([&](const std::vector<Event>& g) { return !mine(g).empty(); });
  const auto e = mine(got);
  ASSERT_EQ(e.size(), 1U);
  EXPECT_EQ(e[0].filename, "/bin/true");
  EXPECT_EQ(e[0].args, (std::vector<std::string>{"/bin/true", "sockstate-exec-test", "second"}));
  EXPECT_EQ(e[0].task.comm, "true");
}

// An abortive close (SO_LINGER 0) after 100,000 bytes: the transition to CLOSE still has
// the bytes and the remote port (sock_diag's destroy event has the port zeroed).
TEST_F(KernelEvents, AnAbortiveCloseKeepsItsBytesAndPort) {
  const std::uint16_t port = 5602;
  UniqueFd l = listener(port);
  UniqueFd c = connect_to(port);
  UniqueFd s(::accept4(l.get(), nullptr, nullptr, SOCK_CLOEXEC));
  ASSERT_TRUE(s.valid());
  const std::string data(100000, 'x');
  ASSERT_EQ(::send(c.get(), data.data(), data.size(), 0), 100000);
  std::string got_data(100000, '\0');
  ASSERT_EQ(::recv(s.get(), got_data.data(), got_data.size(), MSG_WAITALL), 100000);
  const linger hard{1, 0};
  ASSERT_EQ(::setsockopt(c.get(), SOL_SOCKET, SO_LINGER, &hard, sizeof hard), 0);
  c.reset();
  const auto aborts = [&](const std::vector<Event>& got) {
    return all_of<StateEvent>(got, [&](const StateEvent& e) {
      return e.old_state == kEstablished && e.new_state == kClose && e.remote_port == port &&
             e.netns == netns_;
    });
  };
  const auto got = read_until([&](const std::vector<Event>& g) { return !aborts(g).empty(); });
  const auto a = aborts(got);
  ASSERT_EQ(a.size(), 1U);
  ASSERT_TRUE(a[0].has_counters);
  EXPECT_EQ(a[0].bytes_acked, 100001U);  // and its SYN
  EXPECT_EQ(a[0].task.tgid, static_cast<std::uint32_t>(::getpid()));
  EXPECT_EQ(events_->lost(), 0U);
}

}  // namespace
}  // namespace sockstate::testing
