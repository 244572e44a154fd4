// The unix and tcp sinks: newline-framed records on a stream connection to a shipper that
// listens (rsyslog imtcp/imuxsock, syslog-ng, Vector, Fluent Bit...).
//
// Delivery contract: at least once for the record being sent when a connection breaks,
// at most once for the rest. A record that was partly sent when the connection broke is
// sent again, whole, on the next connection: the old connection ends in a cut line (which
// the shipper discards or flags), and the shipper may get the record twice (once cut, or
// even twice whole when the kernel had sent it all but reported the reset afterwards). A
// duplicate is better than a cut line, which is lost JSON. Records that the kernel took
// before the peer went away without reading them are lost: stream sockets carry no
// acknowledgement of what the application read; they are counted as written.
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstring>
#include <memory>
#include <mutex>
#include <string>
#include <system_error>
#include <thread>
#include <utility>
#include <vector>

#include "queued_sink.h"
#include "sink_keys.h"
#include "sockstate/sink/registry.h"

namespace sockstate::sink::detail {
namespace {

// A connect() that has not completed by then is abandoned and retried with backoff.
constexpr std::chrono::seconds kConnectTimeout{10};
// A name lookup that has not answered by then counts as failed (it may still finish).
constexpr std::chrono::seconds kResolveTimeout{10};
// TCP: unacknowledged data older than this ends the connection (a peer that vanished
// without a RST would otherwise hold the sink until the kernel's ~15 minute retransmission
// limit); keepalive probes notice an idle dead peer.
constexpr int kTcpUserTimeoutMs = 30000;
constexpr int kKeepIdleS = 30;
constexpr int kKeepIntervalS = 10;
constexpr int kKeepCount = 3;

struct Address {
  sockaddr_storage storage{};
  socklen_t length = 0;
  int family = AF_UNSPEC;
};

std::vector<Address> to_addresses(const addrinfo* list) {
  std::vector<Address> out;
  for (const addrinfo* ai = list; ai != nullptr; ai = ai->ai_next) {
    if (ai->ai_addrlen > sizeof(sockaddr_storage)) {
      continue;
    }
    Address a;
    std::memcpy(&a.storage, ai->ai_addr, ai->ai_addrlen);
    a.length = ai->ai_addrlen;
    a.family = ai->ai_family;
    out.push_back(a);
  }
  return out;
}

Error lookup_error(const std::string& what, int rc, int err) {
  if (rc == EAI_SYSTEM) {
    return Error{err, what};
  }
  return Error{0, what + ": " + ::gai_strerror(rc)};
}

// getaddrinfo() cannot be interrupted, and a dead DNS server holds it for the resolver's
// timeout times its attempts. It runs on a helper thread of its own so that the worker can
// give up and stop() returns in time; a late answer is freed by whoever finishes last.
struct Lookup {
  std::mutex mutex;
  bool done = false;               // guarded by mutex
  int rc = 0;                      // guarded by mutex
  int err = 0;                     // guarded by mutex
  std::vector<Address> addresses;  // guarded by mutex
  Fd event;                        // eventfd, readable once done
};

class SocketWriter final : public Writer {
 public:
  SocketWriter(const SinkConfig& config, std::string name)
      : tcp_(config.type == SinkType::kTcp),
        path_(config.path),
        host_(config.host),
        port_(config.port),
        name_(std::move(name)),
        backoff_(config.reconnect_min, config.reconnect_max) {}

  Result<void> open() override {
    if (tcp_) {
      if (host_.empty() || port_ == 0) {
        return Error{0, name_ + ": needs a host and a port"};
      }
      return {};
    }
    if (path_.empty() || path_.size() >= sizeof(sockaddr_un{}.sun_path)) {
      return Error{ENAMETOOLONG, name_ + ": the socket path must be 1 to " +
                                     std::to_string(sizeof(sockaddr_un{}.sun_path) - 1) + " bytes"};
    }
    return {};
  }

  Delivery write(std::string_view record, SinkCore& core) override {
    // Until the record is out whole or the stop deadline passes. Meanwhile new records
    // wait in the queue (and overflow it: counted drops).
    for (;;) {
      if (core.expired()) {
        return Delivery::kStopped;
      }
      if (!sock_.valid() && !connect(core)) {
        continue;
      }
      if (peer_gone(core)) {
        continue;
      }
      switch (send_record(record, core)) {
        case Sent::kWhole:
          backoff_.reset();  // this connection works
          return Delivery::kWritten;
        case Sent::kBroken:
          continue;  // reconnect and send the whole record again
        case Sent::kStopped:
          return Delivery::kStopped;
      }
    }
  }

  void close() override { sock_.reset(); }

 private:
  enum class Sent { kWhole, kBroken, kStopped };

  // The shipper never talks back, so anything readable is end of file or an error: the
  // peer closed or reset the connection. Checked before every record so that a record is
  // not handed to a connection already known dead (for TCP, the first send() after the
  // peer's close would succeed and the record would vanish with the peer's RST).
  bool peer_gone(SinkCore& core) {
    std::array<char, 512> scratch{};
    for (;;) {
      const ssize_t n = ::recv(sock_.get(), scratch.data(), scratch.size(), MSG_DONTWAIT);
      if (n > 0) {
        continue;  // unexpected chatter from the peer: ignored
      }
      if (n < 0 && errno == EINTR) {
        continue;
      }
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
        return false;
      }
      disconnect(core, n == 0 ? Error{0, name_ + ": the peer closed the connection"}
                              : errno_error(name_ + ": connection lost"));
      return true;
    }
  }

  Sent send_record(std::string_view record, SinkCore& core) {
    Error failure;
    switch (core.write_all(sock_.get(), record, /*use_send=*/true, &failure)) {
      case SinkCore::WriteAll::kComplete:
        return Sent::kWhole;
      case SinkCore::WriteAll::kStopped:
        // Out of time with the peer not reading: the connection closes on a cut line.
        return Sent::kStopped;
      case SinkCore::WriteAll::kFailed:
        break;
    }
    disconnect(core, Error{failure.errnum, "send " + name_});
    return Sent::kBroken;
  }

  void disconnect(SinkCore& core, const Error& error) {
    core.count_error(error);
    core.set_connected(false);
    sock_.reset();
    next_attempt_ = Clock::now() + backoff_.next();
  }

  // One connection attempt when it is due; sleeps until then otherwise. True when
  // connected.
  bool connect(SinkCore& core) {
    if (Clock::now() < next_attempt_) {
      const bool stopping = core.stop_requested();
      core.sleep_until(next_attempt_);
      if (!stopping && core.stop_requested()) {
        next_attempt_ = Clock::now();  // one more attempt before the stop deadline
      }
      return false;
    }
    auto addresses = resolve(core);
    if (!addresses) {
      if (!core.expired()) {
        core.count_error(addresses.error());
      }
      core.set_connected(false);  // after the error it is read with
      next_attempt_ = Clock::now() + backoff_.next();
      return false;
    }
    Error last{0, "connect " + name_ + ": no address"};
    for (const Address& address : *addresses) {
      if (core.expired()) {
        return false;
      }
      auto sock = connect_one(address, core);
      if (sock) {
        sock_ = std::move(*sock);
        core.set_connected(true);
        if (connected_before_) {
          core.count_reconnect();
        }
        connected_before_ = true;
        return true;
      }
      last = sock.error();
    }
    if (!core.expired()) {
      core.count_error(last);
    }
    core.set_connected(false);  // after the error it is read with
    next_attempt_ = Clock::now() + backoff_.next();
    return false;
  }

  Result<Fd> connect_one(const Address& address, SinkCore& core) {
    Fd sock(::socket(address.family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
    if (!sock.valid()) {
      return errno_error("socket for " + name_);
    }
    // sockaddr_storage is the documented way to hold any sockaddr; the cast is the API's.
    const auto* sa = reinterpret_cast<const sockaddr*>(&address.storage);
    if (::connect(sock.get(), sa, address.length) != 0) {
      // A unix listener with a full backlog answers EAGAIN at once instead of queueing.
      if (errno != EINPROGRESS) {
        return errno_error("connect " + name_);
      }
      const short events = core.wait_for(sock.get(), POLLOUT, Clock::now() + kConnectTimeout);
      if (events == 0) {
        return Error{ETIMEDOUT, "connect " + name_};
      }
      int err = 0;
      socklen_t len = sizeof err;
      if (::getsockopt(sock.get(), SOL_SOCKET, SO_ERROR, &err, &len) != 0) {
        return errno_error("connect " + name_);
      }
      if (err != 0) {
        return Error{err, "connect " + name_};
      }
    }
    if (tcp_) {
      tune_tcp(sock.get());
    }
    return sock;
  }

  static void tune_tcp(int fd) {
    // Best effort: a kernel without one of these still delivers.
    const int on = 1;
    (void)::setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &on, sizeof on);
    (void)::setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &kKeepIdleS, sizeof kKeepIdleS);
    (void)::setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &kKeepIntervalS, sizeof kKeepIntervalS);
    (void)::setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &kKeepCount, sizeof kKeepCount);
    (void)::setsockopt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &kTcpUserTimeoutMs,
                       sizeof kTcpUserTimeoutMs);
  }

  // Resolved again for every connection attempt: a shipper moved behind a DNS name is
  // found again.
  Result<std::vector<Address>> resolve(SinkCore& core) {
    if (!tcp_) {
      Address a;
      sockaddr_un un{};
      un.sun_family = AF_UNIX;
      std::memcpy(un.sun_path, path_.data(), path_.size());
      std::memcpy(&a.storage, &un, sizeof un);
      a.length = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + path_.size() + 1);
      a.family = AF_UNIX;
      return std::vector<Address>{a};
    }
    const std::string port = std::to_string(port_);
    addrinfo hints{};
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV;
    addrinfo* list = nullptr;
    const int rc = ::getaddrinfo(host_.c_str(), port.c_str(), &hints, &list);
    if (rc == 0) {
      auto out = to_addresses(list);
      ::freeaddrinfo(list);
      return out;
    }
    if (rc != EAI_NONAME) {
      return lookup_error("resolve " + name_, rc, errno);
    }
    return resolve_name(core);
  }

  Result<std::vector<Address>> resolve_name(SinkCore& core) {
    auto lookup = std::make_shared<Lookup>();
    lookup->event.reset(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
    if (!lookup->event.valid()) {
      return errno_error("resolve " + name_ + ": eventfd");
    }
    try {
      std::thread([lookup, host = host_, port = std::to_string(port_)] {
        addrinfo hints{};
        hints.ai_socktype = SOCK_STREAM;
        hints.ai_flags = AI_NUMERICSERV;
        addrinfo* list = nullptr;
        const int rc = ::getaddrinfo(host.c_str(), port.c_str(), &hints, &list);
        const int err = errno;
        auto addresses = rc == 0 ? to_addresses(list) : std::vector<Address>{};
        if (list != nullptr) {
          ::freeaddrinfo(list);
        }
        {
          std::lock_guard lock(lookup->mutex);
          lookup->rc = rc;
          lookup->err = err;
          lookup->addresses = std::move(addresses);
          lookup->done = true;
        }
        const std::uint64_t one = 1;
        [[maybe_unused]] const ssize_t n = ::write(lookup->event.get(), &one, sizeof one);
      }).detach();
    } catch (const std::system_error& e) {
      return Error{e.code().value(), "resolve " + name_ + ": starting the lookup thread"};
    }
    core.wait_for(lookup->event.get(), POLLIN, Clock::now() + kResolveTimeout);
    std::lock_guard lock(lookup->mutex);
    if (!lookup->done) {
      return Error{ETIMEDOUT, "resolve " + name_};
    }
    if (lookup->rc != 0) {
      return lookup_error("resolve " + name_, lookup->rc, lookup->err);
    }
    return std::move(lookup->addresses);
  }

  const bool tcp_;
  const std::string path_;
  const std::string host_;
  const std::uint16_t port_;
  const std::string name_;

  Fd sock_;
  bool connected_before_ = false;
  SinkCore::Backoff backoff_;
  Clock::time_point next_attempt_{};
};

}  // namespace

// ---- the unix and tcp sink types ----------------------------------------------------------

namespace {

using document::as_duration;
using document::as_integer;
using document::fail;
using document::format_duration;
using document::json;
using document::member_path;
using namespace std::chrono_literals;

std::unique_ptr<Sink> make_socket_sink(const SinkConfig& c, const SinkContext& /*context*/) {
  return queued(c, std::make_unique<SocketWriter>(c, sink_name(c)));
}

// The keys both types take, after the queue keys.
constexpr std::array<SinkKey, 2> kReconnectKeys = {{
    {"reconnect_min",
     [](const json& v, const std::string& p, SinkConfig& s) {
       s.reconnect_min = as_duration(v, p, {10ms, {}});
     }},
    {"reconnect_max",
     [](const json& v, const std::string& p, SinkConfig& s) {
       s.reconnect_max = as_duration(v, p, {10ms, {}});
     }},
}};

void check_reconnect(const json& v, const std::string& path, SinkConfig& sink) {
  if (sink.reconnect_min > sink.reconnect_max) {
    // Blame the key the user wrote; when both were written, the maximum.
    if (v.contains("reconnect_max")) {
      fail(member_path(path, "reconnect_max"),
           "must be at least reconnect_min (" + format_duration(sink.reconnect_min) + ")");
    }
    fail(member_path(path, "reconnect_min"),
         "must be at most reconnect_max (" + format_duration(sink.reconnect_max) + ")");
  }
}

constexpr std::array<SinkKey, 1> kUnixLeadingKeys = {{
    {"path", [](const json& v, const std::string& p,
                SinkConfig& s) { s.path = as_path(v, p, SinkType::kUnix); }},
}};

constexpr std::array<SinkKey, 2> kTcpLeadingKeys = {{
    {"host", [](const json& v, const std::string& p, SinkConfig& s) { s.host = as_host(v, p); }},
    {"port",
     [](const json& v, const std::string& p, SinkConfig& s) {
       s.port = static_cast<std::uint16_t>(as_integer(v, p, 1, 65535, "must be 1 to 65535"));
     }},
}};

}  // namespace

extern constexpr SinkKind kUnixKind = {
    .type = SinkType::kUnix,
    .word = "unix",
    .leading_keys = kUnixLeadingKeys,
    .keys = kReconnectKeys,
    .required = {"path", ""},
    .check = check_reconnect,
    .destination = [](const SinkConfig& sink) { return sink.path; },
    .make = make_socket_sink,
};

extern constexpr SinkKind kTcpKind = {
    .type = SinkType::kTcp,
    .word = "tcp",
    .leading_keys = kTcpLeadingKeys,
    .keys = kReconnectKeys,
    .required = {"host", "port"},
    .check = check_reconnect,
    .destination =
        [](const SinkConfig& sink) {
          // An IPv6 address in brackets, as in a URL, so the port stays readable.
          const bool v6 = sink.host.find(':') != std::string::npos;
          return (v6 ? "[" + sink.host + "]" : sink.host) + ":" + std::to_string(sink.port);
        },
    .make = make_socket_sink,
};

}  // namespace sockstate::sink::detail
