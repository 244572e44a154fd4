// history::SocketHistory on events made by hand (the kernel's own are in
// tests/integration/kernel_*): which event names an owner, starts, an abort's counters,
// a fork's program, and what is forgotten when.
#include "sockstate/history/socket_history.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <fstream>
#include <sstream>

#include "sockstate/flow/kernel_facts.h"
#include "sockstate/netlink/types.h"

namespace sockstate::history {
namespace {

constexpr std::uint32_t kGone = 999999;  // no such pid (pid_max is 4194304 at most)

bpf::Task task(std::uint32_t tgid, std::uint64_t start, std::uint32_t ppid = 1) {
  bpf::Task t;
  t.tgid = tgid;
  t.pid = tgid;
  t.uid = 0;
  t.ppid = ppid;
  t.start_boottime_ns = start;
  t.comm = "worker";
  return t;
}

bpf::StateEvent transition(std::uint64_t cookie, std::uint8_t from, std::uint8_t to,
                           const bpf::Task& t, std::uint64_t at_ns = 1'000'000'000) {
  bpf::StateEvent e;
  e.cookie = cookie;
  e.old_state = from;
  e.new_state = to;
  e.boottime_ns = at_ns;
  e.task = t;
  return e;
}

HistoryOptions options() {
  HistoryOptions o;
  o.user_name = [](std::uint32_t uid) { return uid == 0 ? "root" : ""; };
  return o;
}

TEST(SocketHistory, ConnectAndListenNameTheirCaller) {
  SocketHistory h(options());
  h.add(transition(1, netlink::kTcpClose, netlink::kTcpSynSent, task(kGone, 5)));
  h.add(transition(2, netlink::kTcpClose, netlink::kTcpListen, task(kGone + 1, 6)));
  ASSERT_NE(h.owner(1), nullptr);
  EXPECT_EQ(h.owner(1)->pid, static_cast<std::int32_t>(kGone));
  EXPECT_EQ(h.owner(1)->name, "worker");
  EXPECT_EQ(h.owner(1)->user, "root");
  ASSERT_NE(h.owner(2), nullptr);
  EXPECT_EQ(h.owner(2)->pid, static_cast<std::int32_t>(kGone + 1));
  EXPECT_EQ(h.owner(3), nullptr);
  EXPECT_EQ(h.stats().owners, 2U);
}

TEST(SocketHistory, ThePassiveSidesTransitionsNameNobodyItsAcceptDoes) {
  SocketHistory h(options());
  // Softirq: whoever was on the CPU.
  h.add(transition(7, netlink::kTcpListen, netlink::kTcpSynRecv, task(kGone, 5), 2'000'000'000));
  h.add(transition(7, netlink::kTcpSynRecv, netlink::kTcpEstablished, task(kGone, 5)));
  EXPECT_EQ(h.owner(7), nullptr);
  ASSERT_NE(h.facts(7), nullptr);
  EXPECT_EQ(h.facts(7)->start_ms, h.realtime_ms(2'000'000'000)) << "its SYN-RECEIVED";
  bpf::AcceptEvent a;
  a.cookie = 7;
  a.task = task(kGone + 2, 9);
  h.add(a);
  ASSERT_NE(h.owner(7), nullptr);
  EXPECT_EQ(h.owner(7)->pid, static_cast<std::int32_t>(kGone + 2));
}

TEST(SocketHistory, AnExecNamesTheProgramOfAProcessLongGone) {
  SocketHistory h(options());
  bpf::ExecEvent x;
  x.task = task(kGone, 5);
  x.task.comm = "curl";
  x.filename = "/usr/bin/curl";
  x.args = {"curl", "-s", "http://192.0.2.1/x"};
  h.add(x);
  h.add(transition(1, netlink::kTcpClose, netlink::kTcpSynSent, task(kGone, 5)));
  ASSERT_NE(h.owner(1), nullptr);
  EXPECT_EQ(h.owner(1)->exe, "/usr/bin/curl");
  EXPECT_EQ(h.owner(1)->cmd_line, "curl -s http://192.0.2.1/x");
  EXPECT_EQ(h.owner(1)->name, "curl");
  // The same pid later, another process (another start): not confused.
  h.add(transition(2, netlink::kTcpClose, netlink::kTcpSynSent, task(kGone, 6)));
  ASSERT_NE(h.owner(2), nullptr);
  EXPECT_NE(h.owner(2), h.owner(1));
  EXPECT_EQ(h.owner(2)->exe, "") << "its program is unknown: it exited, and so did its parent";
}

TEST(SocketHistory, AForkThatDidNotExecRunsItsParentsProgram) {
  SocketHistory h(options());
  bpf::ExecEvent x;
  x.task = task(kGone, 5);
  x.filename = "/usr/sbin/sshd";
  x.args = {"sshd", "-D"};
  h.add(x);
  h.add(transition(1, netlink::kTcpClose, netlink::kTcpSynSent, task(kGone + 1, 8, kGone)));
  ASSERT_NE(h.owner(1), nullptr);
  EXPECT_EQ(h.owner(1)->exe, "/usr/sbin/sshd");
  EXPECT_EQ(h.owner(1)->cmd_line, "sshd -D");
  EXPECT_EQ(h.owner(1)->ppid, static_cast<std::int32_t>(kGone));
}

TEST(SocketHistory, ALiveProcessIsReadFromProc) {
  SocketHistory h(options());
  std::ifstream stat("/proc/self/stat");
  std::string text((std::istreambuf_iterator<char>(stat)), {});
  std::istringstream fields(text.substr(text.rfind(')') + 2));
  std::string field;
  for (int i = 3; i <= 22 && fields >> field; ++i) {
  }
  const std::uint64_t ticks = std::stoull(field);
  const auto hz = static_cast<std::uint64_t>(::sysconf(_SC_CLK_TCK));
  const std::uint64_t start_ns = ticks * (1'000'000'000 / hz);
  h.add(transition(1, netlink::kTcpClose, netlink::kTcpSynSent,
                   task(static_cast<std::uint32_t>(::getpid()), start_ns)));
  ASSERT_NE(h.owner(1), nullptr);
  EXPECT_FALSE(h.owner(1)->exe.empty());
  EXPECT_FALSE(h.owner(1)->cmd_line.empty());
  EXPECT_EQ(h.owner(1)->start_ticks, ticks) << "the same process uid as a /proc walk's";
  EXPECT_EQ(h.owner(1)->ppid, static_cast<std::int32_t>(::getppid()));
}

TEST(SocketHistory, AnAbortsCountersAndPortAmendItsDestroyEvent) {
  SocketHistory h(options());
  h.add(transition(1, netlink::kTcpClose, netlink::kTcpSynSent, task(kGone, 5)));
  bpf::StateEvent end = transition(1, netlink::kTcpEstablished, netlink::kTcpClose, task(0, 0));
  end.has_counters = true;
  end.bytes_acked = 100001;
  end.bytes_sent = 100000;
  end.bytes_received = 0;
  end.rtt_us = 40;
  end.remote_port = 6603;
  h.add(end);
  const flow::KernelFacts* f = h.facts(1);
  ASSERT_NE(f, nullptr);
  ASSERT_TRUE(f->ended);
  netlink::SocketEntry destroyed;  // what tcp_disconnect() left: zeroes
  destroyed.has_tcp_info = true;
  flow::amend_final(destroyed, *f);
  EXPECT_EQ(destroyed.info.bytes_acked, 100001U);
  EXPECT_EQ(destroyed.info.bytes_sent, 100000U);
  EXPECT_EQ(destroyed.info.rtt_us, 40U);
  EXPECT_EQ(destroyed.remote_port, 6603);
  netlink::SocketEntry orderly;  // a destroy event with its own counters keeps them
  orderly.has_tcp_info = true;
  orderly.info.bytes_acked = 7;
  orderly.remote_port = 80;
  flow::amend_final(orderly, *f);
  EXPECT_EQ(orderly.info.bytes_acked, 7U);
  EXPECT_EQ(orderly.remote_port, 80);
}

TEST(SocketHistory, WhatThePollsNoLongerKnowIsForgottenTwoPollsLater) {
  SocketHistory h(options());
  h.add(transition(1, netlink::kTcpClose, netlink::kTcpSynSent, task(kGone, 5)));
  h.add(transition(2, netlink::kTcpClose, netlink::kTcpSynSent, task(kGone, 5)));
  h.add(transition(2, netlink::kTcpSynSent, netlink::kTcpClose, task(0, 0)));
  const auto alive = [](std::uint64_t cookie) { return cookie == 2; };  // its app holds it
  h.end_poll(alive);
  EXPECT_NE(h.owner(1), nullptr) << "one poll is not enough: a record may still be owed";
  h.end_poll(alive);
  EXPECT_EQ(h.owner(1), nullptr);
  EXPECT_NE(h.owner(2), nullptr) << "ended, but still held: its Fail comes later";
  EXPECT_EQ(h.stats().processes, 1U);
  h.destroyed(2);  // its Fail was written from its destroy event
  h.end_poll([](std::uint64_t) { return false; });
  h.end_poll([](std::uint64_t) { return false; });
  EXPECT_EQ(h.owner(2), nullptr);
  h.end_poll([](std::uint64_t) { return false; });
  EXPECT_EQ(h.stats().sockets, 0U);
  EXPECT_EQ(h.stats().processes, 0U) << "a process no socket names";
}

// An ended socket whose destroy event the daemon has not read yet (it lags behind a close
// storm, or holds events for a slow sink) keeps its owner for that event, however many
// polls pass; it is given up once the events read have passed its end by the grace.
TEST(SocketHistory, AnEndedSocketWaitsForItsDestroyEventUntilTheEventsPassIt) {
  HistoryOptions o = options();
  o.destroy_grace_ns = 2'000'000'000;
  SocketHistory h(o);
  const auto nobody = [](std::uint64_t) { return false; };
  for (const std::uint64_t cookie : {1U, 2U, 3U}) {
    h.add(transition(cookie, netlink::kTcpClose, netlink::kTcpSynSent, task(kGone, 5)));
    h.add(transition(cookie, netlink::kTcpSynSent, netlink::kTcpClose, task(0, 0),
                     cookie * 1'000'000'000));
  }
  for (int i = 0; i < 10; ++i) {
    h.end_poll(nobody);
  }
  EXPECT_NE(h.owner(1), nullptr) << "its destroy event is still to be read";
  EXPECT_NE(h.owner(3), nullptr);
  h.destroyed(1);  // ended at 1 s: the events read are at 1 s, not past 2 and 3 by 2 s
  h.end_poll(nobody);
  EXPECT_EQ(h.owner(1), nullptr) << "read: nothing more to wait for";
  EXPECT_NE(h.owner(2), nullptr);
  h.caught_up();  // every event sent was read, and the boot clock is far past 3 s + 2 s
  h.end_poll(nobody);
  EXPECT_EQ(h.owner(2), nullptr) << "its event will not come (lost, or not watched)";
  EXPECT_EQ(h.owner(3), nullptr);
  EXPECT_EQ(h.stats().sockets, 0U);
}

TEST(SocketHistory, FullTablesCountWhatTheyCouldNotKeep) {
  HistoryOptions o = options();
  o.max_sockets = 2;
  SocketHistory h(o);
  for (std::uint64_t c = 1; c <= 5; ++c) {
    h.add(transition(c, netlink::kTcpClose, netlink::kTcpSynSent, task(kGone, 5)));
  }
  EXPECT_EQ(h.stats().sockets, 2U);
  EXPECT_EQ(h.stats().full, 3U);
  EXPECT_EQ(h.owner(5), nullptr);
}

}  // namespace
}  // namespace sockstate::history
