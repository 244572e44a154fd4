#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

namespace sockstate::tracking {

// Entries keyed by socket cookie, for the tracker's one entry per socket: about 20 bytes
// per entry besides the entry itself, where std::unordered_map takes about 60 (a heap node
// with its allocator header and next pointer, a bucket, and the padding of an entry the
// allocator rounds up), 6 MB of a 100,000-socket daemon's 41 MiB.
//
// Entries live in chunks of kChunk that never move (a reference stays good until its own
// entry is erased); an erased entry's place is reused. They are found through an
// open-addressing index of 8-byte slots (linear probing, at most seven eighths full): the
// low 32 bits of the cookie (cookies come from one 64-bit counter, so these rarely
// repeat) and the entry's place. A matching tag is confirmed against the entry's own
// cookie (`KeyOf`), so two cookies sharing their low bits are still told apart. Erasing
// shifts the following slots back (no tombstones), which the hash of the tag alone allows.
//
// The same job as CookieSet, with erasure and values; abseil's flat_hash_map would store
// each entry in its slots (a table at most 7/8 full: 240 bytes and more per socket).
template <class T, std::uint64_t (*KeyOf)(const T&)>
class CookieTable {
 public:
  static constexpr std::size_t kChunk = 1024;

  [[nodiscard]] std::size_t size() const { return size_; }
  [[nodiscard]] bool empty() const { return size_ == 0; }

  [[nodiscard]] T* find(std::uint64_t cookie) {
    const std::size_t s = slot_of(cookie);
    return s == kNone ? nullptr : &at(slots_[s].place - 1);
  }
  [[nodiscard]] const T* find(std::uint64_t cookie) const {
    return const_cast<CookieTable*>(this)->find(cookie);
  }
  [[nodiscard]] bool contains(std::uint64_t cookie) const { return find(cookie) != nullptr; }

  // The entry for `cookie`, now `value` (KeyOf(value) must be `cookie`).
  T& insert_or_assign(std::uint64_t cookie, const T& value) {
    if (T* found = find(cookie)) {
      *found = value;
      return *found;
    }
    if (8 * (size_ + 1) > 7 * slots_.size()) {
      rehash(slots_.empty() ? kInitialSlots : 2 * slots_.size());
    }
    const std::uint32_t place = take_place();
    at(place) = value;
    std::size_t i = home(tag_of(cookie));
    while (slots_[i].place != 0) {
      i = (i + 1) & mask();
    }
    slots_[i] = Slot{tag_of(cookie), place + 1};
    ++size_;
    return at(place);
  }

  // Erases `cookie`'s entry; false when there is none.
  bool erase(std::uint64_t cookie) {
    std::size_t i = slot_of(cookie);
    if (i == kNone) {
      return false;
    }
    const std::uint32_t place = slots_[i].place - 1;
    at(place) = T{};
    live_[place] = false;
    free_.push_back(place);
    --size_;
    // Backward shift: move each later slot of the run back into the hole when its home
    // is not between the hole and it (cyclically), so that no probe meets a gap early.
    for (std::size_t j = (i + 1) & mask(); slots_[j].place != 0; j = (j + 1) & mask()) {
      const std::size_t h = home(slots_[j].tag);
      if (((j - h) & mask()) >= ((j - i) & mask())) {
        slots_[i] = slots_[j];
        i = j;
      }
    }
    slots_[i] = Slot{};
    return true;
  }

  // Places are numbered from 0 to places() - 1; an erased entry's place is given to a
  // later one. A walk by place that may span insertions and erasures (the tracker's
  // paced rounds) visits what is at each place when it gets there.
  [[nodiscard]] std::uint32_t places() const { return end_; }
  [[nodiscard]] T* at_place(std::uint32_t place) {
    return place < end_ && live_[place] ? &at(place) : nullptr;
  }

  // f(T&) for every entry, in the order of their places. `f` may erase the entry it is
  // given, and no other; it may not insert.
  template <class F>
  void for_each(F&& f) {
    for (std::uint32_t p = 0; p < end_; ++p) {
      if (live_[p]) {
        f(at(p));
      }
    }
  }
  template <class F>
  void for_each(F&& f) const {
    for (std::uint32_t p = 0; p < end_; ++p) {
      if (live_[p]) {
        f(at(p));
      }
    }
  }

 private:
  struct Slot {
    std::uint32_t tag = 0;    // the cookie's low 32 bits
    std::uint32_t place = 0;  // the entry's place + 1; 0: an empty slot
  };
  static constexpr std::size_t kInitialSlots = 1024;
  static constexpr std::size_t kNone = SIZE_MAX;

  static std::uint32_t tag_of(std::uint64_t cookie) { return static_cast<std::uint32_t>(cookie); }
  [[nodiscard]] std::size_t mask() const { return slots_.size() - 1; }
  // Fibonacci hashing of the tag: its top bits choose the slot.
  [[nodiscard]] std::size_t home(std::uint32_t tag) const {
    return static_cast<std::size_t>((tag * 0x9E3779B97F4A7C15ULL) >> shift_);
  }

  [[nodiscard]] std::size_t slot_of(std::uint64_t cookie) const {
    if (slots_.empty()) {
      return kNone;
    }
    const std::uint32_t tag = tag_of(cookie);
    for (std::size_t i = home(tag); slots_[i].place != 0; i = (i + 1) & mask()) {
      if (slots_[i].tag == tag && KeyOf(at(slots_[i].place - 1)) == cookie) {
        return i;
      }
    }
    return kNone;
  }

  T& at(std::uint32_t place) { return chunks_[place / kChunk][place % kChunk]; }
  const T& at(std::uint32_t place) const { return chunks_[place / kChunk][place % kChunk]; }

  std::uint32_t take_place() {
    if (!free_.empty()) {
      const std::uint32_t place = free_.back();
      free_.pop_back();
      live_[place] = true;
      return place;
    }
    if (end_ == chunks_.size() * kChunk) {
      chunks_.push_back(std::make_unique<T[]>(kChunk));
    }
    live_.push_back(true);
    return end_++;
  }

  void rehash(std::size_t slots) {
    std::vector<Slot> old(slots);
    old.swap(slots_);
    shift_ = 64;
    for (std::size_t n = slots; n > 1; n /= 2) {
      --shift_;
    }
    for (const Slot& s : old) {
      if (s.place == 0) {
        continue;
      }
      std::size_t i = home(s.tag);
      while (slots_[i].place != 0) {
        i = (i + 1) & mask();
      }
      slots_[i] = s;
    }
  }

  std::vector<Slot> slots_;  // a power of two in size
  unsigned shift_ = 64;      // 64 - log2(slots)
  std::vector<std::unique_ptr<T[]>> chunks_;
  std::vector<bool> live_;           // by place: holds an entry
  std::vector<std::uint32_t> free_;  // places erased, to reuse
  std::uint32_t end_ = 0;            // places ever used
  std::size_t size_ = 0;
};

}  // namespace sockstate::tracking
