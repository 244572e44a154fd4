#include "sockstate/sink/sink.h"

#include <unistd.h>

#include <array>
#include <string>
#include <utility>

#include "queued_sink.h"

namespace sockstate::sink {

namespace {

std::unique_ptr<Sink> queued(const SinkConfig& config, std::unique_ptr<detail::Writer> writer) {
  return std::make_unique<detail::QueuedSink>(config::sink_name(config), queue_limit(config),
                                              std::move(writer));
}

// Each sink type's writer and its preflight (nullptr: it needs nothing of the host). The
// config keys of a type are config.cpp's kSinkTypeRows and kSinkKeys; a new sink type is
// a writer (or a Sink of its own) in this folder and a row in each table.
struct SinkMaker {
  SinkType type;
  std::unique_ptr<Sink> (*make)(const SinkConfig& config, const SinkContext& context);
  Result<void> (*preflight)(const SinkConfig& config);
};
const std::array<SinkMaker, 6> kSinkMakers = {{
    {SinkType::kStdout,
     [](const SinkConfig& c, const SinkContext&) {
       return make_fd_sink(STDOUT_FILENO, config::sink_name(c), queue_limit(c));
     },
     nullptr},
    {SinkType::kFile,
     [](const SinkConfig& c, const SinkContext&) { return queued(c, detail::make_file_writer(c)); },
     detail::file_preflight},
    {SinkType::kUnix,
     [](const SinkConfig& c, const SinkContext&) {
       return queued(c, detail::make_socket_writer(c, config::sink_name(c)));
     },
     nullptr},
    {SinkType::kTcp,
     [](const SinkConfig& c, const SinkContext&) {
       return queued(c, detail::make_socket_writer(c, config::sink_name(c)));
     },
     nullptr},
    {SinkType::kJournald,
     [](const SinkConfig& c, const SinkContext&) {
       return make_journald_sink(c, std::string(kJournalSocket));
     },
     nullptr},
    {SinkType::kKafka, detail::make_kafka_sink, detail::kafka_preflight},
}};

const SinkMaker* maker_of(SinkType type) {
  for (const auto& m : kSinkMakers) {
    if (m.type == type) {
      return &m;
    }
  }
  return nullptr;
}

}  // namespace

std::unique_ptr<Sink> make_sink(const SinkConfig& config, const SinkContext& context) {
  const SinkMaker* maker = maker_of(config.type);
  return maker == nullptr ? nullptr : maker->make(config, context);
}

Result<void> preflight(const SinkConfig& sink) {
  const SinkMaker* maker = maker_of(sink.type);
  return maker == nullptr || maker->preflight == nullptr ? Result<void>{} : maker->preflight(sink);
}

QueueLimit queue_limit(const SinkConfig& config) {
  return QueueLimit{config.queue_records, config.queue_bytes};
}

std::unique_ptr<Sink> make_fd_sink(int fd, std::string name, QueueLimit limit) {
  auto writer = detail::make_fd_writer(fd, name);
  return std::make_unique<detail::QueuedSink>(std::move(name), limit, std::move(writer));
}

std::unique_ptr<Sink> make_journald_sink(const SinkConfig& config, std::string socket_path) {
  return queued(config, detail::make_journald_writer(config, std::move(socket_path)));
}

}  // namespace sockstate::sink
