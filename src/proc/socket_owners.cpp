#include "sockstate/proc/socket_owners.h"

#include <dirent.h>
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <charconv>
#include <cstddef>
#include <cstring>
#include <functional>
#include <span>
#include <system_error>
#include <thread>
#include <utility>

#include "proc_files.h"
#include "sockstate/common/fd.h"
#include "sockstate/common/utf8.h"
#include "sockstate/proc/cgroup.h"
#include "sockstate/proc/users.h"

namespace sockstate::proc {
namespace {

using detail::kCgroupBuffer;
using detail::parse_pid;
using detail::read_at;

// Big enough for a few hundred /proc entries per getdents64 call.
constexpr std::size_t kDentsBuffer = std::size_t{32} * 1024;
// A pid with more fds than this has their links read by two threads.
constexpr std::size_t kParallelFds = 4096;
// stat is < 1 KiB (52 numbers); status about 1.5 KiB; Uid: is on its 9th line.
constexpr std::size_t kStatBuffer = 2048;
constexpr std::size_t kStatusBuffer = 4096;
// comm is at most 64 bytes (kernel threads' long names) plus '\n'.
constexpr std::size_t kCommBuffer = 128;
constexpr std::size_t kMaxNameBytes = 64;
constexpr std::size_t kMaxExeBytes = 128;  // three copies in a record: path, name, observable

enum class Failure { kVanished, kPermission, kOther };

Failure classify(int err) {
  switch (err) {
    case ENOENT:
    case ESRCH:
      return Failure::kVanished;
    case EACCES:
    case EPERM:
      return Failure::kPermission;
    default:
      return Failure::kOther;
  }
}

void count(Failure f, ScanStats& stats) {
  switch (f) {
    case Failure::kVanished:
      ++stats.vanished;
      break;
    case Failure::kPermission:
      ++stats.permission_errors;
      break;
    case Failure::kOther:
      ++stats.pid_errors;
      break;
  }
}

// Iterates a directory fd with getdents64 into a caller-owned buffer (reused across
// directories, so a walk allocates nothing per pid).
class Dents {
 public:
  Dents(int fd, std::vector<char>& buf) : fd_(fd), buf_(buf) {
    if (buf_.size() < kDentsBuffer) {
      buf_.resize(kDentsBuffer);
    }
  }

  // The next entry's name, or nullptr at the end or on error (then error() is the errno).
  const char* next() {
    for (;;) {
      if (pos_ < len_) {
        dirent64 entry_header;
        // The buffer is a std::vector<char>: copy the fixed part rather than cast a
        // possibly misaligned pointer.
        std::memcpy(&entry_header, buf_.data() + pos_, offsetof(dirent64, d_name));
        const char* name = buf_.data() + pos_ + offsetof(dirent64, d_name);
        pos_ += entry_header.d_reclen;
        return name;
      }
      const ssize_t n = ::getdents64(fd_, buf_.data(), buf_.size());
      if (n <= 0) {
        error_ = n < 0 ? errno : 0;
        return nullptr;
      }
      len_ = static_cast<std::size_t>(n);
      pos_ = 0;
    }
  }
  [[nodiscard]] int error() const { return error_; }

 private:
  int fd_;
  std::vector<char>& buf_;
  std::size_t pos_ = 0;
  std::size_t len_ = 0;
  int error_ = 0;
};

// "socket:[12345]" -> 12345; 0 for every other link target.
std::uint32_t socket_inode(const char* link, std::size_t len) {
  constexpr std::string_view kPrefix = "socket:[";
  if (len < kPrefix.size() + 2 || std::string_view(link, kPrefix.size()) != kPrefix ||
      link[len - 1] != ']') {
    return 0;
  }
  std::uint32_t inode = 0;
  const char* first = link + kPrefix.size();
  const char* last = link + len - 1;
  auto [ptr, ec] = std::from_chars(first, last, inode);
  if (ec != std::errc() || ptr != last) {
    return 0;
  }
  return inode;
}

// Skips spaces, then parses one unsigned decimal field; advances p.
bool next_number(const char*& p, const char* end, std::uint64_t& out) {
  while (p < end && (*p == ' ' || *p == '\t')) {
    ++p;
  }
  auto [ptr, ec] = std::from_chars(p, end, out);
  if (ec != std::errc()) {
    return false;
  }
  p = ptr;
  return true;
}

// ppid (field 4) and starttime (field 22, clock ticks since boot) from /proc/<pid>/stat.
// comm (field 2) may hold spaces and parentheses, so fields are counted from the last ')'.
bool parse_stat(const std::vector<char>& stat, std::uint64_t& ticks, std::int32_t& ppid) {
  std::string_view s(stat.data(), stat.size());
  const std::size_t close = s.rfind(')');
  if (close == std::string_view::npos) {
    return false;
  }
  // After ") ": field 3 (state) is a letter, then numbers 4..52.
  const char* p = stat.data() + close + 1;
  const char* end = stat.data() + stat.size();
  while (p < end && *p == ' ') {
    ++p;
  }
  while (p < end && *p != ' ') {  // state
    ++p;
  }
  std::uint64_t value = 0;
  for (int field = 4; field <= 22; ++field) {
    // Some fields (e.g. tty_nr of odd ttys, nice) may be negative: skip a sign.
    while (p < end && *p == ' ') {
      ++p;
    }
    if (p < end && *p == '-') {
      ++p;
    }
    if (!next_number(p, end, value)) {
      return false;
    }
    if (field == 4 && value <= 0x7fffffffU) {
      ppid = static_cast<std::int32_t>(value);
    }
  }
  ticks = value;
  return true;
}

// The real uid: the first number of status's "Uid:" line.
bool parse_real_uid(const std::vector<char>& status, std::uint32_t& uid) {
  std::string_view s(status.data(), status.size());
  // Name: (first line) has '\n' escaped by the kernel, so "\nUid:" is the real line.
  const std::size_t at = s.find("\nUid:");
  if (at == std::string_view::npos) {
    return false;
  }
  const char* p = status.data() + at + 5;
  std::uint64_t value = 0;
  if (!next_number(p, status.data() + status.size(), value) || value > 0xffffffffU) {
    return false;
  }
  uid = static_cast<std::uint32_t>(value);
  return true;
}

// btime (boot time, seconds since the epoch) from <proc>/stat; 0 when absent.
std::int64_t read_btime(int root_fd) {
  std::vector<char> buf;
  if (read_at(root_fd, "stat", std::size_t{64} * 1024, buf) != 0) {
    return 0;
  }
  std::string_view s(buf.data(), buf.size());
  std::size_t at = s.rfind("\nbtime ");
  if (at == std::string_view::npos) {
    if (s.substr(0, 6) != "btime ") {
      return 0;
    }
    at = 0;
  } else {
    ++at;
  }
  const char* p = buf.data() + at + 6;
  std::uint64_t value = 0;
  if (!next_number(p, buf.data() + buf.size(), value)) {
    return 0;
  }
  return static_cast<std::int64_t>(value);
}

// Appends the UTF-8 encoding of U+FFFD.
constexpr std::string_view kReplacement = "\xEF\xBF\xBD";

}  // namespace

std::string sanitize_text(std::string_view raw, std::size_t max_bytes, bool* truncated) {
  std::string out;
  out.reserve(raw.size() < max_bytes ? raw.size() : max_bytes);
  bool cut = false;
  std::size_t i = 0;
  while (i < raw.size()) {
    const std::size_t n = utf8_length(raw, i);
    const bool c1_control = n == 2 && static_cast<unsigned char>(raw[i]) == 0xC2 &&
                            static_cast<unsigned char>(raw[i + 1]) < 0xA0;
    std::string_view piece;
    if (n == 0 || c1_control) {
      piece = kReplacement;  // malformed UTF-8, or a C1 control
    } else if (n == 1) {
      const auto b = static_cast<unsigned char>(raw[i]);
      if (b == 0 || (b >= '\t' && b <= '\r')) {
        piece = " ";
      } else if (b < 0x20 || b == 0x7F) {
        piece = kReplacement;
      } else {
        piece = raw.substr(i, 1);
      }
    } else {
      piece = raw.substr(i, n);
    }
    if (out.size() + piece.size() > max_bytes) {
      cut = true;
      break;
    }
    out.append(piece);
    i += n == 0 ? 1 : n;
  }
  if (truncated != nullptr) {
    *truncated = cut;
  }
  return out;
}

namespace {
OwnerMapOptions with_root(std::string proc_root) {
  OwnerMapOptions options;
  options.proc_root = std::move(proc_root);
  return options;
}
}  // namespace

OwnerMap::OwnerMap(std::string proc_root) : OwnerMap(with_root(std::move(proc_root))) {}

OwnerMap::OwnerMap(OwnerMapOptions options) : options_(std::move(options)) {
  clock_ticks_ = options_.clock_ticks > 0 ? options_.clock_ticks : ::sysconf(_SC_CLK_TCK);
  if (clock_ticks_ <= 0) {
    clock_ticks_ = 100;
  }
}

Result<ScanStats> OwnerMap::scan() {
  const std::size_t hint = inodes_.size();
  // Sized to the work: the last walk's count, or a guess for a first walk.
  forget_all(hint > 0 ? hint + hint / 4 : 4096);
  return walk(false, nullptr);
}

// The inodes a refresh() looks for, sorted, and which the walk has found: 5 bytes an
// inode (a baseline of 100,000 sockets looks for them all at once).
class OwnerMap::Targets {
 public:
  explicit Targets(std::vector<std::uint32_t> inodes)
      : inodes_(std::move(inodes)), found_(inodes_.size(), false), left_(inodes_.size()) {}
  // The walk found `inode`, which may or may not be one of them.
  void erase(std::uint32_t inode) {
    const auto it = std::lower_bound(inodes_.begin(), inodes_.end(), inode);
    if (it != inodes_.end() && *it == inode) {
      const auto i = static_cast<std::size_t>(it - inodes_.begin());
      if (!found_[i]) {
        found_[i] = true;
        --left_;
      }
    }
  }
  [[nodiscard]] bool empty() const { return left_ == 0; }
  [[nodiscard]] std::size_t size() const { return left_; }
  template <typename F>
  void for_each_left(F f) const {
    for (std::size_t i = 0; i < inodes_.size(); ++i) {
      if (!found_[i]) {
        f(inodes_[i]);
      }
    }
  }

 private:
  std::vector<std::uint32_t> inodes_;
  std::vector<bool> found_;
  std::size_t left_;
};

Result<ScanStats> OwnerMap::refresh(const std::vector<std::uint32_t>& wanted_inodes) {
  std::vector<std::uint32_t> wanted;
  for (const std::uint32_t inode : wanted_inodes) {
    if (inode != 0 && inodes_.find(inode) == inodes_.end() &&
        missed_.find(inode) == missed_.end()) {
      wanted.push_back(inode);
    }
  }
  std::sort(wanted.begin(), wanted.end());
  wanted.erase(std::unique(wanted.begin(), wanted.end()), wanted.end());
  if (wanted.empty()) {
    return ScanStats{};
  }
  Targets targets(std::move(wanted));
  inodes_.reserve(inodes_.size() + targets.size());
  auto stats = walk(true, &targets);
  // What is left was not found: do not walk for it again.
  targets.for_each_left([this](std::uint32_t inode) { missed_.insert(inode); });
  return stats;
}

const ProcessInfo* OwnerMap::owner(std::uint32_t inode) const {
  const auto it = inodes_.find(inode);
  if (it == inodes_.end()) {
    return nullptr;
  }
  const auto p = processes_.find(it->second.pid);
  return p == processes_.end() ? nullptr : &p->second.info;
}

void OwnerMap::retain(const std::vector<std::uint32_t>& live_inodes) {
  const auto live = [&live_inodes](std::uint32_t inode) {
    return std::binary_search(live_inodes.begin(), live_inodes.end(), inode);
  };
  std::erase_if(inodes_, [&](const auto& kv) { return !live(kv.first); });
  std::erase_if(missed_, [&](std::uint32_t inode) { return !live(inode); });
  std::unordered_set<std::int32_t> owners;
  for (const auto& [inode, owner] : inodes_) {
    owners.insert(owner.pid);
  }
  std::erase_if(processes_, [&](const auto& kv) { return owners.count(kv.first) == 0; });
}

void OwnerMap::drop_inodes_of(std::int32_t pid) {
  std::erase_if(inodes_, [pid](const auto& kv) { return kv.second.pid == pid; });
}

namespace {

// What reading the links of some of a pid's fds found.
struct FdLinks {
  std::vector<std::uint32_t> inodes;  // socket inodes
  std::uint64_t read = 0;             // links read
  int error = 0;                      // the first failure (ENOENT, a closed fd, is none)
};

// readlinkat() of each fd in `fds` under the pid's fd directory.
void read_links(int fd_dir, std::span<const std::uint32_t> fds, FdLinks& out) {
  // "socket:[4294967295]" is 19 bytes; a longer target is not a socket.
  char link[32];
  char name[16];
  for (const std::uint32_t fd : fds) {
    const auto [end, ec] = std::to_chars(name, name + sizeof name - 1, fd);
    *end = '\0';
    const ssize_t n = ::readlinkat(fd_dir, name, link, sizeof link);
    if (n < 0) {
      // ENOENT: the fd was closed since getdents; not a failure of the pid.
      if (errno == ENOENT) {
        continue;
      }
      if (out.error == 0) {
        out.error = errno;
      }
      // The ptrace access check fails alike for every fd of a pid: stop at the first.
      if (classify(errno) != Failure::kOther) {
        break;
      }
      continue;
    }
    ++out.read;
    const std::uint32_t inode = socket_inode(link, static_cast<std::size_t>(n));
    if (inode != 0) {
      out.inodes.push_back(inode);
    }
  }
}

}  // namespace

// Before a full walk: nothing known, room for `expected` inodes.
void OwnerMap::forget_all(std::size_t expected) {
  inodes_.clear();
  processes_.clear();
  missed_.clear();
  inodes_.reserve(expected);
}

Result<ScanStats> OwnerMap::scan_holders(std::span<const Holder> holders) {
  forget_all(holders.size() + holders.size() / 4);
  ScanStats stats;
  stats.walked = true;
  auto opened = open_root();
  if (!opened) {
    return opened.error();
  }
  const Fd root = std::move(*opened);
  std::vector<Holder> by_pid(holders.begin(), holders.end());
  std::stable_sort(by_pid.begin(), by_pid.end(),
                   [](const Holder& a, const Holder& b) { return a.pid < b.pid; });
  for (std::size_t at = 0; at < by_pid.size();) {
    const std::int32_t pid = by_pid[at].pid;
    pid_sockets_.clear();
    for (; at < by_pid.size() && by_pid[at].pid == pid; ++at) {
      pid_sockets_.push_back(by_pid[at].inode);
    }
    ++stats.pids_scanned;
    stats.fds_read += pid_sockets_.size();
    const Fd pid_dir = open_pid(root.get(), pid);
    if (!pid_dir.valid()) {
      count(classify(errno), stats);
      continue;
    }
    add_pid_sockets(root.get(), pid_dir.get(), pid, false, nullptr, stats);
  }
  return stats;
}

const ProcessInfo* OwnerMap::process(std::int32_t pid) {
  auto root = open_root();
  if (!root || pid <= 0) {
    return nullptr;
  }
  const Fd pid_dir = open_pid(root->get(), pid);
  if (!pid_dir.valid()) {
    return nullptr;
  }
  ScanStats stats;
  const Process* p = attributes(root->get(), pid_dir.get(), pid, true, stats);
  return p != nullptr ? &p->info : nullptr;
}

// The proc root (and, the first time, the boot time its processes' start times count from).
Result<Fd> OwnerMap::open_root() {
  Fd root(::open(options_.proc_root.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!root.valid()) {
    return errno_error("open " + options_.proc_root);
  }
  if (btime_s_ < 0) {
    btime_s_ = read_btime(root.get());
  }
  return root;
}

Fd OwnerMap::open_pid(int root_fd, std::int32_t pid) {
  std::array<char, 16> name{};
  std::to_chars(name.data(), name.data() + name.size() - 1, pid);
  return Fd(::openat(root_fd, name.data(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
}

Result<ScanStats> OwnerMap::walk(bool reuse_attributes, Targets* targets) {
  ScanStats stats;
  stats.walked = true;
  auto opened = open_root();
  if (!opened) {
    return opened.error();
  }
  const Fd root = std::move(*opened);
  for (auto& [inode, owner] : inodes_) {
    owner.last_pid = 0;
    owner.shared = false;
  }
  Dents dents(root.get(), dents_root_);
  while (const char* name = dents.next()) {
    const std::int32_t pid = parse_pid(name);
    if (pid < 0) {
      continue;
    }
    ++stats.pids_scanned;
    scan_pid(root.get(), name, pid, reuse_attributes, targets, stats);
    if (targets != nullptr && targets->empty()) {
      break;
    }
  }
  if (dents.error() != 0) {
    stats.complete = false;
  }
  return stats;
}

// The socket inodes among a pid's fds, into pid_sockets_ (and the links read into
// `stats`); returns the first failure, 0 for none. The fd numbers are listed first, then
// their links read: a process with many (a server; the benchmark's holders have 16,000)
// has them read by two threads, half each.
int OwnerMap::read_pid_links(int fd_dir, ScanStats& stats) {
  fd_numbers_.clear();
  Dents dents(fd_dir, dents_fd_);
  while (const char* fd_name = dents.next()) {
    std::uint32_t fd = 0;
    const char* end = fd_name + std::strlen(fd_name);
    if (const auto [p, ec] = std::from_chars(fd_name, end, fd); ec == std::errc() && p == end) {
      fd_numbers_.push_back(fd);
    }
  }
  const std::span<const std::uint32_t> all(fd_numbers_);
  FdLinks mine;
  mine.inodes.swap(pid_sockets_);  // its capacity, reused from pid to pid
  mine.inodes.clear();
  FdLinks theirs;
  std::size_t half = all.size() > kParallelFds ? all.size() / 2 : all.size();
  std::thread helper;
  if (half < all.size()) {
    // Reserved here: a helper that never allocates adds no malloc arena (RSS) of its own.
    theirs.inodes.reserve(all.size() - half);
    try {
      helper = std::thread(read_links, fd_dir, all.subspan(half), std::ref(theirs));
    } catch (const std::system_error&) {
      half = all.size();  // one thread then
    }
  }
  read_links(fd_dir, all.first(half), mine);
  if (helper.joinable()) {
    helper.join();
  }
  pid_sockets_.swap(mine.inodes);
  pid_sockets_.insert(pid_sockets_.end(), theirs.inodes.begin(), theirs.inodes.end());
  stats.fds_read += mine.read + theirs.read;
  const int link_error = mine.error != 0 ? mine.error : theirs.error;
  // A process exiting while its fd table is listed ends the listing early (ESRCH/ENOENT);
  // what was listed is still worth keeping if its attributes can be read.
  return link_error != 0 ? link_error : dents.error();
}

void OwnerMap::scan_pid(int root_fd, const char* name, std::int32_t pid, bool reuse_attributes,
                        Targets* targets, ScanStats& stats) {
  Fd pid_dir(::openat(root_fd, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!pid_dir.valid()) {
    count(classify(errno), stats);
    return;
  }
  Fd fd_dir(::openat(pid_dir.get(), "fd", O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!fd_dir.valid()) {
    count(classify(errno), stats);
    return;
  }
  const int link_error = read_pid_links(fd_dir.get(), stats);
  if (link_error != 0) {
    const Failure f = classify(link_error);
    count(f, stats);
    if (f == Failure::kVanished) {
      return;  // gone: its sockets are closed, or another holder reports them
    }
  }
  add_pid_sockets(root_fd, pid_dir.get(), pid, reuse_attributes, targets, stats);
}

// pid_sockets_ (the socket inodes `pid` holds) into the map, with the process's attributes.
void OwnerMap::add_pid_sockets(int root_fd, int pid_dir, std::int32_t pid, bool reuse_attributes,
                               Targets* targets, ScanStats& stats) {
  if (pid_sockets_.empty()) {
    return;
  }
  ++stats.pids_with_sockets;
  Process* process = attributes(root_fd, pid_dir, pid, reuse_attributes, stats);
  if (process == nullptr) {
    return;
  }
  for (const std::uint32_t inode : pid_sockets_) {
    auto [it, inserted] = inodes_.try_emplace(inode, Owner{pid, pid, false});
    if (inserted) {
      ++stats.sockets_found;
      if (targets != nullptr) {
        targets->erase(inode);
      }
      continue;
    }
    Owner& owner = it->second;
    if (owner.last_pid == 0) {
      // Known from an earlier walk (refresh()): seen for the first time in this one.
      ++stats.sockets_found;
    } else if (owner.last_pid != pid && !owner.shared) {
      owner.shared = true;
      ++stats.shared_sockets;
    }
    owner.last_pid = pid;
    if (pid < owner.pid) {
      owner.pid = pid;
    }
  }
}

namespace {

// What reading one of a pid's files came to: the process may have exited meanwhile, which
// ends the pid's reading, where any other failure only marks its attributes incomplete.
enum class Field { kRead, kVanished, kFailed };

Field field_outcome(int err) {
  if (err == 0) {
    return Field::kRead;
  }
  return classify(err) == Failure::kVanished ? Field::kVanished : Field::kFailed;
}

// A comm file's contents: the name without the kernel's '\n'.
std::string comm_name(const std::vector<char>& buf) {
  std::string_view comm(buf.data(), buf.size());
  if (!comm.empty() && comm.back() == '\n') {
    comm.remove_suffix(1);
  }
  return sanitize_text(comm, kMaxNameBytes, nullptr);
}

Field read_comm(int pid_fd, std::vector<char>& buf, std::string& name) {
  const int err = read_at(pid_fd, "comm", kCommBuffer, buf);
  if (err == 0) {
    name = comm_name(buf);
  }
  return field_outcome(err);
}

Field read_cmd_line(int pid_fd, std::size_t max_cmd_line, std::vector<char>& buf,
                    ProcessInfo& info) {
  // Four bytes over the bound: enough to finish the last character that could fit, and a
  // full buffer then always means more than fits (sanitizing never shrinks the text).
  const int err = read_at(pid_fd, "cmdline", max_cmd_line + 4, buf);
  if (err == 0) {
    std::string_view raw(buf.data(), buf.size());
    if (buf.size() < max_cmd_line + 4) {
      while (!raw.empty() && raw.back() == '\0') {
        raw.remove_suffix(1);
      }
    }
    info.cmd_line = sanitize_text(raw, max_cmd_line, &info.cmd_line_truncated);
  }
  return field_outcome(err);
}

Field read_real_uid(int pid_fd, std::vector<char>& buf, std::uint32_t& uid) {
  const int err = read_at(pid_fd, "status", kStatusBuffer, buf);
  if (err != 0) {
    return field_outcome(err);
  }
  return parse_real_uid(buf, uid) ? Field::kRead : Field::kFailed;
}

}  // namespace

OwnerMap::Process* OwnerMap::attributes(int root_fd, int pid_fd, std::int32_t pid,
                                        bool reuse_attributes, ScanStats& stats) {
  // stat first: its start time tells a cached process from a recycled pid.
  const int err = read_at(pid_fd, "stat", kStatBuffer, read_buf_);
  if (err != 0) {
    count(classify(err), stats);
    return nullptr;
  }
  Process p;
  p.info.pid = pid;
  const bool have_start = parse_stat(read_buf_, p.start_ticks, p.info.ppid);
  if (Process* known = known_process(pid, have_start, p.start_ticks, reuse_attributes, stats)) {
    return known;
  }
  p.info.start_ticks = p.start_ticks;
  if (have_start && btime_s_ > 0) {
    const auto ticks = static_cast<std::int64_t>(p.start_ticks);
    p.info.created_time_ms = btime_s_ * 1000 + ticks / clock_ticks_ * 1000 +
                             (ticks % clock_ticks_) * 1000 / clock_ticks_;
  }
  bool failed = !have_start;
  if (!read_files(pid_fd, p.info, failed)) {
    ++stats.vanished;
    return nullptr;
  }
  read_lineage(root_fd, pid_fd, p.info);
  if (failed) {
    ++stats.pid_errors;
  }
  ++stats.attributes_read;
  auto [it, inserted] = processes_.insert_or_assign(pid, std::move(p));
  return &it->second;
}

OwnerMap::Process* OwnerMap::known_process(std::int32_t pid, bool have_start,
                                           std::uint64_t start_ticks, bool reuse_attributes,
                                           ScanStats& stats) {
  const auto cached = processes_.find(pid);
  if (cached == processes_.end()) {
    return nullptr;
  }
  if (reuse_attributes && have_start && cached->second.start_ticks == start_ticks) {
    ++stats.attributes_reused;
    return &cached->second;
  }
  if (!reuse_attributes) {
    return &cached->second;  // read earlier in this same walk
  }
  // A recycled pid: the old process's sockets are closed or belong to someone else.
  drop_inodes_of(pid);
  return nullptr;
}

bool OwnerMap::read_files(int pid_fd, ProcessInfo& info, bool& failed) {
  auto read = [&failed](Field f) {
    failed = failed || f == Field::kFailed;
    return f != Field::kVanished;
  };
  if (!read(read_comm(pid_fd, read_buf_, info.name)) ||
      !read(read_cmd_line(pid_fd, options_.max_cmd_line, read_buf_, info))) {
    return false;
  }
  const Field status = read_real_uid(pid_fd, read_buf_, info.uid);
  if (status == Field::kRead) {
    info.user = user_name(info.uid);
  }
  if (!read(status)) {
    return false;
  }
  // Optional: a kernel without cgroups, or a process gone meanwhile, leaves it empty.
  if (read_at(pid_fd, "cgroup", kCgroupBuffer, read_buf_) == 0) {
    info.cgroup =
        sanitize_text(cgroup2_path_from_proc(std::string_view(read_buf_.data(), read_buf_.size())),
                      kMaxCgroupPathBytes, nullptr);
    info.container = container_from_cgroup(info.cgroup);
  }
  return true;
}

void OwnerMap::read_lineage(int root_fd, int pid_fd, ProcessInfo& info) {
  // Both optional: exe needs ptrace access to the process (CAP_SYS_PTRACE for another
  // user's), and the parent may be gone.
  std::array<char, 4096> link{};
  const ssize_t n = ::readlinkat(pid_fd, "exe", link.data(), link.size());
  if (n > 0 && static_cast<std::size_t>(n) < link.size()) {
    info.exe = sanitize_text(std::string_view(link.data(), static_cast<std::size_t>(n)),
                             kMaxExeBytes, nullptr);
  }
  if (info.ppid <= 0) {
    return;
  }
  std::array<char, 32> path{};
  auto [end, ec] = std::to_chars(path.data(), path.data() + path.size() - 8, info.ppid);
  std::memcpy(end, "/comm", 6);
  if (read_at(root_fd, path.data(), kCommBuffer, read_buf_) == 0) {
    info.parent_name = comm_name(read_buf_);
  }
}

const std::string& OwnerMap::user_name(std::uint32_t uid) {
  auto it = users_.find(uid);
  if (it == users_.end()) {
    it = users_.emplace(uid, options_.user_name ? options_.user_name(uid) : passwd_name(uid)).first;
  }
  return it->second;
}

}  // namespace sockstate::proc
