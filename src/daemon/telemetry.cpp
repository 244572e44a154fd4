#include "sockstate/daemon/telemetry.h"

#include <spdlog/fmt/fmt.h>

#include "sockstate/metrics/server.h"

namespace sockstate::daemon {
namespace {

using enum MetricType;

constexpr std::array<TelemetryRow, 30> kRows = {{
    {"tracked", "sockstate_sockets_tracked", "Sockets tracked now.", kGauge, &Readings::tracked},
    // By activity in the metrics (sockstate_records_total, below).
    {"records", "", "", kCounter, &Readings::records},
    {"polls", "sockstate_polls_total", "Polls done.", kCounter, &Readings::polls},
    {"poll_ms", "sockstate_poll_duration_seconds", "Duration of the last poll.", kGauge,
     &Readings::poll_ms, 0.001},
    {"kernel_events", "sockstate_kernel_events_active",
     "1 when the kernel-event source (BPF) runs beside sock_diag, 0 when sock_diag runs alone.",
     kGauge, &Readings::kernel_events},
    {"bpf_events", "sockstate_bpf_events_total", "Kernel events (BPF ring buffer) read.", kCounter,
     &Readings::bpf_events},
    {"bpf_events_lost", "sockstate_bpf_events_lost_total",
     "Kernel events the ring buffer had no room for (the polls resync).", kCounter,
     &Readings::bpf_events_lost},
    {"bpf_owners", "sockstate_bpf_owners_total", "Sockets whose owner a kernel event named.",
     kCounter, &Readings::bpf_owners},
    {"destroy_events", "sockstate_destroy_events_total", "Socket-destroy events read.", kCounter,
     &Readings::destroy_events},
    {"overflows", "sockstate_destroy_overflows_total", "Times the kernel dropped destroy events.",
     kCounter, &Readings::overflows},
    {"destroy_events_dropped", "sockstate_destroy_events_dropped_total",
     "Socket-destroy events the kernel could not queue for us (each a socket's end; one a "
     "poll had seen is closed by a poll).",
     kCounter, &Readings::destroy_events_dropped},
    {"short_lived_summarised", "sockstate_short_lived_summarised_total",
     "Sockets seen only in their destroy event, over short_lived_per_second, folded into "
     "summary Close records (their count).",
     kCounter, &Readings::short_lived_summarised},
    {"summary_records", "sockstate_summary_records_total",
     "Summary Close records written for short-lived sockets.", kCounter,
     &Readings::summary_records},
    {"closes_by_destroy", "sockstate_closes_by_destroy_total",
     "Closes reported from a destroy event.", kCounter, &Readings::closes_by_destroy},
    {"bound_closes", "sockstate_bound_closes_total",
     "Sockets destroyed that no poll saw listen or connect, with no record: never used, bound "
     "only, or a listener that lived between two polls (its destroy event cannot tell which).",
     kCounter, &Readings::bound_closes},
    {"duplicate_destroys", "sockstate_duplicate_destroys_total",
     "Destroy events of sockets a record had closed already (a poll's, or a remnant's): no "
     "second record.",
     kCounter, &Readings::duplicate_destroys},
    {"closes_by_poll", "sockstate_closes_by_poll_total",
     "Closes reported because a poll no longer found the socket.", kCounter,
     &Readings::closes_by_poll},
    {"awaiting_destroy", "sockstate_awaiting_destroy",
     "Sockets a poll missed whose destroy event is awaited.", kGauge, &Readings::awaiting_destroy},
    {"dump_redos", "sockstate_dump_redos_total", "Dumps redone because they were inconsistent.",
     kCounter, &Readings::dump_redos},
    {"forged_datagrams", "sockstate_forged_datagrams_total",
     "Netlink datagrams not from the kernel, discarded.", kCounter, &Readings::forged_datagrams},
    {"namespaces", "sockstate_namespaces", "Network namespaces watched.", kGauge,
     &Readings::namespaces},
    {"namespace_errors", "sockstate_namespace_errors_total",
     "Namespaces that could not be opened or dumped.", kCounter, &Readings::namespace_errors},
    {"owner_walks", "sockstate_owner_walks_total", "Walks of /proc for sockets' owners.", kCounter,
     &Readings::owner_walks},
    {"pids_unreadable", "sockstate_pids_unreadable_total",
     "Processes whose sockets could not be attributed (denied, errors).", kCounter,
     &Readings::pids_unreadable},
    {"connections_unreported", "sockstate_connections_unreported",
     "Connections the kernel made that no record reported (lost destroy events).", kGauge,
     &Readings::connections_unreported},
    {"log_lines_dropped", "sockstate_log_lines_dropped_total",
     "Log lines stderr could not take at once.", kCounter, &Readings::log_lines_dropped},
    {"info_polls", "sockstate_info_polls_total", "Polls that dumped every socket's tcp_info.",
     kCounter, &Readings::info_polls},
    {"info_lookups", "sockstate_info_lookups_total",
     "Sockets whose tcp_info was looked up one by one.", kCounter, &Readings::info_lookups},
    {"event_holds", "sockstate_event_holds_total",
     "Times destroy events were left in the kernel's buffer for a half-full sink.", kCounter,
     &Readings::event_holds},
    {"metrics_cut", "sockstate_metrics_connections_cut_total",
     "Metrics connections closed unanswered: past their deadline, or the oldest when every "
     "slot was taken.",
     kCounter, &Readings::metrics_cut},
}};

constexpr std::array<SinkTelemetryRow, 8> kSinkRows = {{
    {"written", "sockstate_sink_written_total", "Records a sink delivered.", kCounter,
     [](const sink::SinkStats& s) { return static_cast<std::int64_t>(s.written); }},
    {"dropped", "sockstate_sink_dropped_total",
     "Records a sink dropped (queue full, undeliverable).", kCounter,
     [](const sink::SinkStats& s) { return static_cast<std::int64_t>(s.dropped); }},
    {"queued", "sockstate_sink_queued", "Records waiting in a sink's queue.", kGauge,
     [](const sink::SinkStats& s) { return static_cast<std::int64_t>(s.queued); }},
    {"queued_bytes", "sockstate_sink_queued_bytes", "What a sink's queue holds, in bytes.", kGauge,
     [](const sink::SinkStats& s) { return static_cast<std::int64_t>(s.queued_bytes); }},
    {"errors", "sockstate_sink_errors_total", "Write and connect failures of a sink.", kCounter,
     [](const sink::SinkStats& s) { return static_cast<std::int64_t>(s.errors); }},
    {"connected", "sockstate_sink_connected", "A socket or kafka sink's connection: 1 up, 0 down.",
     kGauge, [](const sink::SinkStats& s) { return static_cast<std::int64_t>(s.connected); }},
    {"brokers_up", "sockstate_sink_brokers_up", "Kafka brokers a kafka sink has a connection to.",
     kGauge, [](const sink::SinkStats& s) { return static_cast<std::int64_t>(s.brokers_up); }},
    {"left_out", "sockstate_sink_left_out_total",
     "Times a sink that had not kept up for half a poll interval was left out of pacing.", kCounter,
     [](const sink::SinkStats& s) { return static_cast<std::int64_t>(s.left_out); }},
}};

constexpr std::array<std::string_view, 9> kActivity = {
    "unknown", "open", "close", "fail", "refuse", "traffic", "listen", "state_change", "bound"};

std::string_view type_name(MetricType t) {
  return t == kCounter ? "counter" : "gauge";
}

}  // namespace

std::span<const TelemetryRow> telemetry_rows() {
  return kRows;
}
std::span<const SinkTelemetryRow> sink_telemetry_rows() {
  return kSinkRows;
}

std::string stats_line(const Readings& r) {
  std::string line = "stats:";
  for (const auto& row : kRows) {
    line += fmt::format(" {}={}", row.key, r.*row.value);
  }
  for (const auto& view : r.sinks) {
    // "sink.NAME.written=" then ".dropped=" and the rest, each key once per sink.
    const char* prefix = "sink.";
    for (const auto& row : kSinkRows) {
      const std::int64_t v = row.value(view.stats);
      if (v < 0) {
        continue;
      }
      line += *prefix != '\0' ? fmt::format(" {}{}.{}={}", prefix, view.name, row.key, v)
                              : fmt::format(" .{}={}", row.key, v);
      prefix = "";
    }
  }
  return line;
}

std::string metrics_text(const Readings& r) {
  metrics::Exposition m;
  m.family("sockstate_records_total", "Records written, by activity.", "counter");
  for (std::size_t a = 0; a < kActivity.size(); ++a) {
    m.sample("sockstate_records_total", fmt::format("activity=\"{}\"", kActivity[a]),
             r.by_activity[a]);
  }
  for (const auto& row : kRows) {
    if (row.metric.empty()) {
      continue;
    }
    m.family(row.metric, row.help, type_name(row.type));
    if (row.scale == 1.0) {
      m.sample(row.metric, "", r.*row.value);
    } else {
      m.sample(row.metric, "", static_cast<double>(r.*row.value) * row.scale);
    }
  }
  for (const auto& row : kSinkRows) {
    m.family(row.metric, row.help, type_name(row.type));
    for (const auto& view : r.sinks) {
      if (const std::int64_t v = row.value(view.stats); v >= 0) {
        m.sample(row.metric, "sink=\"" + metrics::label_value(view.name) + "\"",
                 static_cast<std::uint64_t>(v));
      }
    }
  }
  return m.text();
}

std::string status_text(const Readings& r) {
  return fmt::format("tracking {} sockets, {} records, {} dropped", r.tracked, r.records,
                     r.sink_totals.dropped);
}

}  // namespace sockstate::daemon
