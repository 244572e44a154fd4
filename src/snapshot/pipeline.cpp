#include "pipeline.h"

#include <system_error>
#include <utility>

namespace sockstate::snapshot {

Pipeline::Pipeline(Render render) : render_(std::move(render)) {
  filling_.reserve(kBatch);
}

Pipeline::~Pipeline() {
  finish();
  if (threaded_) {
    {
      std::lock_guard lock(mutex_);
      closing_ = true;
    }
    changed_.notify_all();
    worker_.join();
  }
}

void Pipeline::push(const netlink::SocketEntry& entry) {
  filling_.push_back(entry);
  if (filling_.size() == kBatch) {
    hand_over();
  }
}

void Pipeline::hand_over() {
  if (!threaded_) {
    try {
      worker_ = std::thread([this] { run(); });
      threaded_ = true;
    } catch (const std::system_error&) {
      // No second thread: render here, as a small dump is.
    }
  }
  if (!threaded_) {
    for (const auto& e : filling_) {
      render_(e);
    }
    filling_.clear();
    return;
  }
  std::vector<netlink::SocketEntry> next;
  {
    std::unique_lock lock(mutex_);
    changed_.wait(lock, [this] { return full_.size() + busy_ < kSlots; });
    full_.push_back(std::move(filling_));
    if (!spare_.empty()) {
      next = std::move(spare_.back());
      spare_.pop_back();
    }
  }
  changed_.notify_all();
  filling_ = std::move(next);
  filling_.clear();
  filling_.reserve(kBatch);
}

void Pipeline::finish() {
  if (!threaded_) {
    for (const auto& e : filling_) {
      render_(e);
    }
    filling_.clear();
    return;
  }
  if (!filling_.empty()) {
    hand_over();
  }
  std::unique_lock lock(mutex_);
  changed_.wait(lock, [this] { return full_.empty() && busy_ == 0; });
}

void Pipeline::run() {
  std::unique_lock lock(mutex_);
  for (;;) {
    changed_.wait(lock, [this] { return !full_.empty() || closing_; });
    if (full_.empty()) {
      return;  // closing, and nothing left
    }
    std::vector<netlink::SocketEntry> batch = std::move(full_.front());
    full_.pop_front();
    ++busy_;
    lock.unlock();
    for (const auto& e : batch) {
      render_(e);
    }
    batch.clear();
    lock.lock();
    --busy_;
    spare_.push_back(std::move(batch));
    changed_.notify_all();
  }
}

}  // namespace sockstate::snapshot
