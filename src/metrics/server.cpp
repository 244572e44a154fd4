#include "sockstate/metrics/server.h"

#include <arpa/inet.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <charconv>
#include <climits>
#include <cstring>
#include <thread>
#include <unordered_map>

#include "sockstate/common/fd.h"
#include "sockstate/common/shared_library.h"

namespace sockstate::metrics {

void Exposition::family(std::string_view name, std::string_view help, std::string_view type) {
  text_.append("# HELP ").append(name).append(" ").append(help).append("\n");
  text_.append("# TYPE ").append(name).append(" ").append(type).append("\n");
}

void Exposition::sample(std::string_view name, std::string_view labels, std::uint64_t value) {
  text_.append(name);
  if (!labels.empty()) {
    text_.append("{").append(labels).append("}");
  }
  text_.append(" ").append(std::to_string(value)).append("\n");
}

void Exposition::sample(std::string_view name, std::string_view labels, double value) {
  text_.append(name);
  if (!labels.empty()) {
    text_.append("{").append(labels).append("}");
  }
  std::array<char, 32> buf{};
  const auto [end, ec] = std::to_chars(buf.data(), buf.data() + buf.size(), value);
  text_.append(" ").append(buf.data(), end).append("\n");
}

std::string label_value(std::string_view value) {
  std::string out;
  for (const char c : value) {
    if (c == '\\' || c == '"') {
      out.push_back('\\');
      out.push_back(c);
    } else if (c == '\n') {
      out.append("\\n");
    } else {
      out.push_back(c);
    }
  }
  return out;
}

Result<ListenAddress> parse_listen_address(std::string_view text) {
  ListenAddress a;
  std::string_view host;
  std::string_view port;
  if (!text.empty() && text.front() == '[') {
    const auto close = text.find("]:");
    if (close == std::string_view::npos) {
      return Error{0, "not [IPv6]:PORT"};
    }
    host = text.substr(1, close - 1);
    port = text.substr(close + 2);
    a.v6 = true;
  } else {
    const auto colon = text.rfind(':');
    if (colon == std::string_view::npos) {
      return Error{0, "not IP:PORT"};
    }
    host = text.substr(0, colon);
    port = text.substr(colon + 1);
  }
  if (host.find('\0') != std::string_view::npos) {
    return Error{0, "not an IP address"};  // inet_pton() would read only up to the NUL
  }
  a.ip = std::string(host);
  std::array<std::uint8_t, 16> raw{};
  if (::inet_pton(a.v6 ? AF_INET6 : AF_INET, a.ip.c_str(), raw.data()) != 1) {
    return Error{0, "\"" + a.ip + "\" is not an IP address"};
  }
  unsigned value = 0;
  const auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), value);
  if (port.empty() || ec != std::errc() || end != port.data() + port.size() || value == 0 ||
      value > 65535) {
    return Error{0, "the port must be 1 to 65535"};
  }
  a.port = static_cast<std::uint16_t>(value);
  return a;
}

// libmicrohttpd, loaded when an endpoint is configured: it brings GnuTLS and a dozen more
// libraries whose loading and initialisation every `sockstate snapshot` would otherwise pay
// (+13 ms and +2.5 MiB measured on 146,000 sockets).
struct Mhd {
  decltype(&MHD_start_daemon) start_daemon = nullptr;
  decltype(&MHD_stop_daemon) stop_daemon = nullptr;
  decltype(&MHD_create_response_from_buffer) create_response = nullptr;
  decltype(&MHD_add_response_header) add_header = nullptr;
  decltype(&MHD_queue_response) queue_response = nullptr;
  decltype(&MHD_destroy_response) destroy_response = nullptr;
  decltype(&MHD_run) run = nullptr;
  decltype(&MHD_get_timeout) get_timeout = nullptr;
  decltype(&MHD_get_daemon_info) daemon_info = nullptr;
  decltype(&MHD_get_connection_info) connection_info = nullptr;

  static const Mhd* get() {
    static const Mhd* const kLoaded = []() -> const Mhd* {
      auto lib = SharedLibrary::open("libmicrohttpd.so.12");
      if (!lib) {
        return nullptr;
      }
      static Mhd m;
      lib->bind("MHD_start_daemon", m.start_daemon);
      lib->bind("MHD_stop_daemon", m.stop_daemon);
      lib->bind("MHD_create_response_from_buffer", m.create_response);
      lib->bind("MHD_add_response_header", m.add_header);
      lib->bind("MHD_queue_response", m.queue_response);
      lib->bind("MHD_destroy_response", m.destroy_response);
      lib->bind("MHD_run", m.run);
      lib->bind("MHD_get_timeout", m.get_timeout);
      lib->bind("MHD_get_daemon_info", m.daemon_info);
      lib->bind("MHD_get_connection_info", m.connection_info);
      return lib->missing().empty() ? &m : nullptr;
    }();
    return kLoaded;
  }
};

struct Handler {
  static MHD_Result answer(void* cls, MHD_Connection* connection, const char* url,
                           const char* method, const char* /*version*/, const char* /*upload_data*/,
                           std::size_t* /*upload_size*/, void** /*state*/) {
    auto* server = static_cast<MetricsServer*>(cls);
    unsigned status = MHD_HTTP_OK;
    std::string body;
    if (std::strcmp(method, "GET") != 0 && std::strcmp(method, "HEAD") != 0) {
      status = MHD_HTTP_METHOD_NOT_ALLOWED;
      body = "GET /metrics\n";
    } else if (std::strcmp(url, "/metrics") != 0) {
      status = MHD_HTTP_NOT_FOUND;
      body = "GET /metrics\n";
    } else {
      std::lock_guard lock(server->mutex_);
      body = server->text_;
      ++server->scrapes_;
    }
    const Mhd& mhd = *Mhd::get();
    MHD_Response* response = mhd.create_response(body.size(), body.data(), MHD_RESPMEM_MUST_COPY);
    if (response == nullptr) {
      return MHD_NO;
    }
    (void)mhd.add_header(response, "Content-Type",
                         status == MHD_HTTP_OK ? "text/plain; version=0.0.4" : "text/plain");
    const MHD_Result queued = mhd.queue_response(connection, status, response);
    mhd.destroy_response(response);
    return queued;
  }
};

namespace {

std::int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

constexpr std::int64_t kDeadlineMs = MetricsServer::kRequestDeadline.count();
constexpr std::int64_t kCutWhenFullMs = MetricsServer::kCutWhenFullAfter.count();
// Per connection (32 KiB by default): a scrape's request headers several times over, and
// 2 MiB for every slot taken.
constexpr std::size_t kConnectionMemory = std::size_t{8} * 1024;
// libmicrohttpd's own idle timeout, a backstop only: the request deadline comes first.
constexpr unsigned kIdleTimeoutS = 10;

sockaddr_storage socket_address(const ListenAddress& listen) {
  sockaddr_storage storage{};
  if (listen.v6) {
    auto* in6 = reinterpret_cast<sockaddr_in6*>(&storage);
    in6->sin6_family = AF_INET6;
    in6->sin6_port = htons(listen.port);
    (void)::inet_pton(AF_INET6, listen.ip.c_str(), &in6->sin6_addr);
  } else {
    auto* in = reinterpret_cast<sockaddr_in*>(&storage);
    in->sin_family = AF_INET;
    in->sin_port = htons(listen.port);
    (void)::inet_pton(AF_INET, listen.ip.c_str(), &in->sin_addr);
  }
  return storage;
}

}  // namespace

// libmicrohttpd run by a thread of ours rather than by its own, so that between two
// MHD_run() calls that thread can cut connections without a race: libmicrohttpd closes a
// connection's socket only inside MHD_run(), right after telling notify(), so a socket in
// `open` is still that connection's own when the thread shuts it down, never a number
// already reused. shutdown() leaves the socket at end of file, and the next MHD_run()
// closes the connection as if the client had gone.
struct MetricsServer::Loop {
  struct Accepted {
    int fd = -1;
    std::int64_t at_ms = 0;
    bool cut = false;  // shut down, closed by the next MHD_run()
  };
  struct Wait {
    int timeout_ms = -1;
    bool listen = false;  // full: watch the listening socket for a connection that waits
  };

  explicit Loop(MetricsServer& s) : server(s) {}

  // MHD_OPTION_NOTIFY_CONNECTION: a connection accepted, or closed.
  static void notify(void* cls, MHD_Connection* connection, void** /*socket_context*/,
                     MHD_ConnectionNotificationCode code) {
    Loop& loop = *static_cast<Loop*>(cls);
    if (code == MHD_CONNECTION_NOTIFY_STARTED) {
      const MHD_ConnectionInfo* info =
          Mhd::get()->connection_info(connection, MHD_CONNECTION_INFO_CONNECTION_FD);
      loop.open[connection] = Accepted{info != nullptr ? info->connect_fd : -1, now_ms()};
    } else {
      loop.open.erase(connection);
      ++loop.closes;
    }
  }

  void run();
  [[nodiscard]] Wait next_wait(std::int64_t now) const;
  std::size_t cut_expired(std::int64_t now);
  void cut_oldest();
  void cut(Accepted& accepted);
  void run_mhd();

  MetricsServer& server;
  Fd wake{::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)};  // readable once the server goes
  int epoll_fd = -1;                                  // libmicrohttpd's, for poll()
  int listen_fd = -1;
  std::unordered_map<MHD_Connection*, Accepted> open;
  std::uint64_t closes = 0;
  std::thread thread;
};

void MetricsServer::Loop::run() {
  for (;;) {
    const Wait wait = next_wait(now_ms());
    std::array<pollfd, 3> fds{
        {{wake.get(), POLLIN, 0}, {epoll_fd, POLLIN, 0}, {listen_fd, POLLIN, 0}}};
    (void)::poll(fds.data(), wait.listen ? 3 : 2, wait.timeout_ms);
    if ((fds[0].revents & POLLIN) != 0) {
      return;
    }
    // Every slot is taken and a connection waits: the oldest makes room, unless one past
    // its deadline is going already.
    if (cut_expired(now_ms()) == 0 && wait.listen && (fds[2].revents & POLLIN) != 0) {
      cut_oldest();
    }
    run_mhd();
  }
}

MetricsServer::Loop::Wait MetricsServer::Loop::next_wait(std::int64_t now) const {
  Wait wait;
  std::int64_t until = INT64_MAX;  // the next deadline, or libmicrohttpd's next timeout
  MHD_UNSIGNED_LONG_LONG mhd_ms = 0;
  if (Mhd::get()->get_timeout(server.daemon_, &mhd_ms) == MHD_YES) {
    until = now + static_cast<std::int64_t>(std::min<MHD_UNSIGNED_LONG_LONG>(mhd_ms, INT_MAX));
  }
  std::int64_t oldest = INT64_MAX;
  for (const auto& [connection, e] : open) {
    if (!e.cut) {
      until = std::min(until, e.at_ms + kDeadlineMs);
      oldest = std::min(oldest, e.at_ms);
    }
  }
  if (open.size() >= kMaxConnections && oldest != INT64_MAX) {
    if (now >= oldest + kCutWhenFullMs) {
      wait.listen = true;
    } else {
      until = std::min(until, oldest + kCutWhenFullMs);
    }
  }
  if (until != INT64_MAX) {
    wait.timeout_ms = static_cast<int>(std::clamp<std::int64_t>(until - now, 0, INT_MAX));
  }
  return wait;
}

std::size_t MetricsServer::Loop::cut_expired(std::int64_t now) {
  std::size_t n = 0;
  for (auto& [connection, e] : open) {
    if (!e.cut && now >= e.at_ms + kDeadlineMs) {
      cut(e);
      ++n;
    }
  }
  return n;
}

void MetricsServer::Loop::cut_oldest() {
  Accepted* oldest = nullptr;
  for (auto& [connection, e] : open) {
    if (!e.cut && (oldest == nullptr || e.at_ms < oldest->at_ms)) {
      oldest = &e;
    }
  }
  if (oldest != nullptr) {
    cut(*oldest);
  }
}

void MetricsServer::Loop::cut(Accepted& accepted) {
  accepted.cut = true;
  if (accepted.fd >= 0) {
    (void)::shutdown(accepted.fd, SHUT_RDWR);
    server.count_cut();
  }
}

void MetricsServer::Loop::run_mhd() {
  const Mhd& mhd = *Mhd::get();
  const std::uint64_t closes_before = closes;
  (void)mhd.run(server.daemon_);
  if (closes != closes_before) {
    // libmicrohttpd leaves its listening socket out of its epoll set while it is full (or
    // short of descriptors) and puts it back only as a run starts: one more run after a
    // close, or a connection that waits would wait for the next event.
    (void)mhd.run(server.daemon_);
  }
}

MetricsServer::MetricsServer() : loop_(std::make_unique<Loop>(*this)) {}

Result<std::unique_ptr<MetricsServer>> MetricsServer::start(const std::string& address) {
  auto listen = parse_listen_address(address);
  if (!listen) {
    return Error{0, "metrics_listen \"" + address + "\": " + listen.error().context};
  }
  const Mhd* mhd = Mhd::get();
  if (mhd == nullptr) {
    return Error{0, "metrics_listen: cannot load libmicrohttpd.so.12 (package libmicrohttpd12)"};
  }
  std::unique_ptr<MetricsServer> server(new MetricsServer());
  Loop& loop = *server->loop_;
  if (!loop.wake.valid()) {
    return Error{errno, "metrics_listen: eventfd"};
  }
  sockaddr_storage storage = socket_address(*listen);
  unsigned flags = MHD_USE_EPOLL;  // and no thread of its own: Loop runs it
  if (listen->v6) {
    flags |= MHD_USE_IPv6;
  }
  const MHD_NotifyConnectionCallback notify = &Loop::notify;
  server->daemon_ = mhd->start_daemon(
      flags, listen->port, nullptr, nullptr, &Handler::answer, server.get(), MHD_OPTION_SOCK_ADDR,
      reinterpret_cast<sockaddr*>(&storage), MHD_OPTION_CONNECTION_LIMIT, kMaxConnections,
      MHD_OPTION_CONNECTION_MEMORY_LIMIT, kConnectionMemory, MHD_OPTION_CONNECTION_TIMEOUT,
      kIdleTimeoutS, MHD_OPTION_NOTIFY_CONNECTION, notify, &loop, MHD_OPTION_END);
  if (server->daemon_ == nullptr) {
    return Error{EADDRNOTAVAIL, "cannot serve metrics on " + address};
  }
  const MHD_DaemonInfo* epoll = mhd->daemon_info(server->daemon_, MHD_DAEMON_INFO_EPOLL_FD);
  const MHD_DaemonInfo* socket = mhd->daemon_info(server->daemon_, MHD_DAEMON_INFO_LISTEN_FD);
  if (epoll == nullptr || socket == nullptr) {
    return Error{0, "cannot serve metrics on " + address + ": libmicrohttpd without epoll"};
  }
  loop.epoll_fd = epoll->epoll_fd;
  loop.listen_fd = socket->listen_fd;
  loop.thread = std::thread([&loop] { loop.run(); });
  return server;
}

MetricsServer::~MetricsServer() {
  if (loop_->thread.joinable()) {
    const std::uint64_t one = 1;
    // Cannot block (EFD_NONBLOCK) and cannot overflow with one write.
    [[maybe_unused]] const ssize_t n = ::write(loop_->wake.get(), &one, sizeof one);
    loop_->thread.join();
  }
  if (daemon_ != nullptr) {
    Mhd::get()->stop_daemon(daemon_);  // closes what is left, telling notify() (thread gone)
  }
}

void MetricsServer::publish(std::string text) {
  std::lock_guard lock(mutex_);
  text_ = std::move(text);
}

std::string MetricsServer::current() const {
  std::lock_guard lock(mutex_);
  return text_;
}

std::uint64_t MetricsServer::scrapes() const {
  std::lock_guard lock(mutex_);
  return scrapes_;
}

void MetricsServer::count_cut() {
  std::lock_guard lock(mutex_);
  ++cut_;
}

std::uint64_t MetricsServer::connections_cut() const {
  std::lock_guard lock(mutex_);
  return cut_;
}

}  // namespace sockstate::metrics
