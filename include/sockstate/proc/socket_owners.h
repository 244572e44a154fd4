#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "sockstate/common/error.h"
#include "sockstate/common/fd.h"
#include "sockstate/proc/cgroup.h"

namespace sockstate::proc {

// Command lines are cut to this many bytes (after sanitizing), on a UTF-8 boundary.
inline constexpr std::size_t kMaxCmdLineBytes = 1024;
// ProcessInfo::uid when /proc/<pid>/status could not be read ((uid_t)-1 is never a uid).
inline constexpr std::uint32_t kUnknownUid = 0xffffffffU;

// The process that owns a socket, as OCSF `actor.process` wants it.
struct ProcessInfo {
  std::int32_t pid = 0;
  std::string name;      // /proc/<pid>/comm, sanitized like cmd_line ("" when unreadable)
  std::string cmd_line;  // /proc/<pid>/cmdline, sanitized (see sanitize_text()), bounded
  bool cmd_line_truncated = false;
  std::int64_t created_time_ms = 0;  // start time, ms since the epoch; 0 when unknown
  std::uint32_t uid = kUnknownUid;   // real uid (status "Uid:" first field)
  std::string user;                  // the uid's passwd name; "" when it has none
  std::uint64_t start_ticks = 0;     // stat's starttime: with the pid, unique per boot
  std::string exe;          // /proc/<pid>/exe, sanitized; "" when unreadable (needs ptrace access)
  std::int32_t ppid = 0;    // stat's ppid; 0 when none or unknown
  std::string parent_name;  // /proc/<ppid>/comm, sanitized; "" when unreadable
  std::string cgroup;       // cgroup v2 path ("0::" line of /proc/<pid>/cgroup)
  std::optional<Container> container;  // container_from_cgroup(cgroup)
};

// What one walk over /proc did. Per-pid failures are counted here, never fatal.
struct ScanStats {
  std::uint64_t pids_scanned = 0;       // /proc/<pid> directories visited
  std::uint64_t pids_with_sockets = 0;  // of those, pids holding at least one socket
  std::uint64_t fds_read = 0;           // fd links read (readlinkat calls that succeeded)
  std::uint64_t sockets_found = 0;      // distinct socket inodes seen in this walk
  std::uint64_t shared_sockets = 0;     // of those, inodes held by more than one process
  std::uint64_t vanished = 0;           // pids that exited mid-walk (ENOENT/ESRCH)
  std::uint64_t permission_errors = 0;  // pids whose fds we may not read (EACCES/EPERM)
  std::uint64_t pid_errors = 0;         // pids with any other failure (I/O, bad stat line)
  std::uint64_t attributes_read = 0;    // processes whose comm/cmdline/status/stat were read
  std::uint64_t attributes_reused = 0;  // processes taken from the cache (refresh() only)
  bool walked = false;                  // false when refresh() had nothing to look for
  bool complete = true;                 // false when listing the /proc root itself failed part-way
};

struct OwnerMapOptions {
  std::string proc_root = "/proc";
  std::size_t max_cmd_line = kMaxCmdLineBytes;
  long clock_ticks = 0;  // USER_HZ for stat's starttime; 0: sysconf(_SC_CLK_TCK)
  // uid -> user name; empty: getpwuid_r. Called at most once per uid per OwnerMap.
  std::function<std::string(std::uint32_t)> user_name;
};

// A socket inode -> owning process map, built from /proc/<pid>/fd.
//
// A walk lists /proc/[0-9]* (thread-group leaders: threads share their leader's fd table),
// readlinkat()s every /proc/<pid>/fd/<n>, keeps the `socket:[N]` ones, and for each pid
// holding a socket reads comm, cmdline, status and stat once, through the same
// /proc/<pid> directory fd (so a recycled pid cannot mix two processes' data).
//
// Sharing: when several processes hold one socket (inherited over fork, passed with
// SCM_RIGHTS), the owner is the lowest pid (usually the parent), whatever the directory
// order; ScanStats::shared_sockets counts such inodes.
//
// A process that exits between the listing of its fds and the reading of its attributes
// is counted as vanished and its sockets are left out (they are closed, or held by another
// process that the walk attributes them to).
//
// Not thread-safe. Pointers returned by owner() stay valid until the next non-const call.
class OwnerMap {
 public:
  explicit OwnerMap(std::string proc_root = "/proc");
  explicit OwnerMap(OwnerMapOptions options);

  // A full walk: forgets everything (attributes included, so they are fresh) and rebuilds
  // the map. Fails only when the proc root cannot be opened.
  Result<ScanStats> scan();

  // Incremental: looks for the inodes of `wanted_inodes` that are neither known nor
  // already missed by an earlier refresh() (inode 0, the kernel's "no inode", is ignored).
  // When there are none it returns at once (walked == false). Otherwise it walks /proc
  // again, adding what it finds to the map, and stops as soon as every such inode is found.
  // Every pid's fds are listed again (an accept()ing server's new sockets belong to a pid
  // already known), but a pid's attributes are reused while its start time is unchanged
  // (a recycled pid is read afresh and its old inodes dropped). Inodes still not found are
  // remembered as missed (kernel-owned, or in a process we may not read) and do not cause
  // another walk until scan() or retain() forgets them.
  Result<ScanStats> refresh(const std::vector<std::uint32_t>& wanted_inodes);

  // A full walk from (pid, socket inode) pairs another source listed (the kernel's
  // task_file iterator): the same map as scan() builds, with each process's attributes read
  // once, and no readlink of its fds.
  struct Holder {
    std::int32_t pid = 0;
    std::uint32_t inode = 0;
  };
  Result<ScanStats> scan_holders(std::span<const Holder> holders);

  // One process's attributes, read now (or the cached ones while its start time is
  // unchanged), whatever sockets it holds; nullptr when it is gone or cannot be read.
  // For owners known by other means (the kernel's events): the pointer stays valid until
  // the next non-const call.
  const ProcessInfo* process(std::int32_t pid);

  // The owner of a socket inode, or nullptr when unknown.
  [[nodiscard]] const ProcessInfo* owner(std::uint32_t inode) const;
  [[nodiscard]] const ProcessInfo* lookup(std::uint32_t inode) const { return owner(inode); }
  // True when refresh() looked for `inode` and did not find it (it will not look again).
  [[nodiscard]] bool missed(std::uint32_t inode) const { return missed_.count(inode) != 0; }

  // Forgets inodes (known or missed) that are not in `live_inodes` (sorted), and processes
  // that no longer own a known inode. For a daemon: call with the current socket table now
  // and then. A sorted vector: 4 bytes an inode (a set of 100,000 took 4 MB each poll).
  void retain(const std::vector<std::uint32_t>& live_inodes);

  [[nodiscard]] std::size_t size() const { return inodes_.size(); }
  [[nodiscard]] std::size_t missed_count() const { return missed_.size(); }
  [[nodiscard]] std::size_t process_count() const { return processes_.size(); }

 private:
  struct Process {
    ProcessInfo info;
    std::uint64_t start_ticks = 0;
  };
  struct Owner {
    std::int32_t pid = 0;
    std::int32_t last_pid = 0;  // the pid that last reported it (dup()s within one pid)
    bool shared = false;
  };

  class Targets;  // the inodes a refresh() looks for
  void forget_all(std::size_t expected);
  Result<Fd> open_root();
  static Fd open_pid(int root_fd, std::int32_t pid);
  Result<ScanStats> walk(bool reuse_attributes, Targets* targets);
  int read_pid_links(int fd_dir, ScanStats& stats);
  void scan_pid(int root_fd, const char* name, std::int32_t pid, bool reuse_attributes,
                Targets* targets, ScanStats& stats);
  void add_pid_sockets(int root_fd, int pid_dir, std::int32_t pid, bool reuse_attributes,
                       Targets* targets, ScanStats& stats);
  // Returns the owning Process for `pid` (read or reused), or nullptr when it vanished.
  Process* attributes(int root_fd, int pid_fd, std::int32_t pid, bool reuse_attributes,
                      ScanStats& stats);
  // The cached Process for `pid` when it still holds; nullptr when it must be read (a
  // recycled pid's inodes are dropped then).
  Process* known_process(std::int32_t pid, bool have_start, std::uint64_t start_ticks,
                         bool reuse_attributes, ScanStats& stats);
  // comm, cmdline, status and cgroup into `info`; false when the process vanished.
  // `failed` is set when one could not be read or parsed.
  bool read_files(int pid_fd, ProcessInfo& info, bool& failed);
  void read_lineage(int root_fd, int pid_fd, ProcessInfo& info);
  const std::string& user_name(std::uint32_t uid);
  void drop_inodes_of(std::int32_t pid);

  OwnerMapOptions options_;
  long clock_ticks_ = 100;
  std::int64_t btime_s_ = -1;  // -1: not read yet; 0: unknown
  std::unordered_map<std::uint32_t, Owner> inodes_;
  std::unordered_map<std::int32_t, Process> processes_;
  std::unordered_set<std::uint32_t> missed_;
  std::unordered_map<std::uint32_t, std::string> users_;
  std::vector<std::uint32_t> pid_sockets_;  // scratch: one pid's socket inodes
  std::vector<std::uint32_t> fd_numbers_;   // scratch: one pid's fds
  std::vector<char> dents_root_;            // scratch: getdents64 buffers
  std::vector<char> dents_fd_;
  std::vector<char> read_buf_;  // scratch: cmdline/status/stat contents
};

// Makes bytes from /proc safe to print and to put in JSON, bounded to `max_bytes`:
// - NUL (cmdline's argument separator), \t, \n, \v, \f, \r become a space;
// - other C0 controls, DEL and the C1 controls (U+0080..U+009F) become U+FFFD;
// - each byte that does not start a well-formed UTF-8 sequence (stray continuation,
//   overlong form, surrogate, above U+10FFFF, sequence cut short) becomes U+FFFD;
// - the output stops before the first character that would not fit in `max_bytes`, so
//   it ends on a character boundary; `*truncated` is set when input was left over.
std::string sanitize_text(std::string_view raw, std::size_t max_bytes, bool* truncated);

}  // namespace sockstate::proc
