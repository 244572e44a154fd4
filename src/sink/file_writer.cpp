// The file sink: an append-only JSON-lines file, reopened on SIGHUP, optionally rotated by
// size.
#include <fcntl.h>
#include <grp.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "queued_sink.h"
#include "sink_keys.h"
#include "sockstate/common/output_file.h"
#include "sockstate/sink/registry.h"

namespace sockstate::sink::detail {

Result<gid_t> lookup_group(const std::string& name) {
  std::vector<char> buf(1024);
  for (;;) {
    group grp{};
    group* found = nullptr;
    const int rc = ::getgrnam_r(name.c_str(), &grp, buf.data(), buf.size(), &found);
    if (rc == ERANGE && buf.size() < (1U << 20)) {
      buf.resize(buf.size() * 2);
      continue;
    }
    if (rc != 0) {
      return Error{rc, "file_group \"" + name + "\": looking up the group"};
    }
    if (found == nullptr) {
      return Error{0, "file_group \"" + name + "\": no such group"};
    }
    return found->gr_gid;
  }
}

namespace {

Error rename_error(const std::string& from, const std::string& to) {
  std::string what = "rotate: rename ";
  what += from;
  what += " to ";
  what += to;
  return errno_error(std::move(what));
}

// Errors that say the file system is full, not that the descriptor is bad: keep the
// file open and write again at the next record.
bool space_error(int err) {
  return err == ENOSPC || err == EDQUOT || err == EFBIG;
}

class FileWriter final : public Writer {
 public:
  explicit FileWriter(const SinkConfig& config)
      : path_(config.path),
        mode_(static_cast<mode_t>(config.file_mode & 07777U)),
        group_(config.file_group),
        rotate_bytes_(config.rotate_bytes),
        rotate_keep_(config.rotate_keep),
        retry_(config.reconnect_min, config.reconnect_max) {}

  Result<void> open() override {
    if (!group_.empty()) {
      auto gid = lookup_group(group_);
      if (!gid) {
        return gid.error();
      }
      gid_ = *gid;
    }
    return open_file();
  }

  Delivery write(std::string_view record, SinkCore& core) override {
    if (!fd_.valid() && !retry_open(core)) {
      return Delivery::kDropped;
    }
    if (deleted()) {
      // Written on, the records would go into a file no one can read and be counted as
      // written: the path gets a new file (one fstat() a record; a write() is one too).
      fd_.reset();
      if (auto opened = open_file(); !opened) {
        fail_open(core, opened.error());
        return Delivery::kDropped;
      }
      core.count_reopen();
      core.notice(path_ + " was deleted: a new file was made there");
    }
    // Rotate before a write that would take the file past rotate_bytes, unless the file is
    // empty: a record bigger than rotate_bytes gets a file to itself.
    if (rotate_bytes_ > 0 && regular_ && size_ > 0 && size_ + record.size() > rotate_bytes_) {
      rotate(core);
      if (!fd_.valid()) {
        return Delivery::kDropped;
      }
    }
    return append(record, core);
  }

  // SIGHUP. logrotate has renamed the file (or not: reopening the same file is harmless).
  // Records written between its rename and this reopen went to the renamed file, which is
  // where a rename-based rotation expects them: nothing is lost.
  void reopen(SinkCore& core) override {
    fd_.reset();
    if (auto opened = open_file(); opened) {
      retry_.reset();
      core.count_reopen();
    } else {
      fail_open(core, opened.error());
    }
  }

  void close() override { fd_.reset(); }

 private:
  // O_APPEND: each write() lands at the end, atomically with respect to other appenders.
  // The mode is applied only to a file this sink creates (an existing file keeps what the
  // admin or logrotate's `create` gave it), and exactly: open()'s mode is masked by the
  // umask, fchmod()'s is not.
  Result<void> open_file() {
    auto out = open_output_file(path_, mode_, OutputMode::kAppend);
    if (!out) {
      return out.error();
    }
    if (out->created) {
      // A new file already has our group (or the directory's, setgid): chown only when
      // that is not the configured one. The packaged unit runs with Group=adm and a
      // system-call filter without chown, so there it is never called.
      struct stat st {};
      if (gid_ && (::fstat(out->fd.get(), &st) != 0 || st.st_gid != *gid_) &&
          ::fchown(out->fd.get(), static_cast<uid_t>(-1), *gid_) != 0) {
        return discard_created(errno_error("chown " + path_ + " to group " + group_));
      }
    }
    regular_ = true;
    size_ = static_cast<std::uint64_t>(out->size);
    fd_ = std::move(out->fd);
    return {};
  }

  // The file has no name any more (unlinked, not renamed: a rename keeps its link, and
  // logrotate's SIGHUP reopens the path).
  [[nodiscard]] bool deleted() const {
    struct stat st {};
    return regular_ && ::fstat(fd_.get(), &st) == 0 && S_ISREG(st.st_mode) && st.st_nlink == 0;
  }

  // A file we created but could not give the configured mode or group is removed, so that
  // the next attempt creates it again instead of finding it and keeping the wrong one.
  Error discard_created(Error error) {
    ::unlink(path_.c_str());
    return error;
  }

  void fail_open(SinkCore& core, const Error& error) {
    core.count_error(error);
    retry_at_ = Clock::now() + retry_.next();
  }

  // Without a file (an open or write failed), records are dropped until the next attempt,
  // paced by reconnect_min .. reconnect_max.
  bool retry_open(SinkCore& core) {
    if (Clock::now() < retry_at_) {
      return false;
    }
    if (auto opened = open_file(); !opened) {
      fail_open(core, opened.error());
      return false;
    }
    retry_.reset();
    return true;
  }

  // FILE.(N-1) -> FILE.N, ..., FILE -> FILE.1, then a new FILE. FILE.N, the oldest, is
  // replaced by rename(). Vector identifies a file by its first line: every record carries
  // a unique metadata.uid, so no two files ever start with the same line. Rotation by size
  // and logrotate's rename + SIGHUP should not both be configured for one file.
  void rotate(SinkCore& core) {
    fd_.reset();
    if (rotate_keep_ == 0) {
      if (::unlink(path_.c_str()) != 0 && errno != ENOENT) {
        core.count_error(errno_error("rotate: unlink " + path_));
      }
    } else {
      for (unsigned i = rotate_keep_; i > 1; --i) {
        const std::string from = path_ + "." + std::to_string(i - 1);
        const std::string to = path_ + "." + std::to_string(i);
        if (::rename(from.c_str(), to.c_str()) != 0 && errno != ENOENT) {
          core.count_error(rename_error(from, to));
        }
      }
      const std::string first = path_ + ".1";
      if (::rename(path_.c_str(), first.c_str()) != 0 && errno != ENOENT) {
        core.count_error(rename_error(path_, first));
      }
    }
    if (auto opened = open_file(); opened) {
      core.count_reopen();
    } else {
      fail_open(core, opened.error());
    }
  }

  // Removes the last `n` bytes written (part of a record a full disk cut), so that the
  // file holds whole records only. False when that cannot be done (not a regular file,
  // or ftruncate() failed): the file then ends in a cut line.
  bool take_back(std::size_t n) {
    struct stat st {};
    if (!regular_ || ::fstat(fd_.get(), &st) != 0 || !S_ISREG(st.st_mode) ||
        static_cast<std::uint64_t>(st.st_size) < n ||
        ::ftruncate(fd_.get(), st.st_size - static_cast<off_t>(n)) != 0) {
      return false;
    }
    size_ -= std::min<std::uint64_t>(size_, n);
    return true;
  }

  Delivery append(std::string_view record, SinkCore& core) {
    // After a partial write the file ends in a cut line; the next record starts with a
    // '\n' (in the same write()) so that only the cut record is lost, not the next one.
    std::string joined;
    std::string_view data = record;
    if (cut_line_) {
      joined.reserve(record.size() + 1);
      joined += '\n';
      joined += record;
      data = joined;
    }
    std::size_t done = 0;
    while (done < data.size()) {
      const ssize_t n = ::write(fd_.get(), data.data() + done, data.size() - done);
      if (n > 0) {
        done += static_cast<std::size_t>(n);
        size_ += static_cast<std::uint64_t>(n);
        continue;
      }
      if (n < 0 && errno == EINTR) {
        continue;
      }
      const int err = n < 0 ? errno : EIO;
      core.count_error(Error{err, "write " + path_});
      if (done > 0 && !take_back(done)) {
        cut_line_ = data[done - 1] != '\n';
      }
      if (!space_error(err)) {
        // EIO, ESTALE, EBADF...: the descriptor may be bad for good. Open the path again.
        fd_.reset();
        retry_at_ = Clock::now() + retry_.next();
      }
      return Delivery::kDropped;
    }
    // A write that finished the line (the common case: one write()) ends any cut line.
    cut_line_ = false;
    return Delivery::kWritten;
  }

  const std::string path_;
  const mode_t mode_;
  const std::string group_;
  const std::uint64_t rotate_bytes_;
  const unsigned rotate_keep_;
  std::optional<gid_t> gid_;

  Fd fd_;
  bool regular_ = true;     // rotation only makes sense for a regular file (not /dev/null)
  std::uint64_t size_ = 0;  // the file's size as far as this sink knows
  bool cut_line_ = false;   // the file ends in a partial line
  SinkCore::Backoff retry_;
  Clock::time_point retry_at_{};
};

}  // namespace

// ---- the file sink type ------------------------------------------------------------------

namespace {

using document::as_integer;
using document::as_size;
using document::as_text;
using document::fail;
using document::json;
using document::kGiB;
using document::kind_of;
using document::kKiB;
using document::member_path;
using document::quote_text;

Result<void> file_preflight(const SinkConfig& sink) {
  if (!sink.file_group.empty()) {
    if (auto gid = lookup_group(sink.file_group); !gid) {
      return gid.error();
    }
  }
  const auto slash = sink.path.rfind('/');
  const std::string dir = slash == 0 ? "/" : sink.path.substr(0, slash);
  struct stat st {};
  if (::stat(dir.c_str(), &st) != 0) {
    if (errno == ENOENT) {
      // The example's /var/log/sockstate exists only where the package made it: say what
      // to do, not only what failed.
      return Error{0, "directory " + dir + " of " + sink.path + ": " + std::strerror(ENOENT) +
                          " (the package creates /var/log/sockstate; create the directory or "
                          "give the sink another path)"};
    }
    return errno_error("directory " + dir + " of " + sink.path);
  }
  if (!S_ISDIR(st.st_mode)) {
    return Error{ENOTDIR, "directory " + dir + " of " + sink.path};
  }
  if (::access(dir.c_str(), W_OK | X_OK) != 0) {
    return errno_error("directory " + dir + " of " + sink.path + " is not writable");
  }
  return {};
}

unsigned as_mode(const json& v, const std::string& path) {
  const std::string shape =
      "must be an octal mode string from \"0000\" to \"0777\", such as \"0640\"";
  if (!v.is_string()) {
    // JSON has no octal: 0640 is not valid JSON and 640 would be decimal.
    fail(path, shape + ", not " + kind_of(v));
  }
  const auto& s = v.get_ref<const std::string&>();
  if (s.size() < 3 || s.size() > 4) {
    fail(path, shape);
  }
  unsigned mode = 0;
  for (const char c : s) {
    if (c < '0' || c > '7') {
      fail(path, shape);
    }
    mode = mode * 8 + static_cast<unsigned>(c - '0');
  }
  if (mode > 0777) {
    fail(path, shape);
  }
  // The sink reopens the file on SIGHUP: without owner write that fails once it exists.
  if ((mode & 0200) == 0) {
    fail(path, "must let the owner write (such as \"0640\"): the file is reopened on reload");
  }
  // A world-writable log lets any local user forge records; a world-readable one shows
  // every user the host's connections, processes and command lines.
  if ((mode & 0002) != 0) {
    fail(path, "must not let others write: any local user could forge records");
  }
  if ((mode & 0004) != 0) {
    fail(path,
         "must not let others read (such as \"0640\", group adm): records name "
         "processes, users and command lines");
  }
  return mode;
}

std::string as_group(const json& v, const std::string& path) {
  std::string s = as_text(v, path, 256);
  if (s.find_first_of(" :,") != std::string::npos) {
    fail(path, "must be a group name, not " + quote_text(s));
  }
  return s;
}

// The rotate_keep key means nothing without rotate_size.
void check_file(const json& v, const std::string& path, SinkConfig& sink) {
  if (v.contains("rotate_keep") && sink.rotate_bytes == 0) {
    fail(member_path(path, "rotate_keep"),
         "needs rotate_size: without it the file is never rotated");
  }
}

std::unique_ptr<Sink> make_file_sink(const SinkConfig& c, const SinkContext& /*context*/) {
  return queued(c, std::make_unique<FileWriter>(c));
}

// Two sinks appending to one file tear each other's records and rotations.
bool same_file(const SinkConfig& sink, const SinkConfig& earlier) {
  return std::filesystem::path(sink.path).lexically_normal() ==
         std::filesystem::path(earlier.path).lexically_normal();
}

constexpr std::array<SinkKey, 1> kLeadingKeys = {{
    {"path", [](const json& v, const std::string& p,
                SinkConfig& s) { s.path = as_path(v, p, SinkType::kFile); }},
}};

constexpr std::array<SinkKey, 4> kKeys = {{
    {"mode",
     [](const json& v, const std::string& p, SinkConfig& s) { s.file_mode = as_mode(v, p); }},
    {"group",
     [](const json& v, const std::string& p, SinkConfig& s) { s.file_group = as_group(v, p); }},
    {"rotate_size",
     [](const json& v, const std::string& p, SinkConfig& s) {
       // Below 64 KiB a busy host would rotate every second; above 1 TiB is a typo.
       s.rotate_bytes = as_size(v, p, {64 * kKiB, 1024 * kGiB, "never"});
     }},
    {"rotate_keep",
     [](const json& v, const std::string& p, SinkConfig& s) {
       s.rotate_keep = static_cast<unsigned>(as_integer(v, p, 1, 1000, "must be 1 to 1000"));
     }},
}};

}  // namespace

extern constexpr SinkKind kFileKind = {
    .type = SinkType::kFile,
    .word = "file",
    .leading_keys = kLeadingKeys,
    .keys = kKeys,
    .required = {"path", ""},
    .check = check_file,
    .same_destination = {.same = same_file, .key = "path", .what = "the same file"},
    .destination = [](const SinkConfig& sink) { return sink.path; },
    .make = make_file_sink,
    .preflight = file_preflight,
};

}  // namespace sockstate::sink::detail
