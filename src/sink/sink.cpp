#include "sockstate/sink/sink.h"

#include <unistd.h>

#include <string>
#include <utility>

#include "queued_sink.h"

namespace sockstate::sink {

std::unique_ptr<Sink> make_sink(const config::SinkConfig& config, const SinkContext& context) {
  std::string name = config::sink_name(config);
  switch (config.type) {
    case config::SinkType::kStdout:
      return make_fd_sink(STDOUT_FILENO, std::move(name), queue_limit(config));
    case config::SinkType::kFile:
      return std::make_unique<detail::QueuedSink>(std::move(name), queue_limit(config),
                                                  detail::make_file_writer(config));
    case config::SinkType::kUnix:
    case config::SinkType::kTcp: {
      auto writer = detail::make_socket_writer(config, name);
      return std::make_unique<detail::QueuedSink>(std::move(name), queue_limit(config),
                                                  std::move(writer));
    }
    case config::SinkType::kJournald:
      return make_journald_sink(config, std::string(kJournalSocket));
    case config::SinkType::kKafka:
      return detail::make_kafka_sink(config, context);
  }
  return nullptr;
}

Result<void> preflight(const config::SinkConfig& sink) {
  switch (sink.type) {
    case config::SinkType::kFile:
      return detail::file_preflight(sink);
    case config::SinkType::kKafka:
      return detail::kafka_preflight(sink);
    default:
      return {};
  }
}

QueueLimit queue_limit(const config::SinkConfig& config) {
  return QueueLimit{config.queue_records, config.queue_bytes};
}

std::unique_ptr<Sink> make_fd_sink(int fd, std::string name, QueueLimit limit) {
  auto writer = detail::make_fd_writer(fd, name);
  return std::make_unique<detail::QueuedSink>(std::move(name), limit, std::move(writer));
}

std::unique_ptr<Sink> make_journald_sink(const config::SinkConfig& config,
                                         std::string socket_path) {
  return std::make_unique<detail::QueuedSink>(
      config::sink_name(config), queue_limit(config),
      detail::make_journald_writer(config, std::move(socket_path)));
}

}  // namespace sockstate::sink
