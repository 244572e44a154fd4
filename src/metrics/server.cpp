#include "sockstate/metrics/server.h"

#include <arpa/inet.h>
#include <microhttpd.h>
#include <netinet/in.h>

#include <array>
#include <charconv>
#include <cstring>

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

Result<std::unique_ptr<MetricsServer>> MetricsServer::start(const std::string& address) {
  auto listen = parse_listen_address(address);
  if (!listen) {
    return Error{0, "metrics_listen \"" + address + "\": " + listen.error().context};
  }
  sockaddr_storage storage{};
  if (listen->v6) {
    auto* in6 = reinterpret_cast<sockaddr_in6*>(&storage);
    in6->sin6_family = AF_INET6;
    in6->sin6_port = htons(listen->port);
    (void)::inet_pton(AF_INET6, listen->ip.c_str(), &in6->sin6_addr);
  } else {
    auto* in = reinterpret_cast<sockaddr_in*>(&storage);
    in->sin_family = AF_INET;
    in->sin_port = htons(listen->port);
    (void)::inet_pton(AF_INET, listen->ip.c_str(), &in->sin_addr);
  }
  const Mhd* mhd = Mhd::get();
  if (mhd == nullptr) {
    return Error{0, "metrics_listen: cannot load libmicrohttpd.so.12 (package libmicrohttpd12)"};
  }
  std::unique_ptr<MetricsServer> server(new MetricsServer());
  unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_POLL;
  if (listen->v6) {
    flags |= MHD_USE_IPv6;
  }
  // A few scrapers at a time, each bounded in time: the endpoint cannot be used to tie
  // up the daemon.
  server->daemon_ = mhd->start_daemon(
      flags, listen->port, nullptr, nullptr, &Handler::answer, server.get(), MHD_OPTION_SOCK_ADDR,
      reinterpret_cast<sockaddr*>(&storage), MHD_OPTION_CONNECTION_LIMIT, 16U,
      MHD_OPTION_CONNECTION_TIMEOUT, 10U, MHD_OPTION_END);
  if (server->daemon_ == nullptr) {
    return Error{EADDRNOTAVAIL, "cannot serve metrics on " + address};
  }
  return server;
}

MetricsServer::~MetricsServer() {
  if (daemon_ != nullptr) {
    Mhd::get()->stop_daemon(daemon_);
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

}  // namespace sockstate::metrics
