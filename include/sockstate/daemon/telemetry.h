#pragma once

#include <array>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "sockstate/sink/sink_set.h"

namespace sockstate::daemon {

// One moment's counters of every part of the daemon, read once, so that the stats line,
// the metrics page and STATUS= of that moment agree.
struct Readings {
  std::uint64_t tracked = 0;
  std::uint64_t records = 0;
  std::uint64_t polls = 0;
  std::uint64_t poll_ms = 0;
  std::uint64_t destroy_events = 0;
  std::uint64_t overflows = 0;
  std::uint64_t destroy_events_dropped = 0;  // events the kernel could not queue (sk_drops)
  std::uint64_t short_lived_summarised = 0;  // sockets no poll saw folded into summaries
  std::uint64_t summary_records = 0;         // the summary Closes written for them
  std::uint64_t closes_by_destroy = 0;
  std::uint64_t bound_closes = 0;        // destroyed sockets no poll saw listen or connect
  std::uint64_t duplicate_destroys = 0;  // destroy events of sockets closed already
  std::uint64_t closes_by_poll = 0;
  std::uint64_t awaiting_destroy = 0;
  std::uint64_t dump_redos = 0;
  std::uint64_t forged_datagrams = 0;
  std::uint64_t namespaces = 0;
  std::uint64_t namespace_errors = 0;
  std::uint64_t owner_walks = 0;
  std::uint64_t pids_unreadable = 0;
  std::uint64_t connections_unreported = 0;
  std::uint64_t log_lines_dropped = 0;
  std::uint64_t info_polls = 0;
  std::uint64_t info_lookups = 0;
  std::uint64_t event_holds = 0;
  std::uint64_t metrics_cut = 0;      // metrics connections the server closed (deadline, slots)
  std::uint64_t kernel_events = 0;    // 1: the kernel-event source runs beside sock_diag
  std::uint64_t bpf_events = 0;       // its events read
  std::uint64_t bpf_events_lost = 0;  // events its ring buffer had no room for
  std::uint64_t bpf_owners = 0;       // sockets whose owner its events named
  std::array<std::uint64_t, 9> by_activity{};  // records written, by flow::Activity
  std::vector<sink::SinkSet::View> sinks;      // live and retired
  sink::SinkStats sink_totals;
};

enum class MetricType { kCounter, kGauge };

// One counter of the daemon: its key in the stats line, its Prometheus family (empty: not
// exposed there), help text, type, and where its value is. `scale` turns the value into
// the family's unit (poll_ms into seconds).
struct TelemetryRow {
  std::string_view key;
  std::string_view metric;
  std::string_view help;
  MetricType type;
  std::uint64_t Readings::*value;
  double scale = 1.0;
};

// One counter of each sink: ".key=" after "sink.NAME" in the stats line, and a family
// labelled sink="NAME". A negative value means the sink has no such thing (a file sink
// has no connection) and is left out of both.
struct SinkTelemetryRow {
  std::string_view key;
  std::string_view metric;
  std::string_view help;
  MetricType type;
  std::int64_t (*value)(const sink::SinkStats&);
};

// The tables every output is drawn from, in the order the stats line prints them.
std::span<const TelemetryRow> telemetry_rows();
std::span<const SinkTelemetryRow> sink_telemetry_rows();

// "stats: tracked=... sink.NAME.written=... ..." (one line of key=value pairs).
std::string stats_line(const Readings& r);
// The Prometheus text exposition of the same readings.
std::string metrics_text(const Readings& r);
// The STATUS= text systemd shows ("tracking N sockets, N records, N dropped").
std::string status_text(const Readings& r);

}  // namespace sockstate::daemon
