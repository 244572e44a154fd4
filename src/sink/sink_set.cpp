#include "sockstate/sink/sink_set.h"

#include <algorithm>
#include <utility>

namespace sockstate::sink {
namespace {

void add(SinkStats& into, const SinkStats& s) {
  into.written += s.written;
  into.dropped += s.dropped;
  into.errors += s.errors;
  into.reconnects += s.reconnects;
  into.reopens += s.reopens;
  into.queued += s.queued;
  into.queued_bytes += s.queued_bytes;
}

}  // namespace

SinkSet::~SinkSet() {
  stop(std::chrono::milliseconds(0));
}

Result<void> SinkSet::apply(const std::vector<SinkConfig>& configs,
                            std::chrono::milliseconds retire_within) {
  // Every sink to make is started before anything changes, so a failure leaves the set
  // as it was. A kept sink's place in `next` stays empty until then; `from` says which
  // live sink fills it.
  std::vector<Entry> next;
  std::vector<std::size_t> from;
  std::vector<bool> kept(live_.size(), false);
  for (const auto& c : configs) {
    std::size_t i = 0;
    while (i < live_.size() && (kept[i] || !(live_[i].config == c))) {
      ++i;
    }
    if (i < live_.size()) {
      kept[i] = true;
      from.push_back(i);
      next.push_back(Entry{c, nullptr});
      continue;
    }
    auto made = make_sink(c, context_);
    // The same destination with other settings (the configuration names each destination
    // once): the new sink writes once the old one has delivered what it holds.
    const auto predecessor = std::find_if(live_.begin(), live_.end(), [&](const Entry& e) {
      return e.sink->name() == made->name() && !(e.config == c);
    });
    if (predecessor != live_.end()) {
      made->follow(predecessor->sink->finished_flag());
    }
    if (auto started = made->start(); !started) {
      for (auto& e : next) {
        if (e.sink) {
          e.sink->stop(std::chrono::milliseconds(0));  // it has been given nothing
        }
      }
      return Error{started.error().errnum,
                   "sink " + made->name() + ": " + started.error().message()};
    }
    from.push_back(live_.size());  // none: made here
    next.push_back(Entry{c, std::move(made)});
  }
  for (std::size_t k = 0; k < next.size(); ++k) {
    if (!next[k].sink) {
      next[k].sink = std::move(live_[from[k]].sink);
    }
  }
  for (auto& old : live_) {
    if (old.sink) {  // not kept
      old.sink->request_stop(retire_within);
      retiring_.push_back(std::move(old.sink));
    }
  }
  live_ = std::move(next);
  for (auto& e : live_) {
    e.sink->defer_wakeups(deferred_);
  }
  return {};
}

void SinkSet::submit(std::string_view record) {
  for (auto& e : live_) {
    e.sink->submit(record);
  }
}

void SinkSet::defer_wakeups(bool defer) {
  deferred_ = defer;
  for (auto& e : live_) {
    e.sink->defer_wakeups(defer);
  }
}

namespace {

// Records of up to `record_bytes` a queue holding `s` can take until it holds `records`
// records or `bytes` bytes.
std::size_t room_until(const SinkStats& s, std::size_t records, std::size_t bytes,
                       std::size_t record_bytes) {
  const std::size_t by_count = records > s.queued ? records - s.queued : 0;
  const std::size_t by_bytes = bytes > s.queued_bytes ? bytes - s.queued_bytes : 0;
  return std::min(by_count, by_bytes / (record_bytes + kQueueEntryBytes));
}

// What pacing lets a queue hold: half of it, at least one record (a queue of 1 is
// allowed), and in bytes no more than the pace window.
std::size_t pace_records(const QueueLimit& l) {
  return std::max<std::size_t>(1, l.records / 2);
}
std::size_t pace_bytes(const QueueLimit& l) {
  return std::min(l.bytes / 2, SinkSet::kPaceWindowBytes);
}

}  // namespace

void SinkSet::watch(std::int64_t now_ms) {
  watched_ms_ = now_ms;
  for (auto& e : live_) {
    const SinkStats s = e.sink->stats();
    const QueueLimit l = e.sink->limit();
    e.counted = s.connected != 0;
    if (e.drained_ms < 0 ||
        (s.queued <= pace_records(l) / 4 && s.queued_bytes <= pace_bytes(l) / 4)) {
      e.drained_ms = now_ms;
    }
  }
  for (auto& e : live_) {
    const bool others_keep_up = std::any_of(
        live_.begin(), live_.end(), [&](const Entry& f) { return &f != &e && keeps_up(f); });
    const bool left_out = e.counted && !keeps_up(e) && others_keep_up;
    if (left_out && !e.left_out) {
      ++left_out_[e.sink->name()];
    }
    e.left_out = left_out;
  }
}

bool SinkSet::any_keeping_up() const {
  return std::all_of(live_.begin(), live_.end(), [](const Entry& e) { return !e.counted; }) ||
         std::any_of(live_.begin(), live_.end(), [this](const Entry& e) { return keeps_up(e); });
}

template <typename RoomOf>
std::size_t SinkSet::least_room(RoomOf room_of) const {
  std::size_t room = SIZE_MAX;
  for (const auto& e : live_) {
    if (e.left_out) {
      continue;  // it has not kept up: it drops its own records, not the others'
    }
    const SinkStats s = e.sink->stats();
    if (s.connected != 0) {
      room = std::min(room, room_of(s, e.sink->limit()));
    }
  }
  return room;
}

std::size_t SinkSet::room(std::size_t record_bytes) const {
  return least_room([record_bytes](const SinkStats& s, const QueueLimit& l) {
    return room_until(s, pace_records(l), pace_bytes(l), record_bytes);
  });
}

std::size_t SinkSet::room_to_half(std::size_t record_bytes) const {
  return least_room([record_bytes](const SinkStats& s, const QueueLimit& l) {
    return room_until(s, std::max<std::size_t>(1, l.records / 2), l.bytes / 2, record_bytes);
  });
}

// (sink name, text) for every text `take` returns of each live sink.
std::vector<std::pair<std::string, std::string>> SinkSet::take_each(
    std::vector<std::string> (Sink::*take)()) {
  std::vector<std::pair<std::string, std::string>> out;
  for (auto& e : live_) {
    for (auto& text : (*e.sink.*take)()) {
      out.emplace_back(e.sink->name(), std::move(text));
    }
  }
  return out;
}

std::vector<std::pair<std::string, std::string>> SinkSet::take_failure_kinds() {
  return take_each(&Sink::take_failure_kinds);
}

std::vector<std::pair<std::string, std::string>> SinkSet::take_notices() {
  return take_each(&Sink::take_notices);
}

void SinkSet::reopen() {
  for (auto& e : live_) {
    e.sink->reopen();
  }
}

void SinkSet::fold(const Sink& sink) {
  SinkStats s = sink.stats();
  s.queued = 0;  // a stopped sink holds nothing: what it held is in `dropped`
  s.queued_bytes = 0;
  add(earlier_[sink.name()], s);
}

std::vector<SinkSet::Ended> SinkSet::reap() {
  std::vector<Ended> ended;
  for (auto it = retiring_.begin(); it != retiring_.end();) {
    if (!(*it)->finished()) {
      ++it;
      continue;
    }
    const std::size_t left = (*it)->stats().queued;
    (*it)->stop(std::chrono::milliseconds(0));  // joins the ended worker, counts `left`
    fold(**it);
    ended.push_back(Ended{(*it)->name(), left});
    it = retiring_.erase(it);
  }
  return ended;
}

void SinkSet::stop(std::chrono::milliseconds timeout) {
  // Retired sinks keep the deadline their retirement gave them.
  for (auto& e : live_) {
    e.sink->request_stop(timeout);  // all at once: they drain in parallel
  }
  for (auto& s : retiring_) {
    s->stop(timeout);
    fold(*s);
  }
  retiring_.clear();
  for (auto& e : live_) {
    e.sink->stop(timeout);
  }
}

std::vector<SinkSet::View> SinkSet::views() const {
  std::vector<View> out;
  auto find = [&out](const std::string& name) -> View& {
    const auto it =
        std::find_if(out.begin(), out.end(), [&](const View& v) { return v.name == name; });
    if (it != out.end()) {
      return *it;
    }
    View fresh;
    fresh.name = name;
    fresh.live = false;
    return out.emplace_back(std::move(fresh));
  };
  for (const auto& e : live_) {
    View& v = find(e.sink->name());
    const SinkStats s = e.sink->stats();
    if (v.live) {
      add(v.stats, s);  // two sinks of one name (two tcp sinks to one listener)
      v.stats.connected = std::max(v.stats.connected, s.connected);
      v.stats.brokers_up = std::max(v.stats.brokers_up, s.brokers_up);
    } else {
      v.live = true;
      v.stats = s;
    }
  }
  // Retired and finished sinks add their counts; a connection is only a live sink's.
  auto merge = [&find](const std::string& name, const SinkStats& stats) {
    View& v = find(name);
    const int connected = v.stats.connected;
    const int brokers_up = v.stats.brokers_up;
    add(v.stats, stats);
    v.stats.connected = v.live ? connected : -1;
    v.stats.brokers_up = v.live ? brokers_up : -1;
  };
  for (const auto& s : retiring_) {
    merge(s->name(), s->stats());
  }
  for (const auto& [name, stats] : earlier_) {
    merge(name, stats);
  }
  for (auto& v : out) {
    const auto it = left_out_.find(v.name);
    v.stats.left_out = it == left_out_.end() ? 0 : it->second;
  }
  return out;
}

SinkStats SinkSet::totals() const {
  SinkStats total;
  for (const auto& v : views()) {
    add(total, v.stats);
  }
  return total;
}

}  // namespace sockstate::sink
