// Private to the sink library: the bounded queue and worker thread every sink shares, and
// the Writer interface each destination implements.
#pragma once

#include <poll.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <random>
#include <string>
#include <string_view>
#include <thread>

#include "sockstate/common/error.h"
#include "sockstate/common/fd.h"
#include "sockstate/sink/sink.h"

namespace sockstate::sink::detail {

using Clock = std::chrono::steady_clock;

// What the worker's side of a sink offers a Writer: the stop deadline, waits that stop()
// interrupts, and the counters a Writer may bump.
class SinkCore {
 public:
  explicit SinkCore(SinkLedger& ledger);

  [[nodiscard]] bool stop_requested() const {
    return stop_requested_.load(std::memory_order_acquire);
  }
  // stop() was called and its deadline has passed: give up on the current record.
  [[nodiscard]] bool expired() const;
  // stop()'s deadline; meaningful once stop_requested().
  [[nodiscard]] Clock::time_point deadline() const;

  // Waits until `fd` reports one of `events` (returns its revents), or until `until`, or
  // until the stop deadline (returns 0 for both). stop() itself does not end the wait
  // early: after stop() a Writer keeps trying until the deadline. A negative `fd` just
  // sleeps. Callers re-check expired() after a 0.
  short wait_for(int fd, short events, Clock::time_point until);

  // Sleeps until `until`. A stop() during the sleep ends it at once (a Writer in reconnect
  // backoff gets one more attempt before the deadline); after stop() it ends at the
  // deadline at the latest.
  void sleep_until(Clock::time_point until);

  // Writes all of `data` to `fd`: send(MSG_NOSIGNAL | MSG_DONTWAIT) when `use_send`, else
  // write(); when the descriptor is full, waits for it to drain. A short write is
  // finished before returning, so records never interleave.
  enum class WriteAll {
    kComplete,
    kStopped,  // stop()'s deadline passed while the descriptor was full: a cut line
    kFailed,   // the descriptor failed: *failure says how
  };
  WriteAll write_all(int fd, std::string_view data, bool use_send, Error* failure);

  void count_error(const Error& error) { ledger_.count_error(error.message()); }
  void count_reconnect() { ledger_.count_reconnect(); }
  void count_reopen() { ledger_.count_reopen(); }
  // A line for the daemon's log (Sink::take_notices()).
  void notice(std::string text) { ledger_.notice(std::move(text)); }
  // Socket sinks: whether a connection is up now (stats().connected).
  void set_connected(bool up) { ledger_.set_connected(up); }

  // Reconnect/retry delay: exponential from `min` to `max`, with jitter ([d/2, d]) so a
  // fleet restarted together does not reconnect in step.
  class Backoff {
   public:
    Backoff(std::chrono::milliseconds min, std::chrono::milliseconds max);
    std::chrono::milliseconds next();
    void reset() { current_ = min_; }

   private:
    std::chrono::milliseconds min_;
    std::chrono::milliseconds max_;
    std::chrono::milliseconds current_;
    std::minstd_rand rng_;
  };

 private:
  friend class QueuedSink;

  void request_stop(Clock::time_point at);

  SinkLedger& ledger_;
  std::atomic<bool> stop_requested_{false};
  std::atomic<Clock::rep> deadline_{0};  // valid once stop_requested_
  Fd wake_;                              // eventfd, readable once stop() is called
};

// The fate of one record handed to a Writer.
enum class Delivery {
  kWritten,  // delivered whole
  kDropped,  // cannot be delivered (the Writer has counted the error); next record
  kStopped,  // the stop deadline passed first; the worker ends
};

// One destination. All calls but open() come from the worker thread, one at a time.
class Writer {
 public:
  virtual ~Writer() = default;
  // At start(), on the caller's thread, before the worker exists. An Error fails start().
  virtual Result<void> open() { return {}; }
  // One complete record, ending in '\n' or, for a Writer whose max_batch_bytes() is not 0,
  // several whole records in order (at most that many bytes, unless one record is bigger):
  // the Delivery is then every one's.
  virtual Delivery write(std::string_view record, SinkCore& core) = 0;
  // How many bytes of queued records the worker may hand write() at once; 0: one record
  // per call (a Writer that frames each record, or needs each record's fate).
  [[nodiscard]] virtual std::size_t max_batch_bytes() const { return 0; }
  // Sink::reopen() was called.
  virtual void reopen(SinkCore& /*core*/) {}
  // The worker is about to exit.
  virtual void close() {}
};

// A Sink made of a bounded queue, one worker thread and a Writer.
class QueuedSink final : public Sink {
 public:
  QueuedSink(std::string name, QueueLimit limit, std::unique_ptr<Writer> writer);
  QueuedSink(const QueuedSink&) = delete;
  QueuedSink& operator=(const QueuedSink&) = delete;
  // Stops with a zero timeout if still running: what is queued is dropped.
  ~QueuedSink() override;

  Result<void> start() override;
  void submit(std::string_view record) override;
  void defer_wakeups(bool defer) override;
  void reopen() override;
  void request_stop(std::chrono::milliseconds timeout) override;
  void stop(std::chrono::milliseconds timeout) override;

 private:
  void run();
  // Waits for a record (or several, up to `max_batch` bytes) and takes them into
  // `batch`; false when the worker is to end. `reopen` is set instead when asked for.
  bool take(std::string& batch, std::size_t max_batch, std::size_t& count, std::size_t& charged,
            bool& reopen);

  std::unique_ptr<Writer> writer_;
  SinkCore core_;

  std::mutex mutex_;
  std::condition_variable cv_;
  std::deque<std::string> queue_;  // guarded by mutex_
  bool reopen_requested_ = false;  // guarded by mutex_
  bool defer_wakeups_ = false;     // guarded by mutex_
  bool started_ = false;           // guarded by mutex_
  bool stopped_ = false;           // guarded by mutex_: request_stop() was called
  std::thread worker_;
};

// What a record costs a queue (QueueLimit).
inline std::size_t charge_of(std::size_t record_size) {
  return record_size + kQueueEntryBytes;
}

// A sink of `config` writing with `writer`: what most sink types' make() returns.
std::unique_ptr<Sink> queued(const SinkConfig& config, std::unique_ptr<Writer> writer);

// Milliseconds for poll() from now to `until`, rounded up, clamped to [0, INT_MAX].
int poll_timeout_ms(Clock::time_point now, Clock::time_point until);

}  // namespace sockstate::sink::detail
