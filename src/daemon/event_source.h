#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string_view>

#include "sockstate/common/error.h"
#include "sockstate/tracking/tracker.h"

namespace sockstate::daemon {

// What an event source has done since it opened.
struct EventCounters {
  std::uint64_t events = 0;     // events read
  std::uint64_t overflows = 0;  // times the kernel said events were lost
  std::uint64_t dropped = 0;    // events the kernel could not queue, where it counts them
};

// A source of socket events beside the polls: a descriptor the loop waits on and a
// bounded drain into the tracker. The loop alone decides when a source is read and how
// much (the sinks' room); a source never writes records itself and never calls back into
// the loop. The sock_diag destroy listener of a namespace is the first; the daemon's
// other sources (kernel transition events, UDP's destroy groups) implement the same.
class EventSource {
 public:
  virtual ~EventSource() = default;

  // Non-blocking; readable (EPOLLIN) when events wait.
  [[nodiscard]] virtual int fd() const = 0;

  struct Drained {
    bool lost = false;  // the kernel dropped events since the last drain: resync with a poll
  };
  // Feeds at most `budget` events (SIZE_MAX: all that wait now, up to the source's own
  // bound a call) into `tracker`.
  virtual Result<Drained> drain(tracking::Tracker& tracker, std::size_t budget) = 0;

  [[nodiscard]] virtual EventCounters counters() const = 0;
  // False for a source that only tells what records say (the kernel's transition events):
  // the loop reads it before every source that writes records, never holds it back, and
  // counts its events apart.
  [[nodiscard]] virtual bool writes_records() const { return true; }
  // For log lines: "TCP destroy events of network namespace 4026531840".
  [[nodiscard]] virtual std::string describe() const = 0;
};

}  // namespace sockstate::daemon
