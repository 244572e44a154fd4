// make_sink() and preflight() through the registry; each type's own code is beside its
// writer (registry.h).
#include "sockstate/sink/sink.h"

#include <memory>
#include <utility>

#include "queued_sink.h"
#include "sockstate/sink/registry.h"

namespace sockstate::sink {

std::unique_ptr<Sink> detail::queued(const SinkConfig& config, std::unique_ptr<Writer> writer) {
  return std::make_unique<QueuedSink>(sink_name(config), queue_limit(config), std::move(writer));
}

std::unique_ptr<Sink> make_sink(const SinkConfig& config, const SinkContext& context) {
  const SinkKind* kind = find_kind(config.type);
  return kind == nullptr || kind->make == nullptr ? nullptr : kind->make(config, context);
}

Result<void> preflight(const SinkConfig& sink) {
  const SinkKind* kind = find_kind(sink.type);
  return kind == nullptr || kind->preflight == nullptr ? Result<void>{} : kind->preflight(sink);
}

QueueLimit queue_limit(const SinkConfig& config) {
  return QueueLimit{config.queue_records, config.queue_bytes};
}

}  // namespace sockstate::sink
