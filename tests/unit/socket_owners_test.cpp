// OwnerMap against a fake /proc tree built in a temporary directory: fd entries are
// symlinks to "socket:[N]", "pipe:[N]" or "/dev/null", next to hand-written comm, cmdline,
// status and stat files and a <root>/stat with btime.
#include "sockstate/proc/socket_owners.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <vector>

#include "sockstate/proc/users.h"

namespace sockstate::proc {
namespace {

namespace fs = std::filesystem;
using namespace std::string_literals;

constexpr std::int64_t kBtime = 1700000000;
constexpr long kTicks = 100;

// True when `s` is well-formed UTF-8 without control characters.
bool clean_utf8(const std::string& s) {
  bool truncated = false;
  return sanitize_text(s, s.size() + 1, &truncated) == s && !truncated;
}

class FakeProc {
 public:
  FakeProc() {
    char dir[] = "/tmp/sockstate-proc-XXXXXX";
    if (::mkdtemp(dir) == nullptr) {
      std::abort();
    }
    root_ = dir;
    fs::permissions(root_, fs::perms::owner_all | fs::perms::group_read | fs::perms::group_exec |
                               fs::perms::others_read | fs::perms::others_exec);
    write("stat",
          "cpu  1 2 3 4\nintr 5\nctxt 6\nbtime " + std::to_string(kBtime) + "\nprocesses 7\n");
    fs::create_directory(root_ / "self");  // not a pid
    fs::create_directory(root_ / "net");
  }
  ~FakeProc() {
    std::error_code ec;
    fs::permissions(root_, fs::perms::owner_all, fs::perm_options::add, ec);
    fs::remove_all(root_, ec);
  }
  FakeProc(const FakeProc&) = delete;
  FakeProc& operator=(const FakeProc&) = delete;

  [[nodiscard]] std::string root() const { return root_.string(); }
  [[nodiscard]] fs::path path(const std::string& rel) const { return root_ / rel; }

  void write(const std::string& rel, const std::string& content) const {
    std::ofstream(root_ / rel, std::ios::binary) << content;
  }

  // A process with the given fd link targets (fd n -> targets[n]).
  void add(int pid, const std::vector<std::string>& targets, const std::string& comm = "proc",
           const std::string& cmdline = "proc\0"s, std::uint32_t uid = 1000,
           std::uint64_t start_ticks = 4200) const {
    const std::string dir = std::to_string(pid);
    fs::create_directories(root_ / dir / "fd");
    for (std::size_t i = 0; i < targets.size(); ++i) {
      fs::create_symlink(targets[i], root_ / dir / "fd" / std::to_string(i));
    }
    write(dir + "/comm", comm + "\n");
    write(dir + "/cmdline", cmdline);
    write(dir + "/status", "Name:\t" + comm + "\nUmask:\t0022\nState:\tS (sleeping)\nTgid:\t" +
                               dir + "\nPid:\t" + dir + "\nPPid:\t1\nTracerPid:\t0\nUid:\t" +
                               std::to_string(uid) + "\t" + std::to_string(uid + 1) +
                               "\t0\t0\nGid:\t100\t100\t100\t100\n");
    set_start(pid, start_ticks, comm);
  }

  void set_start(int pid, std::uint64_t start_ticks, const std::string& comm = "proc") const {
    // Fields 3..52 of proc(5); starttime is field 22.
    std::string stat = std::to_string(pid) + " (" + comm + ") S 1 " + std::to_string(pid) + " " +
                       std::to_string(pid) + " 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 " +
                       std::to_string(start_ticks) +
                       " 1000000 200 18446744073709551615 1 1 0 0 0 0 0 4096 0 0 0 0 17 1 0 0 0 "
                       "0 0 0 0 0 0 0 0 0 0\n";
    write(std::to_string(pid) + "/stat", stat);
  }

 private:
  fs::path root_;
};

std::string names(const OwnerMap& map, std::uint32_t inode) {
  const ProcessInfo* p = map.owner(inode);
  return p == nullptr ? "-" : p->name + "/" + std::to_string(p->pid);
}

OwnerMapOptions options_for(const FakeProc& fake) {
  OwnerMapOptions o;
  o.proc_root = fake.root();
  o.clock_ticks = kTicks;
  o.user_name = [](std::uint32_t uid) {
    return uid == 1000 ? "alice"s : uid == 33 ? "www-data"s : ""s;
  };
  return o;
}

TEST(SocketOwners, AttributesEachSocketToItsProcess) {
  FakeProc fake;
  fake.add(100,
           {"/dev/null", "socket:[1000]", "pipe:[77]", "socket:[1001]", "anon_inode:[eventfd]"},
           "nginx", "nginx: master process\0-g\0daemon off;\0"s, 33, 12345);
  fake.add(200, {"socket:[2000]", "/dev/null"}, "sshd", "/usr/sbin/sshd\0-D\0"s, 1000, 99);
  fake.add(300, {"/dev/null", "pipe:[1]"}, "cat", "cat\0"s);  // no socket

  OwnerMap map(options_for(fake));
  auto stats = map.scan();
  ASSERT_TRUE(stats.ok()) << stats.error().message();
  EXPECT_EQ(stats->pids_scanned, 3U);
  EXPECT_EQ(stats->pids_with_sockets, 2U);
  EXPECT_EQ(stats->fds_read, 9U);
  EXPECT_EQ(stats->sockets_found, 3U);
  EXPECT_EQ(stats->attributes_read, 2U);
  EXPECT_EQ(stats->shared_sockets, 0U);
  EXPECT_EQ(stats->vanished + stats->permission_errors + stats->pid_errors, 0U);
  EXPECT_TRUE(stats->walked);
  EXPECT_TRUE(stats->complete);
  EXPECT_EQ(map.size(), 3U);

  const ProcessInfo* nginx = map.owner(1000);
  ASSERT_NE(nginx, nullptr);
  EXPECT_EQ(nginx, map.lookup(1001));
  EXPECT_EQ(nginx->pid, 100);
  EXPECT_EQ(nginx->name, "nginx");
  EXPECT_EQ(nginx->cmd_line, "nginx: master process -g daemon off;");
  EXPECT_FALSE(nginx->cmd_line_truncated);
  EXPECT_EQ(nginx->uid, 33U);  // the real uid, not the effective one
  EXPECT_EQ(nginx->user, "www-data");
  EXPECT_EQ(nginx->created_time_ms, kBtime * 1000 + 123450);

  const ProcessInfo* sshd = map.owner(2000);
  ASSERT_NE(sshd, nullptr);
  EXPECT_EQ(sshd->pid, 200);
  EXPECT_EQ(sshd->cmd_line, "/usr/sbin/sshd -D");
  EXPECT_EQ(sshd->user, "alice");
  EXPECT_EQ(sshd->created_time_ms, kBtime * 1000 + 990);

  EXPECT_EQ(map.owner(77), nullptr);  // a pipe
  EXPECT_EQ(map.owner(1), nullptr);
  EXPECT_EQ(map.owner(0), nullptr);
}

TEST(SocketOwners, MissingProcRootIsAnError) {
  OwnerMap map("/nonexistent/proc");
  auto stats = map.scan();
  ASSERT_FALSE(stats.ok());
  EXPECT_EQ(stats.error().errnum, ENOENT);
  EXPECT_NE(stats.error().message().find("/nonexistent/proc"), std::string::npos);
}

TEST(SocketOwners, SharedSocketGoesToTheLowestPid) {
  FakeProc fake;
  // Directory order on the temp file system is arbitrary: the rule must not depend on it.
  fake.add(4000, {"socket:[5]", "socket:[6]"}, "child");
  fake.add(30, {"socket:[5]"}, "parent");
  fake.add(700, {"socket:[5]", "socket:[6]", "socket:[6]"}, "grandchild");  // a dup() of 6
  fake.add(800, {"socket:[7]", "socket:[7]"}, "dup");  // dup()s in one pid: not shared

  OwnerMap map(options_for(fake));
  auto stats = map.scan();
  ASSERT_TRUE(stats.ok());
  EXPECT_EQ(names(map, 5), "parent/30");
  EXPECT_EQ(names(map, 6), "grandchild/700");
  EXPECT_EQ(names(map, 7), "dup/800");
  EXPECT_EQ(stats->sockets_found, 3U);
  EXPECT_EQ(stats->shared_sockets, 2U);  // 5 and 6
}

TEST(SocketOwners, CommandLineMadeSafe) {
  FakeProc fake;
  // Invalid UTF-8 (stray continuation, overlong '/', a surrogate, a cut sequence), control
  // characters, a C1 control, tabs and newlines, and valid non-ASCII text.
  fake.add(10, {"socket:[10]"}, "bad\x1b[31mname\xff",
           "prog\0--x=\x80\xC0\xAF\0\xED\xA0\x80\0caf\xC3\xA9\0line1\nline2\tx\0\x07\x7f\xC2\x85"
           "\0\xE2\x82"s);
  OwnerMap map(options_for(fake));
  ASSERT_TRUE(map.scan().ok());
  const ProcessInfo* p = map.owner(10);
  ASSERT_NE(p, nullptr);
  const std::string r = "\xEF\xBF\xBD";
  EXPECT_EQ(p->cmd_line, "prog --x=" + r + r + r + " " + r + r + r + " caf\xC3\xA9 line1 line2 x " +
                             r + r + r + " " + r + r);
  EXPECT_FALSE(p->cmd_line_truncated);
  EXPECT_EQ(p->name, "bad" + r + "[31mname" + r);
  EXPECT_TRUE(clean_utf8(p->cmd_line));
  EXPECT_TRUE(clean_utf8(p->name));
}

TEST(SocketOwners, HugeCommandLineCutOnACharacterBoundary) {
  FakeProc fake;
  // "x" then 3000 two-byte characters: the 1024-byte bound falls inside a character.
  std::string huge = "x";
  for (int i = 0; i < 3000; ++i) {
    huge += "\xC3\xA9";
  }
  fake.add(11, {"socket:[11]"}, "huge", huge + "\0--last\0"s);
  // Exactly the bound: not cut.
  fake.add(12, {"socket:[12]"}, "exact", std::string(kMaxCmdLineBytes, 'a') + "\0"s);
  // One over the bound.
  fake.add(13, {"socket:[13]"}, "over", std::string(kMaxCmdLineBytes + 1, 'b') + "\0"s);
  // Under the bound in bytes read, over it once invalid bytes become U+FFFD.
  fake.add(14, {"socket:[14]"}, "grow", std::string(500, '\xff'));

  OwnerMap map(options_for(fake));
  ASSERT_TRUE(map.scan().ok());
  const ProcessInfo* p = map.owner(11);
  ASSERT_NE(p, nullptr);
  EXPECT_TRUE(p->cmd_line_truncated);
  EXPECT_EQ(p->cmd_line.size(), kMaxCmdLineBytes - 1);  // 1 + 511 * 2
  EXPECT_EQ(p->cmd_line, huge.substr(0, kMaxCmdLineBytes - 1));
  EXPECT_TRUE(clean_utf8(p->cmd_line));

  EXPECT_EQ(map.owner(12)->cmd_line, std::string(kMaxCmdLineBytes, 'a'));
  EXPECT_FALSE(map.owner(12)->cmd_line_truncated);
  EXPECT_EQ(map.owner(13)->cmd_line, std::string(kMaxCmdLineBytes, 'b'));
  EXPECT_TRUE(map.owner(13)->cmd_line_truncated);
  EXPECT_EQ(map.owner(14)->cmd_line.size(), 1023U);  // 341 replacement characters
  EXPECT_TRUE(map.owner(14)->cmd_line_truncated);
  EXPECT_TRUE(clean_utf8(map.owner(14)->cmd_line));
}

TEST(SocketOwners, SmallerBoundFromOptions) {
  FakeProc fake;
  fake.add(11, {"socket:[11]"}, "p", "abc\0\xE2\x82\xAC\0"s);  // "abc €"
  auto options = options_for(fake);
  options.max_cmd_line = 6;
  OwnerMap map(options);
  ASSERT_TRUE(map.scan().ok());
  EXPECT_EQ(map.owner(11)->cmd_line, "abc ");
  EXPECT_TRUE(map.owner(11)->cmd_line_truncated);
}

TEST(SocketOwners, VanishedProcessesAreCountedNotFatal) {
  FakeProc fake;
  fake.add(100, {"socket:[1]"}, "alive");
  // Exited before its fd directory was opened.
  fs::create_directory(fake.path("200"));
  // Exited after its fds were listed: the attribute files are gone.
  fake.add(300, {"socket:[3]"}, "gone");
  fs::remove(fake.path("300/stat"));
  // Exited between stat and cmdline.
  fake.add(400, {"socket:[4]"}, "gone2");
  fs::remove(fake.path("400/cmdline"));
  // The whole pid directory is a dangling entry.
  fs::create_symlink("/nonexistent", fake.path("500"));
  // Unreadable status content (no Uid: line): an error, the rest is kept.
  fake.add(600, {"socket:[6]"}, "odd");
  fake.write("600/status", "Name:\todd\n");

  OwnerMap map(options_for(fake));
  auto stats = map.scan();
  ASSERT_TRUE(stats.ok());
  EXPECT_EQ(stats->pids_scanned, 6U);
  EXPECT_EQ(stats->vanished, 4U);  // 200, 300, 400, 500
  EXPECT_EQ(stats->pid_errors, 1U);
  EXPECT_EQ(stats->permission_errors, 0U);
  EXPECT_EQ(names(map, 1), "alive/100");
  EXPECT_EQ(map.owner(3), nullptr);
  EXPECT_EQ(map.owner(4), nullptr);
  ASSERT_NE(map.owner(6), nullptr);
  EXPECT_EQ(map.owner(6)->uid, kUnknownUid);
  EXPECT_EQ(map.owner(6)->user, "");
}

TEST(SocketOwners, FdEntryThatIsNotALinkIsCountedNotFatal) {
  FakeProc fake;
  fake.add(100, {"socket:[1]"}, "p");
  // A regular file where a link should be: readlinkat fails with EINVAL.
  fake.write("100/fd/9", "");
  OwnerMap map(options_for(fake));
  auto stats = map.scan();
  ASSERT_TRUE(stats.ok());
  EXPECT_EQ(names(map, 1), "p/100");
  EXPECT_EQ(stats->pid_errors, 1U);
}

// EACCES on another user's fd directory. Root bypasses DAC, so when run as root the scan
// runs in a child that has dropped to nobody; the child reports its counts through a pipe.
TEST(SocketOwners, UnreadableFdDirectoryIsCountedNotFatal) {
  FakeProc fake;
  fake.add(100, {"socket:[1]"}, "mine");
  fake.add(200, {"socket:[2]"}, "theirs");
  fs::permissions(fake.path("200/fd"), fs::perms::none);
  for (const char* dir : {"100", "100/fd"}) {
    fs::permissions(fake.path(dir), fs::perms::all);
  }

  auto run = [&fake]() {
    OwnerMap map(options_for(fake));
    auto stats = map.scan();
    if (!stats.ok()) {
      return "error"s;
    }
    return names(map, 1) + " " + names(map, 2) + " " + std::to_string(stats->permission_errors) +
           " " + std::to_string(stats->vanished + stats->pid_errors);
  };
  std::string result;
  if (::geteuid() != 0) {
    result = run();
  } else {
    int fds[2];
    ASSERT_EQ(::pipe(fds), 0);
    const pid_t child = ::fork();
    ASSERT_GE(child, 0);
    if (child == 0) {
      ::close(fds[0]);
      if (::setresgid(65534, 65534, 65534) != 0 || ::setresuid(65534, 65534, 65534) != 0) {
        ::_exit(2);
      }
      const std::string r = run();
      const bool ok = ::write(fds[1], r.data(), r.size()) == static_cast<ssize_t>(r.size());
      ::_exit(ok ? 0 : 3);
    }
    ::close(fds[1]);
    char buf[256];
    ssize_t n = 0;
    while ((n = ::read(fds[0], buf, sizeof buf)) > 0) {
      result.append(buf, static_cast<std::size_t>(n));
    }
    ::close(fds[0]);
    int status = 0;
    ASSERT_EQ(::waitpid(child, &status, 0), child);
    ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
  }
  EXPECT_EQ(result, "mine/100 - 1 0");
}

TEST(SocketOwners, UserNamesAreCachedPerUid) {
  FakeProc fake;
  fake.add(1, {"socket:[1]"}, "a", "a\0"s, 1000);
  fake.add(2, {"socket:[2]"}, "b", "b\0"s, 1000);
  fake.add(3, {"socket:[3]"}, "c", "c\0"s, 0);
  fake.add(4, {"socket:[4]"}, "d", "d\0"s, 4000000);
  std::map<std::uint32_t, int> calls;
  auto options = options_for(fake);
  options.user_name = [&calls](std::uint32_t uid) {
    ++calls[uid];
    return uid == 1000 ? "alice"s : ""s;
  };
  OwnerMap map(options);
  ASSERT_TRUE(map.scan().ok());
  ASSERT_TRUE(map.scan().ok());
  EXPECT_EQ(map.owner(1)->user, "alice");
  EXPECT_EQ(map.owner(2)->user, "alice");
  EXPECT_EQ(map.owner(4)->user, "");
  EXPECT_EQ(map.owner(4)->uid, 4000000U);
  EXPECT_EQ(calls, (std::map<std::uint32_t, int>{{0, 1}, {1000, 1}, {4000000, 1}}));
}

TEST(SocketOwners, DefaultUserLookupUsesThePasswdDatabase) {
  FakeProc fake;
  fake.add(1, {"socket:[1]"}, "init", "/sbin/init\0"s, 0);
  OwnerMap map(fake.root());
  ASSERT_TRUE(map.scan().ok());
  EXPECT_EQ(map.owner(1)->user, "root");
}

TEST(SocketOwners, MissingBtimeLeavesCreatedTimeUnknown) {
  FakeProc fake;
  fake.write("stat", "cpu 1 2 3\n");
  fake.add(1, {"socket:[1]"}, "p");
  OwnerMap map(options_for(fake));
  auto stats = map.scan();
  ASSERT_TRUE(stats.ok());
  EXPECT_EQ(map.owner(1)->created_time_ms, 0);
  EXPECT_EQ(stats->pid_errors, 0U);
}

TEST(SocketOwners, RefreshWalksOnlyForUnknownInodes) {
  FakeProc fake;
  fake.add(100, {"socket:[1]"}, "server");
  fake.add(200, {"socket:[2]"}, "other");
  OwnerMap map(options_for(fake));
  ASSERT_TRUE(map.scan().ok());

  // Everything wanted is known (0 is the kernel's "no inode"): nothing to do.
  auto r = map.refresh({1, 2, 0});
  ASSERT_TRUE(r.ok());
  EXPECT_FALSE(r->walked);
  EXPECT_EQ(r->pids_scanned, 0U);

  // The server accepts a connection and a new process appears.
  fs::create_symlink("socket:[3]", fake.path("100/fd/7"));
  fake.add(300, {"socket:[4]"}, "client");
  // The server's attributes change on disk; the cache keeps the ones read first.
  fake.write("100/cmdline", "renamed\0"s);
  r = map.refresh({1, 2, 3, 4});
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE(r->walked);
  EXPECT_EQ(names(map, 3), "server/100");
  EXPECT_EQ(names(map, 4), "client/300");
  EXPECT_EQ(map.owner(3)->cmd_line, "proc");
  EXPECT_EQ(r->attributes_read, 1U);  // only the new process
  EXPECT_EQ(names(map, 1), "server/100");
  EXPECT_EQ(names(map, 2), "other/200");

  // An inode nobody holds: one walk, then remembered as missed.
  r = map.refresh({99});
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE(r->walked);
  EXPECT_EQ(r->pids_scanned, 3U);
  EXPECT_EQ(map.owner(99), nullptr);
  r = map.refresh({99});
  ASSERT_TRUE(r.ok());
  EXPECT_FALSE(r->walked);

  // retain() forgets the miss (not live) and closed sockets, and their processes.
  map.retain({1, 3});
  EXPECT_EQ(map.size(), 2U);
  EXPECT_EQ(map.process_count(), 1U);
  EXPECT_EQ(map.owner(2), nullptr);
  r = map.refresh({1, 3});
  EXPECT_FALSE(r->walked);

  // A full scan re-reads attributes.
  ASSERT_TRUE(map.scan().ok());
  EXPECT_EQ(map.owner(1)->cmd_line, "renamed");
  EXPECT_EQ(map.size(), 4U);
}

TEST(SocketOwners, RefreshRereadsARecycledPid) {
  FakeProc fake;
  fake.add(100, {"socket:[1]"}, "old", "old\0"s, 1000, 500);
  OwnerMap map(options_for(fake));
  ASSERT_TRUE(map.scan().ok());
  EXPECT_EQ(names(map, 1), "old/100");

  // pid 100 exits and is reused by a new process with a new socket.
  fs::remove_all(fake.path("100"));
  fake.add(100, {"socket:[2]"}, "new", "new\0"s, 1000, 900);
  auto r = map.refresh({2});
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->attributes_read, 1U);
  EXPECT_EQ(r->attributes_reused, 0U);
  EXPECT_EQ(names(map, 2), "new/100");
  EXPECT_EQ(map.owner(1), nullptr);  // the old process's socket is not pinned on the new one
}

TEST(SocketOwners, RefreshStopsOnceEverythingWantedIsFound) {
  FakeProc fake;
  for (int pid = 1; pid <= 50; ++pid) {
    fake.add(pid, {"socket:[" + std::to_string(1000 + pid) + "]"});
  }
  OwnerMap map(options_for(fake));
  auto r = map.refresh({1001});
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(names(map, 1001), "proc/1");
  EXPECT_LE(r->pids_scanned, 50U);
  EXPECT_EQ(r->sockets_found, map.size());
}

TEST(SanitizeText, Rules) {
  bool cut = true;
  EXPECT_EQ(sanitize_text("plain", 10, &cut), "plain");
  EXPECT_FALSE(cut);
  EXPECT_EQ(sanitize_text("a\0b\tc\nd\re"s, 10, &cut), "a b c d e");
  const std::string r = "\xEF\xBF\xBD";
  EXPECT_EQ(sanitize_text("\x01\x1f\x7f", 10, &cut), r + r + r);
  EXPECT_EQ(sanitize_text("\xC2\x9F\xC2\xA0", 10, &cut), r + "\xC2\xA0");  // C1, then NBSP
  EXPECT_EQ(sanitize_text("\xF4\x90\x80\x80", 20, &cut), r + r + r + r);   // > U+10FFFF
  EXPECT_EQ(sanitize_text("\xF0\x9F\x98\x80", 4, &cut), "\xF0\x9F\x98\x80");
  EXPECT_FALSE(cut);
  EXPECT_EQ(sanitize_text("\xF0\x9F\x98\x80", 3, &cut), "");
  EXPECT_TRUE(cut);
  EXPECT_EQ(sanitize_text("ab\xE2\x82", 10, &cut), "ab" + r + r);
  EXPECT_EQ(sanitize_text("abc", 0, &cut), "");
  EXPECT_TRUE(cut);
  EXPECT_EQ(sanitize_text("", 0, nullptr), "");
}

// actor.user.type_id by login.defs(5): 1 User within UID_MIN..UID_MAX, 3 System outside it
// (nobody, 65534, above UID_MAX), 2 Admin for root; 1000..60000 when the file says nothing.
TEST(UserDirectory, RegularUsersAreTheLoginDefsRange) {
  const fs::path root = fs::path(::testing::TempDir()) / "login-defs-root";
  fs::create_directories(root / "etc");
  std::ofstream(root / "etc/login.defs") << "# UID_MAX 5\nUID_MINX 1\n  UID_MIN\t 2000\n"
                                            "UID_MAX   3000\nSYS_UID_MAX 999\n";
  const UserIdRange range = read_user_id_range(root.string());
  EXPECT_EQ(range.first, 2000U);
  EXPECT_EQ(range.last, 3000U);
  UserDirectory users(root.string(), [](std::uint32_t) { return std::string("u"); });
  EXPECT_EQ(users.lookup(0).type_id, 2);
  EXPECT_EQ(users.lookup(1500).type_id, 3);
  EXPECT_EQ(users.lookup(2000).type_id, 1);
  EXPECT_EQ(users.lookup(3000).type_id, 1);
  EXPECT_EQ(users.lookup(3001).type_id, 3);
  EXPECT_EQ(users.lookup(65534).type_id, 3) << "nobody";

  const fs::path bare = fs::path(::testing::TempDir()) / "no-login-defs-root";
  fs::create_directories(bare);
  const UserIdRange defaults = read_user_id_range(bare.string());
  EXPECT_EQ(defaults.first, 1000U);
  EXPECT_EQ(defaults.last, 60000U);
  UserDirectory plain(bare.string(), [](std::uint32_t) { return std::string(); });
  EXPECT_EQ(plain.lookup(1000).type_id, 1);
  EXPECT_EQ(plain.lookup(65534).type_id, 3);
}

}  // namespace
}  // namespace sockstate::proc
