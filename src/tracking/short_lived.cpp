#include "sockstate/tracking/short_lived.h"

namespace sockstate::tracking {

std::size_t ShortLivedLimit::PeerHash::operator()(const Peer& p) const {
  std::uint64_t h =
      (std::uint64_t{p.remote_port} << 16) ^ (std::uint64_t{p.protocol} << 8) ^ (p.netns << 32);
  h = flow::mix_address(flow::mix_address(h, p.local), p.remote);
  return static_cast<std::size_t>(h ^ (h >> 29));
}

bool ShortLivedLimit::admit(const flow::Observation& close, std::int64_t now_ms) {
  if (per_second_ == 0) {
    return true;
  }
  if (now_ms >= window_start_ + kWindowMs || now_ms < window_start_) {
    // A new second (or the clock went back): its own limit. Summaries of the last one
    // wait for take().
    if (peers_.empty()) {
      window_start_ = now_ms;
      admitted_ = 0;
    }
  }
  if (now_ms < window_start_ + kWindowMs && admitted_ < per_second_) {
    ++admitted_;
    return true;
  }
  fold(close);
  return false;
}

void ShortLivedLimit::fold(const flow::Observation& close) {
  Peer peer{close.local.ip, close.remote.ip, close.socket.netns, close.remote.port,
            close.socket.protocol};
  if (!peers_.contains(peer) && peers_.size() >= kMaxPeers) {
    peer.remote = flow::Address{};  // too many peers this second: one summary for the rest
    peer.remote_port = 0;
  }
  ++summarised_;
  auto [it, fresh] = peers_.try_emplace(peer);
  Summary& s = it->second;
  if (fresh) {
    s.first = close;
    if (peer.remote_port == 0 && flow::is_unspecified(peer.remote)) {
      s.first.orientation = flow::Orientation{};
      s.first.orientation.shape = flow::Orientation::Shape::kListener;  // the local end only
      s.first.remote = flow::Endpoint{};
    }
  }
  ++s.count;
  s.last_ms = close.end_ms;
}

void ShortLivedLimit::take(std::int64_t now_ms, bool all,
                           const std::function<void(const flow::Observation&)>& write) {
  if (peers_.empty() || (!all && now_ms < window_start_ + kWindowMs && now_ms >= window_start_)) {
    return;
  }
  for (const auto& [peer, s] : peers_) {
    flow::Observation obs = s.first;
    obs.count = s.count;
    obs.start_ms = s.first.end_ms;  // the first socket's end ... the last one's
    obs.end_ms = s.last_ms;
    obs.time_ms = s.last_ms;
    obs.local.port = 0;  // each socket had its own
    obs.socket.cookie = 0;
    obs.socket.inode = 0;
    write(obs);
    ++summaries_;
  }
  peers_.clear();
  window_start_ = now_ms;
  admitted_ = 0;
}

}  // namespace sockstate::tracking
