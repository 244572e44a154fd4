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

bool SinkLedger::charge(std::size_t cost) {
  if (queued_.load(std::memory_order_relaxed) + 1 > limit_.records ||
      queued_bytes_.load(std::memory_order_relaxed) + cost > limit_.bytes) {
    dropped_.fetch_add(1, std::memory_order_relaxed);
    return false;
  }
  queued_.fetch_add(1, std::memory_order_relaxed);
  queued_bytes_.fetch_add(cost, std::memory_order_relaxed);
  return true;
}

void SinkLedger::settle(std::size_t count, std::size_t cost, bool written) {
  queued_bytes_.fetch_sub(cost, std::memory_order_relaxed);
  (written ? written_ : dropped_).fetch_add(count, std::memory_order_relaxed);
  queued_.fetch_sub(count, std::memory_order_relaxed);
}

void SinkLedger::drop_queued() {
  dropped_.fetch_add(queued_.exchange(0), std::memory_order_relaxed);
  queued_bytes_.store(0, std::memory_order_relaxed);
}

void SinkLedger::count_error(const std::string& why) {
  errors_.fetch_add(1, std::memory_order_relaxed);
  std::lock_guard lock(mutex_);
  last_error_ = why;
}

void SinkLedger::drop_reason(int kind, const std::string& reason) {
  std::lock_guard lock(mutex_);
  last_error_ = reason;
  if (kinds_seen_.insert(kind).second) {
    kinds_new_.push_back(reason);
  }
}

void SinkLedger::set_waiting(std::string what) {
  std::lock_guard lock(mutex_);
  waiting_ = std::move(what);
}

void SinkLedger::notice(std::string text) {
  std::lock_guard lock(mutex_);
  notices_.push_back(std::move(text));
}

SinkStats SinkLedger::stats() const {
  SinkStats s;
  // Each counter is exact; read while a worker runs, their sum may be one record off
  // (the one changing from queued to written or dropped).
  s.written = written_.load(std::memory_order_relaxed);
  s.dropped = dropped_.load(std::memory_order_relaxed);
  s.errors = errors_.load(std::memory_order_relaxed);
  s.reconnects = reconnects_.load(std::memory_order_relaxed);
  s.reopens = reopens_.load(std::memory_order_relaxed);
  s.queued = queued_.load(std::memory_order_relaxed);
  s.queued_bytes = queued_bytes_.load(std::memory_order_relaxed);
  s.connected = connected_.load(std::memory_order_relaxed);
  s.brokers_up = brokers_up_.load(std::memory_order_relaxed);
  return s;
}

std::string SinkLedger::last_error() const {
  std::lock_guard lock(mutex_);
  // A destination that accepts connections and never answers raises no error: say what
  // the sink waits for instead.
  if (errors_.load(std::memory_order_relaxed) == 0 && !waiting_.empty()) {
    return waiting_;
  }
  return last_error_;
}

std::vector<std::string> SinkLedger::take_failure_kinds() {
  std::lock_guard lock(mutex_);
  return std::exchange(kinds_new_, {});
}

std::vector<std::string> SinkLedger::take_notices() {
  std::lock_guard lock(mutex_);
  return std::exchange(notices_, {});
}

QueueLimit queue_limit(const SinkConfig& config) {
  return QueueLimit{config.queue_records, config.queue_bytes};
}

}  // namespace sockstate::sink
