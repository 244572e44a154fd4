#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>

#include "sockstate/common/error.h"

struct MHD_Daemon;

namespace sockstate::metrics {

// Prometheus text exposition (format 0.0.4), built one metric family at a time.
class Exposition {
 public:
  // Starts a family: its # HELP and # TYPE lines ("counter" or "gauge").
  void family(std::string_view name, std::string_view help, std::string_view type);
  // One sample of the current family; `labels` is already "key=\"value\",..." or empty.
  void sample(std::string_view name, std::string_view labels, std::uint64_t value);
  void sample(std::string_view name, std::string_view labels, double value);
  [[nodiscard]] const std::string& text() const { return text_; }

 private:
  std::string text_;
};

// A label value with '\\', '"' and newlines escaped, as the exposition format wants.
std::string label_value(std::string_view value);

// The daemon's operator view: GET /metrics answers the latest exposition published, from
// a thread of its own that runs libmicrohttpd, so a slow scraper never holds up the
// collector. Anything else is 404 (405 for another method). Off unless configured.
//
// Slow clients cannot starve it: each connection has a deadline, and when every slot is
// taken the oldest makes room for a connection that waits.
class MetricsServer {
 public:
  // Connections served at once; more wait in the kernel's accept queue.
  static constexpr unsigned kMaxConnections = 256;
  // A connection's whole request must arrive, and its answer be written, within this of
  // its acceptance, or it is cut. One request a connection: libmicrohttpd closes it after
  // an answer queued at the first call of the handler.
  static constexpr std::chrono::milliseconds kRequestDeadline{3000};
  // With every slot taken and a connection waiting, the oldest is cut once it is this old:
  // room soon, and a connection just accepted has the time to send its request.
  static constexpr std::chrono::milliseconds kCutWhenFullAfter{100};

  // `address`: "IP:PORT" or "[IPv6]:PORT" (config key metrics_listen).
  static Result<std::unique_ptr<MetricsServer>> start(const std::string& address);
  ~MetricsServer();
  MetricsServer(const MetricsServer&) = delete;
  MetricsServer& operator=(const MetricsServer&) = delete;

  void publish(std::string text);
  [[nodiscard]] std::string current() const;
  [[nodiscard]] std::uint64_t scrapes() const;
  // Connections cut: past kRequestDeadline, or the oldest to make room.
  [[nodiscard]] std::uint64_t connections_cut() const;

 private:
  struct Loop;  // the thread and what it knows of each connection (server.cpp)

  MetricsServer();
  void count_cut();

  MHD_Daemon* daemon_ = nullptr;
  std::unique_ptr<Loop> loop_;
  mutable std::mutex mutex_;
  std::string text_;
  std::uint64_t scrapes_ = 0;
  std::uint64_t cut_ = 0;
  friend struct Handler;
};

// Splits "IP:PORT" / "[IPv6]:PORT"; nullopt-like Error when it is not one.
struct ListenAddress {
  std::string ip;
  std::uint16_t port = 0;
  bool v6 = false;
};
Result<ListenAddress> parse_listen_address(std::string_view text);

}  // namespace sockstate::metrics
