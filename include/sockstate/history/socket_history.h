// What the kernel's own events (the kernel-event source, include/sockstate/bpf/) say of
// each socket, kept by cookie for the records the polls and destroy events write: who made
// it (the process at connect(), listen() or accept(), with the program it ran, even once
// it has exited), when it began, and its counters and remote port where an abort cleared
// them. sock_diag stays the source of truth: this only answers what it cannot.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <unordered_map>

#include "sockstate/bpf/kernel_events.h"
#include "sockstate/flow/kernel_facts.h"
#include "sockstate/proc/socket_owners.h"

namespace sockstate::history {

struct HistoryOptions {
  std::string proc_root = "/proc";
  // Sockets and processes remembered at most: beyond, new ones are not (counted in
  // HistoryStats::full); their records fall back to the /proc walk.
  std::size_t max_sockets = 262144;
  std::size_t max_processes = 65536;
  // How far the destroy events read must pass an ended socket's end before it is given
  // up on (its own event lost, or from a namespace not watched): the daemon gives two poll
  // intervals.
  std::uint64_t destroy_grace_ns = 2'000'000'000;
  // uid -> user name; empty: getpwuid_r (at most once per uid).
  std::function<std::string(std::uint32_t)> user_name;
};

struct HistoryStats {
  std::uint64_t events = 0;        // events taken
  std::uint64_t owners = 0;        // sockets whose owner an event named
  std::uint64_t sockets = 0;       // sockets remembered now
  std::uint64_t processes = 0;     // processes remembered now
  std::uint64_t full = 0;          // sockets or processes not remembered: the tables were full
  std::uint64_t proc_lookups = 0;  // processes read from /proc (no exec event seen of them)
};

class SocketHistory {
 public:
  explicit SocketHistory(HistoryOptions options = {});

  // One event, in the order the kernel wrote them.
  void add(const bpf::Event& event);

  // The process that made the socket (connect(), listen()) or accepted it; nullptr when
  // no event said. Valid until the next add() or end_poll().
  [[nodiscard]] const proc::ProcessInfo* owner(std::uint64_t cookie) const;
  // Its start and end as the transitions saw them; nullptr when none was seen.
  [[nodiscard]] const flow::KernelFacts* facts(std::uint64_t cookie) const;

  // Its destroy event was read (its record, if any, written).
  void destroyed(std::uint64_t cookie);
  // Every destroy event sent so far was read (the daemon's buffers were empty).
  void caught_up();

  // After each poll: sockets `alive` (the polls' view) has not known for two polls are
  // forgotten: open ones, and ended ones once their destroy event was read or the events
  // read have passed them (destroyed(), caught_up()). So are the processes no remembered
  // socket names.
  void end_poll(const std::function<bool(std::uint64_t cookie)>& alive);

  [[nodiscard]] HistoryStats stats() const;

  // CLOCK_BOOTTIME ns (the events' clock) -> ms since the epoch.
  [[nodiscard]] std::int64_t realtime_ms(std::uint64_t boottime_ns) const;

 private:
  struct Key {
    std::uint32_t tgid = 0;
    std::uint64_t start = 0;  // start_boottime_ns
    bool operator==(const Key&) const = default;
  };
  struct KeyHash {
    std::size_t operator()(const Key& k) const;
  };
  struct Process {
    proc::ProcessInfo info;
    bool have_program = false;  // exe and cmd_line are known (exec event, or /proc)
    bool details = false;       // /proc was asked for the rest (learn_details())
    std::uint32_t sockets = 0;  // remembered sockets it owns
    std::uint32_t generation = 0;
  };
  struct Socket {
    flow::KernelFacts facts;
    Process* owner = nullptr;
    std::uint32_t generation = 0;  // the poll generation it was last seen alive or ended in
    std::uint64_t end_ns = 0;      // its CLOSE transition (CLOCK_BOOTTIME)
    bool destroyed = false;        // its destroy event was read
  };

  void on_state(const bpf::StateEvent& e);
  void on_accept(const bpf::AcceptEvent& e);
  void on_exec(const bpf::ExecEvent& e);
  Socket* socket(std::uint64_t cookie);
  void own(Socket& s, const bpf::Task& task);
  Process* process(const bpf::Task& task);
  void learn_details(Process& p);
  [[nodiscard]] bool done(const Socket& s) const;
  static void copy_program(const proc::ProcessInfo& from, Process& to);
  const std::string& user_name(std::uint32_t uid);

  HistoryOptions options_;
  proc::OwnerMap reader_;  // /proc, for processes that exec'd before we started
  long clock_ticks_ = 100;
  std::int64_t boot_realtime_ns_ = 0;  // CLOCK_REALTIME - CLOCK_BOOTTIME
  std::int64_t btime_s_ = 0;
  std::unordered_map<std::uint64_t, Socket> sockets_;
  std::unordered_map<Key, Process, KeyHash> processes_;
  std::unordered_map<std::uint32_t, Key> latest_;  // tgid -> its latest process
  std::unordered_map<std::uint32_t, std::string> users_;
  std::uint32_t generation_ = 0;
  std::uint64_t frontier_ns_ = 0;  // destroy events were read up to this end (CLOCK_BOOTTIME)
  HistoryStats stats_;
};

}  // namespace sockstate::history
