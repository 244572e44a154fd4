#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "sockstate/common/error.h"
#include "sockstate/sink/sink_config.h"

namespace sockstate::sink {

// How much a sink's queue may hold. A record is charged its size plus kQueueEntryBytes
// (the string and deque bookkeeping around it), so `bytes` bounds the memory it takes.
struct QueueLimit {
  std::size_t records = 65536;
  std::size_t bytes = 16U << 20;
};
inline constexpr std::size_t kQueueEntryBytes = 64;

// Counters only ever grow, except `queued`. For every sink, at any moment:
//   records submitted == written + dropped + queued
// (a record being written right now counts as queued until it is written or dropped).
struct SinkStats {
  std::uint64_t written = 0;     // records delivered
  std::uint64_t dropped = 0;     // records lost: queue full, or not deliverable
  std::uint64_t errors = 0;      // write/connect failures (each may drop records)
  std::uint64_t reconnects = 0;  // socket sinks: connections made after the first; kafka
                                 // sinks: producers replaced after a fatal error
  std::uint64_t reopens = 0;     // file sinks: reopened (SIGHUP) or rotated
  std::size_t queued = 0;        // records waiting now
  std::size_t queued_bytes = 0;  // what they hold, as the queue counts it (see QueueLimit)
  int connected = -1;            // socket and kafka sinks: 1 connected, 0 not; -1 for others
  int brokers_up = -1;           // kafka sinks: brokers with a connection up; -1 for others
  std::uint64_t left_out = 0;    // times the sink set left it out of pacing (SinkSet::watch)
};

// What sinks may need to know of the host: the kafka sink's message key.
struct SinkContext {
  std::string device_uid;
};

// One destination for records. Each sink owns a bounded queue and a worker thread, so a
// slow or dead destination never blocks the collector or the other sinks: submit() never
// waits; what does not fit is dropped and counted.
//
// Thread safety: submit(), reopen(), stats() and last_error() may be called from any
// thread at any time; start() and stop() from one controlling thread. Library code does
// not log: the daemon reads stats() and last_error() and logs what it wants.
class Sink {
 public:
  virtual ~Sink() = default;

  // "stdout", "file:/var/log/sockstate/sockstate.jsonl", "tcp:127.0.0.1:5170", ...
  [[nodiscard]] virtual const std::string& name() const = 0;

  // Opens the destination and starts the worker. A file that cannot be opened is an
  // Error (the daemon refuses to start); a socket sink that cannot connect yet is not
  // (it keeps trying with backoff, dropping what overflows its queue).
  virtual Result<void> start() = 0;

  // Queues one record: a complete JSON object ending in '\n'. Never blocks (it takes a
  // mutex only for a queue push). After stop(), records are dropped and counted.
  virtual void submit(std::string_view record) = 0;

  // SIGHUP: reopen files (after logrotate renamed them). Asynchronous; never blocks.
  virtual void reopen() = 0;

  // Delivers what is queued (waiting at most `timeout`), then stops the worker. What is
  // still queued after the timeout is counted as dropped. Returns within about `timeout`
  // even when the destination is dead or stalled. Calling it again does nothing.
  virtual void stop(std::chrono::milliseconds timeout) = 0;

  // stop() without the wait: from now on submit() drops, and the worker delivers what is
  // queued until `timeout` has passed, then ends. Never blocks. stop() afterwards keeps
  // this deadline and returns at once when finished().
  virtual void request_stop(std::chrono::milliseconds timeout) = 0;

  // The worker has ended (or never started): stop() would not wait.
  [[nodiscard]] virtual bool finished() const = 0;

  // What its queue may hold.
  [[nodiscard]] virtual QueueLimit limit() const = 0;

  // True once the worker has ended, shared: for follow().
  [[nodiscard]] virtual std::shared_ptr<const std::atomic<bool>> finished_flag() const = 0;
  // Before start(): the worker writes nothing until `predecessor` is true (a sink of the
  // same destination still delivering what it queued before a reload), so the two never
  // write at once. Records wait in the queue meanwhile.
  virtual void follow(std::shared_ptr<const std::atomic<bool>> predecessor) = 0;

  [[nodiscard]] virtual SinkStats stats() const = 0;

  // The most recent write, open or connect failure ("connect unix:/run/x.sock: Connection
  // refused"), or "" when there has been none. For the daemon's periodic stats log line.
  [[nodiscard]] virtual std::string last_error() const { return {}; }

  // Why records were dropped, once per kind of failure since start (each a short reason
  // such as "Local: Message timed out"), for the daemon to log the first of each kind.
  // Returns each kind once, the first time it is called after the kind first occurred.
  virtual std::vector<std::string> take_failure_kinds() { return {}; }

  // What the sink did of its own accord that an operator should hear of, once each (a file
  // sink whose file was deleted made it again), since the last call.
  virtual std::vector<std::string> take_notices() { return {}; }
};

// The sink a configuration entry describes (not started).
std::unique_ptr<Sink> make_sink(const SinkConfig& config,
                                const SinkContext& context = SinkContext{});

// What a sink will need from this host that its configuration cannot say: for a file
// sink, the directory exists and is writable, and the group exists; for a kafka sink,
// librdkafka takes every property and loads the certificates and keys (no connection is
// made). For check-config, so
// that a configuration it accepts does not fail at start.
Result<void> preflight(const SinkConfig& sink);

// The limit a configuration entry sets.
QueueLimit queue_limit(const SinkConfig& config);

// A sink writing to an already open descriptor (the stdout sink is make_fd_sink(1,
// "stdout", limit)). The caller keeps ownership of `fd` and keeps it open until stop()
// returns. Each record goes out whole in order; on a pipe or socket the sink writes
// without blocking (a pipe is reopened through /proc/self/fd as its own non-blocking open
// file description, so the shared descriptor's flags are left alone), which is what lets
// stop() return when the reader has stalled. A pipe whose reader is gone raises SIGPIPE:
// the daemon ignores SIGPIPE.
std::unique_ptr<Sink> make_fd_sink(int fd, std::string name, QueueLimit limit);

// journald's native protocol socket.
inline constexpr std::string_view kJournalSocket = "/run/systemd/journal/socket";

// The journald sink of make_sink(), sending to `socket_path` instead of kJournalSocket
// (tests point it at a datagram socket of their own).
std::unique_ptr<Sink> make_journald_sink(const SinkConfig& config, std::string socket_path);

}  // namespace sockstate::sink
