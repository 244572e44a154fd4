// The metrics endpoint under slow clients (slowloris): scrapes keep being answered at
// once, slow connections are cut at the deadline, and more connections than the bound do
// not break it. The real libmicrohttpd on loopback; no privilege needed.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <iostream>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "sockstate/metrics/server.h"
#include "support/unique_fd.h"

namespace sockstate::metrics {
namespace {

using sockstate::testing::UniqueFd;
using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

constexpr milliseconds kDeadline = MetricsServer::kRequestDeadline;
constexpr std::size_t kBound = MetricsServer::kMaxConnections;

constexpr std::string_view kText = "sockstate_test_total 42\n";
// What a slow client sends one byte at a time, and never finishes.
constexpr std::string_view kPartial = "GET /metrics HTTP/1.1\r\nHost: x\r\n";
// A whole scrape as Prometheus sends it.
constexpr std::string_view kScrape =
    "GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: Prometheus/2.45.0\r\n"
    "Accept: application/openmetrics-text;version=1.0.0,application/openmetrics-text;"
    "version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1\r\n"
    "Accept-Encoding: gzip\r\nX-Prometheus-Scrape-Timeout-Seconds: 10\r\n"
    "Connection: close\r\n\r\n";

sockaddr_in loopback(std::uint16_t port) {
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  return a;
}

// A connected socket: the kernel's accept queue takes it whether or not the server accepts.
UniqueFd connect_to(std::uint16_t port) {
  UniqueFd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  const sockaddr_in a = loopback(port);
  if (!fd || ::connect(fd.get(), reinterpret_cast<const sockaddr*>(&a), sizeof a) != 0) {
    return {};
  }
  return fd;
}

// Starts a server on a loopback port that was free a moment ago.
std::pair<std::unique_ptr<MetricsServer>, std::uint16_t> start_server() {
  for (int attempt = 0; attempt < 20; ++attempt) {
    UniqueFd probe(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_in a = loopback(0);
    socklen_t len = sizeof a;
    if (::bind(probe.get(), reinterpret_cast<const sockaddr*>(&a), sizeof a) != 0 ||
        ::getsockname(probe.get(), reinterpret_cast<sockaddr*>(&a), &len) != 0) {
      continue;
    }
    const std::uint16_t port = ntohs(a.sin_port);
    probe.reset();
    auto server = MetricsServer::start("127.0.0.1:" + std::to_string(port));
    if (server) {
      (*server)->publish(std::string(kText));
      return {std::move(*server), port};
    }
  }
  return {};
}

// Waits for `events` on `fd` until `until`; false when the time is up first.
bool wait(int fd, short events, Clock::time_point until) {
  for (;;) {
    const auto left = std::chrono::ceil<milliseconds>(until - Clock::now()).count();
    if (left <= 0) {
      return false;
    }
    pollfd p{fd, events, 0};
    if (::poll(&p, 1, static_cast<int>(left)) > 0) {
      return true;
    }
  }
}

struct Scrape {
  std::string answer;  // what came, whole or not
  Clock::duration took{};
  bool whole = false;  // the server closed after its answer, within the limit
};

// A whole GET /metrics on a connection of its own, given at most `limit`.
Scrape scrape(std::uint16_t port, Clock::duration limit) {
  Scrape s;
  const auto start = Clock::now();
  const auto until = start + limit;
  UniqueFd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  const sockaddr_in a = loopback(port);
  if (::connect(fd.get(), reinterpret_cast<const sockaddr*>(&a), sizeof a) != 0 &&
      (errno != EINPROGRESS || !wait(fd.get(), POLLOUT, until))) {
    return s;
  }
  if (::send(fd.get(), kScrape.data(), kScrape.size(), MSG_NOSIGNAL) !=
      static_cast<ssize_t>(kScrape.size())) {
    return s;
  }
  std::array<char, 4096> buf{};
  while (wait(fd.get(), POLLIN, until)) {
    const ssize_t n = ::recv(fd.get(), buf.data(), buf.size(), 0);
    if (n > 0) {
      s.answer.append(buf.data(), static_cast<std::size_t>(n));
      continue;
    }
    s.whole = n == 0;
    break;
  }
  s.took = Clock::now() - start;
  return s;
}

// `count` connections that each send kPartial one byte every `interval` and never finish
// it. One the server closes is opened again at once, as an attacker would. Runs in a
// thread of its own; records how long each connection lived until the server closed it.
class Slowloris {
 public:
  Slowloris(std::uint16_t port, std::size_t count, Clock::duration interval)
      : port_(port), interval_(interval), conns_(count) {
    const auto now = Clock::now();
    for (std::size_t i = 0; i < count; ++i) {
      open(conns_[i], now + interval * static_cast<long>(i) / static_cast<long>(count));
    }
    thread_ = std::thread([this] { run(); });
  }
  ~Slowloris() { stop(); }
  Slowloris(const Slowloris&) = delete;
  Slowloris& operator=(const Slowloris&) = delete;

  void stop() {
    stop_ = true;
    if (thread_.joinable()) {
      thread_.join();
    }
  }
  // After stop(): each connection the server closed, from connect() to the close seen.
  [[nodiscard]] const std::vector<Clock::duration>& lifetimes() const { return lifetimes_; }
  [[nodiscard]] std::size_t failed_connects() const { return failed_connects_; }

 private:
  struct Conn {
    UniqueFd fd;
    Clock::time_point opened;
    Clock::time_point next_send;
    std::size_t sent = 0;
  };

  void open(Conn& c, Clock::time_point first_send) {
    c.opened = Clock::now();  // before connect(): the server may accept before it returns
    c.fd = connect_to(port_);
    if (!c.fd) {
      ++failed_connects_;
    }
    c.next_send = first_send;
    c.sent = 0;
  }

  // The server's close: an end of file, a reset, or a send refused.
  void closed(Conn& c) {
    lifetimes_.push_back(Clock::now() - c.opened);
    open(c, Clock::now());
  }

  void send_due(Conn& c, Clock::time_point now) {
    if (now < c.next_send || c.sent == kPartial.size()) {
      return;
    }
    const ssize_t n = ::send(c.fd.get(), kPartial.data() + c.sent, 1, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n == 1) {
      ++c.sent;
      c.next_send += interval_;
    } else if (errno != EAGAIN) {
      closed(c);
    }
  }

  void run() {
    std::vector<pollfd> fds(conns_.size());
    while (!stop_) {
      for (std::size_t i = 0; i < conns_.size(); ++i) {
        fds[i] = pollfd{conns_[i].fd.get(), POLLIN, 0};
      }
      (void)::poll(fds.data(), fds.size(), 20);
      const auto now = Clock::now();
      for (std::size_t i = 0; i < conns_.size(); ++i) {
        if (fds[i].revents != 0) {
          std::array<char, 512> buf{};
          const ssize_t n = ::recv(conns_[i].fd.get(), buf.data(), buf.size(), MSG_DONTWAIT);
          if (n == 0 || (n < 0 && errno != EAGAIN)) {
            closed(conns_[i]);
            continue;
          }
        }
        send_due(conns_[i], now);
      }
    }
  }

  std::uint16_t port_;
  Clock::duration interval_;
  std::vector<Conn> conns_;
  std::vector<Clock::duration> lifetimes_;
  std::size_t failed_connects_ = 0;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

double seconds(Clock::duration d) {
  return std::chrono::duration<double>(d).count();
}

// Scrapes every 200 ms for `period`; each must be a whole 200 with the text within 1 s.
// Returns the slowest.
Clock::duration scrape_throughout(std::uint16_t port, Clock::duration period) {
  Clock::duration slowest{};
  const auto until = Clock::now() + period;
  for (int i = 0; Clock::now() < until; ++i) {
    const Scrape s = scrape(port, milliseconds(1000));
    slowest = std::max(slowest, s.took);
    EXPECT_TRUE(s.whole) << "scrape " << i << " after " << seconds(s.took) << " s: " << s.answer;
    EXPECT_EQ(s.answer.substr(0, s.answer.find("\r\n")), "HTTP/1.1 200 OK") << s.answer;
    EXPECT_TRUE(s.answer.ends_with("\r\n\r\n" + std::string(kText))) << s.answer;
    if (::testing::Test::HasFailure()) {
      break;  // one scrape's failures say it all; the rest would repeat them
    }
    std::this_thread::sleep_for(milliseconds(200));
  }
  return slowest;
}

void report(std::size_t slow, Clock::duration slowest, const std::vector<Clock::duration>& cut) {
  const auto [shortest, longest] = std::minmax_element(cut.begin(), cut.end());
  std::cout << slow << " slow clients: slowest scrape " << seconds(slowest) << " s; " << cut.size()
            << " slow connections closed by the server, after " << seconds(*shortest) << " s to "
            << seconds(*longest) << " s\n";
}

// Room for the test's own sockets and the server's, in one process.
void assert_enough_descriptors(std::size_t connections) {
  rlimit nofile{};
  ASSERT_EQ(::getrlimit(RLIMIT_NOFILE, &nofile), 0);
  ASSERT_GE(nofile.rlim_cur, 2 * connections + 64) << "RLIMIT_NOFILE too low for this test";
}

TEST(MetricsServer, SlowClientsDoNotStarveScrapes) {
  constexpr std::size_t kSlow = 200;
  assert_enough_descriptors(kSlow);
  auto [server, port] = start_server();
  ASSERT_TRUE(server) << "no free loopback port";
  Slowloris slow(port, kSlow, milliseconds(2000));
  std::this_thread::sleep_for(milliseconds(500));  // every slow client connected
  const auto slowest = scrape_throughout(port, milliseconds(12000));
  slow.stop();
  EXPECT_EQ(slow.failed_connects(), 0U);
  // Each slow connection was cut, at its deadline: not before (below the bound, nobody
  // needs its slot) and not much after.
  ASSERT_GE(slow.lifetimes().size(), kSlow * 2);
  const auto [shortest, longest] =
      std::minmax_element(slow.lifetimes().begin(), slow.lifetimes().end());
  report(kSlow, slowest, slow.lifetimes());
  EXPECT_GE(*shortest, kDeadline - milliseconds(5)) << seconds(*shortest);
  EXPECT_LE(*longest, kDeadline + milliseconds(1000)) << seconds(*longest);
  EXPECT_GE(server->connections_cut(), slow.lifetimes().size());
  EXPECT_GE(server->scrapes(), 40U);
  // Stopping does not wait on the slow connections still open.
  const auto stopping = Clock::now();
  server.reset();
  EXPECT_LT(Clock::now() - stopping, milliseconds(500));
}

TEST(MetricsServer, MoreConnectionsThanTheBound) {
  constexpr std::size_t kSlow = kBound + 100;
  assert_enough_descriptors(kSlow);
  auto [server, port] = start_server();
  ASSERT_TRUE(server) << "no free loopback port";
  Slowloris slow(port, kSlow, milliseconds(2000));
  std::this_thread::sleep_for(milliseconds(500));
  const auto slowest = scrape_throughout(port, milliseconds(6000));
  slow.stop();
  EXPECT_EQ(slow.failed_connects(), 0U);
  // Beyond the bound the oldest are cut early to make room; none is kept past its deadline.
  ASSERT_GE(slow.lifetimes().size(), kSlow);
  const auto [shortest, longest] =
      std::minmax_element(slow.lifetimes().begin(), slow.lifetimes().end());
  report(kSlow, slowest, slow.lifetimes());
  EXPECT_LT(*shortest, kDeadline / 2) << seconds(*shortest);
  EXPECT_LE(*longest, kDeadline + milliseconds(1000)) << seconds(*longest);
  EXPECT_GE(server->connections_cut(), slow.lifetimes().size());
  // The server still serves after the flood.
  EXPECT_TRUE(scrape(port, milliseconds(1000)).whole);
}

}  // namespace
}  // namespace sockstate::metrics
