#include "queued_sink.h"

#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <climits>
#include <system_error>
#include <utility>

namespace sockstate::sink::detail {
namespace {

// Without an eventfd (eventfd() failed), waits notice stop() within this.
constexpr int kWakePollMs = 50;

}  // namespace

int poll_timeout_ms(Clock::time_point now, Clock::time_point until) {
  if (until <= now) {
    return 0;
  }
  // Rounded up: a poll that wakes a few microseconds early would otherwise spin.
  const auto ms = std::chrono::ceil<std::chrono::milliseconds>(until - now).count();
  return static_cast<int>(std::min<decltype(ms)>(ms, INT_MAX));
}

// ---- SinkCore ---------------------------------------------------------------------------

SinkCore::SinkCore(SinkLedger& ledger)
    : ledger_(ledger), wake_(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) {}

Clock::time_point SinkCore::deadline() const {
  return Clock::time_point(Clock::duration(deadline_.load(std::memory_order_acquire)));
}

bool SinkCore::expired() const {
  return stop_requested() && Clock::now() >= deadline();
}

void SinkCore::request_stop(Clock::time_point at) {
  deadline_.store(at.time_since_epoch().count(), std::memory_order_release);
  stop_requested_.store(true, std::memory_order_release);
  if (wake_.valid()) {
    const std::uint64_t one = 1;
    // Cannot block (EFD_NONBLOCK) and cannot overflow with one write.
    [[maybe_unused]] const ssize_t n = ::write(wake_.get(), &one, sizeof one);
  }
}

short SinkCore::wait_for(int fd, short events, Clock::time_point until) {
  for (;;) {
    const bool stopping = stop_requested();
    const Clock::time_point limit = stopping ? std::min(until, deadline()) : until;
    const auto now = Clock::now();
    if (now >= limit) {
      return 0;
    }
    int timeout = poll_timeout_ms(now, limit);
    if (!stopping && !wake_.valid()) {
      timeout = std::min(timeout, kWakePollMs);
    }
    // Once stop() has been called the eventfd stays readable, so it leaves the set.
    std::array<pollfd, 2> fds{pollfd{fd, events, 0}, pollfd{wake_.get(), POLLIN, 0}};
    const int r = ::poll(fds.data(), stopping ? 1 : 2, timeout);
    if (r < 0 && errno != EINTR) {
      return POLLERR;
    }
    if (r > 0 && fds[0].revents != 0) {
      return fds[0].revents;
    }
    // A timeout, EINTR, or stop(): recompute the limit (the stop deadline may now apply).
  }
}

void SinkCore::sleep_until(Clock::time_point until) {
  if (stop_requested()) {
    wait_for(-1, 0, until);
    return;
  }
  for (;;) {
    const auto now = Clock::now();
    if (now >= until) {
      return;
    }
    int timeout = poll_timeout_ms(now, until);
    if (!wake_.valid()) {
      timeout = std::min(timeout, kWakePollMs);
    }
    pollfd wake{wake_.get(), POLLIN, 0};
    (void)::poll(&wake, 1, timeout);
    if (stop_requested()) {
      return;
    }
  }
}

SinkCore::WriteAll SinkCore::write_all(int fd, std::string_view data, bool use_send,
                                       Error* failure) {
  std::size_t done = 0;
  while (done < data.size()) {
    const char* p = data.data() + done;
    const std::size_t len = data.size() - done;
    const ssize_t n =
        use_send ? ::send(fd, p, len, MSG_NOSIGNAL | MSG_DONTWAIT) : ::write(fd, p, len);
    if (n > 0) {
      done += static_cast<std::size_t>(n);
      continue;
    }
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      if (wait_for(fd, POLLOUT, Clock::time_point::max()) == 0 && expired()) {
        return WriteAll::kStopped;
      }
      continue;  // writable, or POLLERR/POLLHUP that the next call reports
    }
    *failure = n < 0 ? Error{errno, ""} : Error{EIO, ""};
    return WriteAll::kFailed;
  }
  return WriteAll::kComplete;
}

SinkCore::Backoff::Backoff(std::chrono::milliseconds min, std::chrono::milliseconds max)
    : min_(std::max(min, std::chrono::milliseconds(1))),
      max_(std::max(max, min_)),
      current_(min_),
      rng_(static_cast<std::minstd_rand::result_type>(Clock::now().time_since_epoch().count() ^
                                                      ::getpid())) {}

std::chrono::milliseconds SinkCore::Backoff::next() {
  const auto d = current_;
  current_ = std::min(max_, current_ * 2);
  std::uniform_int_distribution<std::chrono::milliseconds::rep> jitter(d.count() / 2, d.count());
  return std::chrono::milliseconds(jitter(rng_));
}

// ---- QueuedSink -------------------------------------------------------------------------

QueuedSink::QueuedSink(std::string name, QueueLimit limit, std::unique_ptr<Writer> writer)
    : Sink(std::move(name), limit), writer_(std::move(writer)), core_(ledger()) {}

QueuedSink::~QueuedSink() {
  stop(std::chrono::milliseconds(0));
}

Result<void> QueuedSink::start() {
  {
    std::lock_guard lock(mutex_);
    if (started_ || stopped_) {
      return Error{0, name() + ": already started"};
    }
  }
  // Outside the lock: opening a file or resolving a group must not hold up submit().
  if (auto opened = writer_->open(); !opened) {
    return opened;
  }
  std::lock_guard lock(mutex_);
  set_finished(false);
  try {
    worker_ = std::thread([this] { run(); });
  } catch (const std::system_error& e) {
    set_finished(true);
    writer_->close();
    return Error{e.code().value(), name() + ": starting the worker thread"};
  }
  started_ = true;
  return {};
}

void QueuedSink::submit(std::string_view record) {
  bool wake = false;
  {
    std::lock_guard lock(mutex_);
    if (stopped_) {
      ledger().count_dropped();
      return;
    }
    if (!ledger().charge(charge_of(record.size()))) {
      return;
    }
    queue_.emplace_back(record);
    wake = !defer_wakeups_ || queue_.size() >= kWakeBatch;
  }
  if (wake) {
    cv_.notify_one();
  }
}

void QueuedSink::defer_wakeups(bool defer) {
  bool wake = false;
  {
    std::lock_guard lock(mutex_);
    wake = defer_wakeups_ && !defer && !queue_.empty();
    defer_wakeups_ = defer;
  }
  if (wake) {
    cv_.notify_one();
  }
}

void QueuedSink::reopen() {
  {
    std::lock_guard lock(mutex_);
    reopen_requested_ = true;
  }
  cv_.notify_one();
}

void QueuedSink::request_stop(std::chrono::milliseconds timeout) {
  {
    std::lock_guard lock(mutex_);
    if (stopped_) {
      return;
    }
    stopped_ = true;  // from here on, submit() drops
    core_.request_stop(Clock::now() + timeout);
  }
  cv_.notify_one();
}

void QueuedSink::stop(std::chrono::milliseconds timeout) {
  request_stop(timeout);
  if (worker_.joinable()) {
    worker_.join();
  }
  std::lock_guard lock(mutex_);
  queue_.clear();
  ledger().drop_queued();  // no worker: what is queued is all that is left
}

bool QueuedSink::take(std::string& batch, std::size_t max_batch, std::size_t& count,
                      std::size_t& charged, bool& reopen) {
  std::unique_lock lock(mutex_);
  cv_.wait(lock, [this] { return !queue_.empty() || reopen_requested_ || core_.stop_requested(); });
  reopen = std::exchange(reopen_requested_, false);
  if (reopen) {
    return true;
  }
  if (queue_.empty() || core_.expired()) {
    return false;  // stopping: drained, or out of time (stop() counts the rest)
  }
  // One record, or as many whole ones as fit max_batch: one write() for many records (a
  // close storm of 100,000 records a second), one lock for them all.
  batch = std::move(queue_.front());
  queue_.pop_front();
  count = 1;
  charged = charge_of(batch.size());
  while (max_batch > 0 && !queue_.empty() && batch.size() + queue_.front().size() <= max_batch) {
    batch += queue_.front();
    charged += charge_of(queue_.front().size());
    queue_.pop_front();
    ++count;
  }
  return true;
}

void QueuedSink::run() {
  // A predecessor of the same destination finishes first (it ends by its own deadline).
  const auto& before = predecessor();
  while (before && !before->load(std::memory_order_acquire) && !core_.expired()) {
    core_.sleep_until(Clock::now() + std::chrono::milliseconds(10));
  }
  const std::size_t max_batch = writer_->max_batch_bytes();
  std::string batch;
  for (;;) {
    std::size_t count = 0;
    std::size_t charged = 0;
    bool reopen = false;
    if (!take(batch, max_batch, count, charged, reopen)) {
      break;
    }
    if (reopen) {
      writer_->reopen(core_);
      continue;
    }
    const Delivery delivery = writer_->write(batch, core_);
    ledger().settle(count, charged, delivery == Delivery::kWritten);
    if (delivery == Delivery::kStopped) {
      break;
    }
  }
  writer_->close();
  set_finished(true);
}

}  // namespace sockstate::sink::detail
