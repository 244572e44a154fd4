// Private to the snapshot library: the dump and the records it makes, on two threads.
#pragma once

#include <condition_variable>
#include <cstddef>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

#include "sockstate/netlink/types.h"

namespace sockstate::snapshot {

// Hands parsed sockets from the thread that dumps (mostly waiting on the kernel in
// recvmsg) to a thread that turns them into records, in batches, so that the two overlap
// on two cores. Batches are rendered in the order they were filled, so records come out
// in dump order, as with one thread. The second thread starts with the first full batch:
// a small dump is rendered on the caller's thread alone. Memory: kSlots batches of kBatch
// sockets at most.
class Pipeline {
 public:
  using Render = std::function<void(const netlink::SocketEntry&)>;

  explicit Pipeline(Render render);
  Pipeline(const Pipeline&) = delete;
  Pipeline& operator=(const Pipeline&) = delete;
  ~Pipeline();

  // The dumping thread: one more socket.
  void push(const netlink::SocketEntry& entry);
  // Renders what is left and waits until every socket pushed is rendered. Called by the
  // dumping thread; push() may follow (the pipeline goes on).
  void finish();

  static constexpr std::size_t kBatch = 256;
  static constexpr std::size_t kSlots = 4;

 private:
  void hand_over();
  void run();

  Render render_;
  std::vector<netlink::SocketEntry> filling_;  // the dumping thread's own
  std::mutex mutex_;
  std::condition_variable changed_;
  std::deque<std::vector<netlink::SocketEntry>> full_;    // guarded: oldest first
  std::vector<std::vector<netlink::SocketEntry>> spare_;  // guarded: emptied batches
  std::size_t busy_ = 0;                                  // guarded: batches being rendered
  bool closing_ = false;                                  // guarded: the thread is to end
  std::thread worker_;
  bool threaded_ = false;  // the worker started
};

}  // namespace sockstate::snapshot
