#include "emitter.h"

#include <spdlog/spdlog.h>

#include <algorithm>

namespace sockstate::daemon {
namespace {

bool terminal(flow::Activity a) {
  return a == flow::Activity::kClose || a == flow::Activity::kFail || a == flow::Activity::kRefuse;
}

}  // namespace

Result<void> Emitter::start(const ocsf::RecordContext& context, bool process,
                            ContainerOf container_of, const history::SocketHistory* history,
                            collect::OwnerWalk walk) {
  builder_.emplace(context);
  container_of_ = std::move(container_of);
  attributor_.emplace(collect::AttributorOptions{process, walk, "/proc", {}, "/"});
  owners_ = attributor_->owners();
  history_ = owners_ != nullptr ? history : nullptr;
  if (owners_ == nullptr) {
    return {};
  }
  auto found = attributor_->scan();
  if (!found) {
    return Error{found.error().errnum, "process attribution: " + found.error().message()};
  }
  if (!attributor_->iterator_unused().empty()) {
    spdlog::info("process attribution: the socket iterator (BPF) not used: {}; walking /proc",
                 attributor_->iterator_unused());
  }
  const proc::ScanStats* scanned = &**found;
  const auto unreadable = scanned->permission_errors + scanned->pid_errors;
  owner_errors_ += unreadable;
  if (unreadable > 0) {
    spdlog::info(
        "process attribution: {} process(es) could not be read; their sockets carry no "
        "actor.process",
        unreadable);
  }
  return {};
}

// A socket a record is about waits while an earlier record about it waits (its order), or
// while its owner is unknown and a walk could find it. A terminal record never waits for
// its own owner: the socket is gone, so no walk would find it.
bool Emitter::must_wait(const flow::Observation& obs) const {
  if (waiting_cookies_.contains(obs.socket.cookie)) {
    return true;
  }
  const std::uint32_t inode = obs.socket.inode;
  return owners_ != nullptr && inode != 0 && !terminal(obs.activity) &&
         owners_->owner(inode) == nullptr && !owners_->missed(inode) &&
         (history_ == nullptr || history_->owner(obs.socket.cookie) == nullptr);
}

void Emitter::observe(const flow::Observation& obs) {
  if (must_wait(obs)) {
    waiting_.push_back(obs);
    waiting_cookies_.insert(obs.socket.cookie);
    return;
  }
  write_now(obs);
}

void Emitter::flush() {
  if (waiting_.empty()) {
    return;
  }
  std::vector<std::uint32_t> wanted;
  wanted.reserve(waiting_.size());
  for (const auto& obs : waiting_) {
    if (obs.socket.inode != 0) {
      wanted.push_back(obs.socket.inode);
    }
  }
  auto walked = owners_->refresh(wanted);
  if (!walked) {
    spdlog::warn("process attribution: {}", walked.error().message());
  } else if (walked->walked) {
    ++owner_walks_;
    owner_errors_ += walked->permission_errors + walked->pid_errors;
  }
  std::vector<flow::Observation> observations;
  observations.swap(waiting_);
  waiting_cookies_.clear();
  for (const auto& obs : observations) {
    write_now(obs);
  }
}

void Emitter::write_now(const flow::Observation& observed) {
  flow::Observation obs = observed;
  obs.owner = attributor_->owner_of(obs.socket, container_of_(obs.socket.netns));
  if (history_ != nullptr) {
    // The process that made or accepted it, as the kernel said: exact, and known after it
    // exited; /proc's holder (the lowest pid among those that share it) otherwise.
    if (const proc::ProcessInfo* made = history_->owner(obs.socket.cookie)) {
      obs.owner.process = made;
    }
  }
  obs.timezone_offset_min = timezone_.at(obs.time_ms);
  ++by_activity_[static_cast<std::size_t>(obs.activity)];
  record_.clear();
  builder_->append(obs, record_);
  ++records_;
  sinks_.submit(record_);
}

namespace {
constexpr std::size_t kRecordBytes = 2048;  // a record is 1.2 to 2.5 KiB
}  // namespace

std::size_t Emitter::room() const {
  return sinks_.room(kRecordBytes);
}
std::size_t Emitter::room_to_half() const {
  return sinks_.room_to_half(kRecordBytes);
}

void Emitter::begin_round(Produce produce, std::chrono::milliseconds patience) {
  produce_ = std::move(produce);
  round_since_ = collect::monotonic_ms();
  patience_ = patience;
}

// A round for a whole table would come at once (100,000 connections: 100,000 records)
// and overflow the sinks' queues. It goes out in chunks while the sinks that keep up
// have room, between the loop's other duties (a sink that has not kept up for half a
// poll interval is left out: SinkSet::watch). When none keeps up for the round's
// patience, or when the next poll comes, the round is held back no longer.
void Emitter::pace(bool all_now) {
  static constexpr std::size_t kChunk = 1024;
  sinks_.watch(collect::monotonic_ms());
  while (produce_) {
    const bool overdue = all_now || (collect::monotonic_ms() - round_since_ >= patience_.count() &&
                                     !sinks_.any_keeping_up());
    const std::size_t chunk = overdue ? SIZE_MAX : std::min(kChunk, room());
    if (chunk == 0) {
      return;  // the loop comes back soon
    }
    const bool done = produce_(chunk);
    flush();
    if (done) {
      produce_ = nullptr;
    }
  }
}

void Emitter::prune_owners(std::size_t tracked,
                           const std::function<std::vector<std::uint32_t>()>& inodes) {
  if (owners_ != nullptr &&
      owners_->size() + owners_->missed_count() > tracked + tracked / 8 + 1024) {
    owners_->retain(inodes());
  }
}

}  // namespace sockstate::daemon
