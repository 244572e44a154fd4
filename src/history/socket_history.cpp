#include "sockstate/history/socket_history.h"

#include <unistd.h>

#include <algorithm>
#include <ctime>
#include <fstream>
#include <string>
#include <variant>

#include "sockstate/netlink/types.h"
#include "sockstate/proc/users.h"

namespace sockstate::history {
namespace {

constexpr std::size_t kMaxNameBytes = 64;
constexpr std::size_t kMaxExeBytes = 4096;

std::int64_t clock_ns(clockid_t clock) {
  timespec ts{};
  ::clock_gettime(clock, &ts);
  return static_cast<std::int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

// btime (the boot, seconds since the epoch) from <proc>/stat, as proc::OwnerMap reads it,
// so that a process's created_time is the same whichever found it; 0 when absent.
std::int64_t read_btime(const std::string& proc_root) {
  std::ifstream in(proc_root + "/stat");
  std::string key;
  while (in >> key) {
    if (key == "btime") {
      std::int64_t s = 0;
      in >> s;
      return s;
    }
    in.ignore(1 << 20, '\n');
  }
  return 0;
}

// A transition that starts a socket's life: connect() (CLOSE -> SYN-SENT), listen()
// (CLOSE -> LISTEN), or a passive open's child socket (-> SYN-RECV).
bool begins(const bpf::StateEvent& e) {
  return (e.old_state == netlink::kTcpClose &&
          (e.new_state == netlink::kTcpSynSent || e.new_state == netlink::kTcpListen)) ||
         e.new_state == netlink::kTcpSynRecv;
}

}  // namespace

std::size_t SocketHistory::KeyHash::operator()(const Key& k) const {
  return std::hash<std::uint64_t>{}(k.start ^ (std::uint64_t{k.tgid} << 40U));
}

SocketHistory::SocketHistory(HistoryOptions options)
    : options_(std::move(options)),
      reader_(
          proc::OwnerMapOptions{options_.proc_root, proc::kMaxCmdLineBytes, 0, options_.user_name}),
      clock_ticks_(::sysconf(_SC_CLK_TCK) > 0 ? ::sysconf(_SC_CLK_TCK) : 100),
      boot_realtime_ns_(clock_ns(CLOCK_REALTIME) - clock_ns(CLOCK_BOOTTIME)),
      btime_s_(read_btime(options_.proc_root)) {}

std::int64_t SocketHistory::realtime_ms(std::uint64_t boottime_ns) const {
  return (boot_realtime_ns_ + static_cast<std::int64_t>(boottime_ns)) / 1'000'000;
}

void SocketHistory::add(const bpf::Event& event) {
  ++stats_.events;
  std::visit(
      [this](const auto& e) {
        using E = std::decay_t<decltype(e)>;
        if constexpr (std::is_same_v<E, bpf::StateEvent>) {
          on_state(e);
        } else if constexpr (std::is_same_v<E, bpf::AcceptEvent>) {
          on_accept(e);
        } else {
          on_exec(e);
        }
      },
      event);
}

// The transitions to SYN-SENT and LISTEN run in the owner's context (connect(), listen());
// the passive side's run in softirq, whoever was on the CPU: only its time counts.
void SocketHistory::on_state(const bpf::StateEvent& e) {
  const bool start = begins(e);
  const bool end = e.new_state == netlink::kTcpClose;
  if (!start && !end) {
    return;
  }
  Socket* s = socket(e.cookie);
  if (s == nullptr) {
    return;
  }
  if (start && s->facts.start_ms == 0) {
    s->facts.start_ms = realtime_ms(e.boottime_ns);
  }
  // The first of them: a simultaneous open goes SYN-SENT -> SYN-RECV, and still connected.
  if (s->facts.opened == flow::KernelFacts::Opened::kUnknown) {
    if (e.new_state == netlink::kTcpSynSent) {
      s->facts.opened = flow::KernelFacts::Opened::kActive;
    } else if (e.new_state == netlink::kTcpSynRecv) {
      s->facts.opened = flow::KernelFacts::Opened::kPassive;
    }
  }
  if (start && e.old_state == netlink::kTcpClose) {
    own(*s, e.task);
  }
  if (end) {
    flow::KernelFacts& f = s->facts;
    f.ended = true;
    f.error = e.error;
    if (e.has_counters) {
      f.bytes_acked = e.bytes_acked;
      f.bytes_received = e.bytes_received;
      f.bytes_sent = e.bytes_sent;
      f.bytes_retrans = e.bytes_retrans;
      f.rtt_us = e.rtt_us;
      f.total_retrans = e.total_retrans;
    }
    f.remote_port = e.remote_port;
    s->generation = generation_;
    s->end_ns = e.boottime_ns;
  }
}

// accept() and accept4() return in the acceptor's context: the accepted socket's owner.
void SocketHistory::on_accept(const bpf::AcceptEvent& e) {
  if (e.cookie == 0) {
    return;  // accepted before we attached and never asked for: the /proc walk finds it
  }
  if (Socket* s = socket(e.cookie)) {
    own(*s, e.task);
  }
}

void SocketHistory::on_exec(const bpf::ExecEvent& e) {
  Process* p = process(e.task);
  if (p == nullptr) {
    return;
  }
  std::string args;
  for (const auto& a : e.args) {
    if (!args.empty()) {
      args.push_back(' ');
    }
    args += a;
  }
  // The filename as given to execve() may be relative: the link says where it is, while
  // the process lives (an exec event wakes the daemon, so it is read within a wakeup).
  std::string exe;
  std::array<char, 4096> link{};
  const std::string path = options_.proc_root + "/" + std::to_string(e.task.tgid) + "/exe";
  const ssize_t n = ::readlink(path.c_str(), link.data(), link.size());
  if (n > 0 && static_cast<std::size_t>(n) < link.size()) {
    exe.assign(link.data(), static_cast<std::size_t>(n));
  } else if (!e.filename.empty() && e.filename.front() == '/') {
    exe = e.filename;
  }
  p->info.name = proc::sanitize_text(e.task.comm, kMaxNameBytes, nullptr);
  p->info.exe = proc::sanitize_text(exe, kMaxExeBytes, nullptr);
  p->info.cmd_line = proc::sanitize_text(args, proc::kMaxCmdLineBytes, nullptr);
  p->info.cmd_line_truncated = args.size() + 1 >= 256;  // the event's argv is 256 bytes
  p->have_program = true;
  p->generation = generation_;
}

SocketHistory::Socket* SocketHistory::socket(std::uint64_t cookie) {
  if (cookie == 0) {
    return nullptr;
  }
  if (auto it = sockets_.find(cookie); it != sockets_.end()) {
    return &it->second;
  }
  if (sockets_.size() >= options_.max_sockets) {
    ++stats_.full;
    return nullptr;
  }
  Socket& s = sockets_[cookie];
  s.generation = generation_;
  return &s;
}

void SocketHistory::own(Socket& s, const bpf::Task& task) {
  Process* p = process(task);
  if (p == nullptr || s.owner == p) {
    return;
  }
  if (!p->details) {
    learn_details(*p);
  }
  if (s.owner != nullptr) {
    --s.owner->sockets;
  }
  s.owner = p;
  ++p->sockets;
  ++stats_.owners;
}

SocketHistory::Process* SocketHistory::process(const bpf::Task& task) {
  if (task.tgid == 0) {
    return nullptr;  // the idle task, or a task outside the reader's pid namespace
  }
  const Key key{task.tgid, task.start_boottime_ns};
  if (auto it = processes_.find(key); it != processes_.end()) {
    it->second.generation = generation_;
    return &it->second;
  }
  if (processes_.size() >= options_.max_processes) {
    ++stats_.full;
    return nullptr;
  }
  Process& p = processes_[key];
  latest_[task.tgid] = key;
  p.generation = generation_;
  proc::ProcessInfo& info = p.info;
  info.pid = static_cast<std::int32_t>(task.tgid);
  info.name = proc::sanitize_text(task.comm, kMaxNameBytes, nullptr);
  info.uid = task.uid;
  info.user = user_name(task.uid);
  info.ppid = static_cast<std::int32_t>(task.ppid);
  // stat's starttime is start_boottime in clock ticks: the same process uid as /proc's.
  info.start_ticks =
      task.start_boottime_ns / (1'000'000'000 / static_cast<std::uint64_t>(clock_ticks_));
  if (btime_s_ > 0) {
    const auto ticks = static_cast<std::int64_t>(info.start_ticks);
    info.created_time_ms = btime_s_ * 1000 + ticks / clock_ticks_ * 1000 +
                           (ticks % clock_ticks_) * 1000 / clock_ticks_;
  }
  return &p;
}

// What no event carries (its cgroup and container, its parent's name), from /proc if the
// process still lives when its events are read (at the next destroy event or poll: a
// process that exited first has none of them); and for one whose exec no event showed (it exec'd
// before we started, or is a fork that did not exec), its program too: from /proc, else the program
// its parent runs (a fork runs its parent's program with its parent's arguments).
void SocketHistory::learn_details(Process& p) {
  p.details = true;  // tried once
  ++stats_.proc_lookups;
  proc::ProcessInfo& info = p.info;
  if (const proc::ProcessInfo* found = reader_.process(info.pid);
      found != nullptr && found->start_ticks == info.start_ticks) {
    if (!p.have_program) {
      info.exe = found->exe;
      info.cmd_line = found->cmd_line;
      info.cmd_line_truncated = found->cmd_line_truncated;
      p.have_program = true;
    }
    info.ppid = found->ppid;  // as this pid namespace sees it
    info.parent_name = found->parent_name;
    info.cgroup = found->cgroup;
    info.container = found->container;
    return;
  }
  if (info.ppid <= 0) {
    return;
  }
  if (auto latest = latest_.find(static_cast<std::uint32_t>(info.ppid)); latest != latest_.end()) {
    if (auto parent = processes_.find(latest->second); parent != processes_.end()) {
      const Process& from = parent->second;
      info.parent_name = from.info.name;
      if (!p.have_program && from.have_program) {
        copy_program(from.info, p);
      }
      return;
    }
  }
  if (const proc::ProcessInfo* parent = reader_.process(info.ppid);
      parent != nullptr && parent->start_ticks <= info.start_ticks) {
    info.parent_name = parent->name;
    if (!p.have_program) {
      copy_program(*parent, p);
    }
  }
}

void SocketHistory::copy_program(const proc::ProcessInfo& from, Process& to) {
  to.info.exe = from.exe;
  to.info.cmd_line = from.cmd_line;
  to.info.cmd_line_truncated = from.cmd_line_truncated;
  to.info.cgroup = from.cgroup;
  to.info.container = from.container;
  to.have_program = true;
}

const std::string& SocketHistory::user_name(std::uint32_t uid) {
  auto it = users_.find(uid);
  if (it == users_.end()) {
    it = users_.emplace(uid, options_.user_name ? options_.user_name(uid) : proc::passwd_name(uid))
             .first;
  }
  return it->second;
}

const proc::ProcessInfo* SocketHistory::owner(std::uint64_t cookie) const {
  const auto it = sockets_.find(cookie);
  return it != sockets_.end() && it->second.owner != nullptr ? &it->second.owner->info : nullptr;
}

const flow::KernelFacts* SocketHistory::facts(std::uint64_t cookie) const {
  const auto it = sockets_.find(cookie);
  return it != sockets_.end() ? &it->second.facts : nullptr;
}

void SocketHistory::destroyed(std::uint64_t cookie) {
  if (auto it = sockets_.find(cookie); it != sockets_.end()) {
    it->second.destroyed = true;
    frontier_ns_ = std::max(frontier_ns_, it->second.end_ns);
  }
}

void SocketHistory::caught_up() {
  frontier_ns_ = std::max(frontier_ns_, static_cast<std::uint64_t>(clock_ns(CLOCK_BOOTTIME)));
}

// An ended socket is kept for its destroy event, however late the daemon reads it: until
// it is read, or the events read have passed its end by the grace (then it will not come:
// lost in an overflow, or from a namespace not watched).
bool SocketHistory::done(const Socket& s) const {
  if (generation_ - s.generation < 2) {
    return false;
  }
  return s.destroyed || !s.facts.ended || s.end_ns + options_.destroy_grace_ns <= frontier_ns_;
}

void SocketHistory::end_poll(const std::function<bool(std::uint64_t cookie)>& alive) {
  ++generation_;
  for (auto it = sockets_.begin(); it != sockets_.end();) {
    Socket& s = it->second;
    if (alive(it->first)) {  // an ended one too: its application may hold it a while
      s.generation = generation_;
    }
    if (done(s)) {
      if (s.owner != nullptr) {
        --s.owner->sockets;
      }
      it = sockets_.erase(it);
    } else {
      ++it;
    }
  }
  for (auto it = processes_.begin(); it != processes_.end();) {
    if (it->second.sockets == 0 && generation_ - it->second.generation >= 2) {
      if (auto latest = latest_.find(it->first.tgid);
          latest != latest_.end() && latest->second == it->first) {
        latest_.erase(latest);
      }
      it = processes_.erase(it);
    } else {
      ++it;
    }
  }
  boot_realtime_ns_ = clock_ns(CLOCK_REALTIME) - clock_ns(CLOCK_BOOTTIME);  // the clock may step
}

HistoryStats SocketHistory::stats() const {
  HistoryStats s = stats_;
  s.sockets = sockets_.size();
  s.processes = processes_.size();
  return s;
}

}  // namespace sockstate::history
