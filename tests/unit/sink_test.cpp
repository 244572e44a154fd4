// The sinks against real destinations: pipes, files in a temporary directory, unix and
// loopback TCP listeners made here, and a datagram socket standing in for journald (the
// real journald is in tests/integration/sink_journald_test.cpp). No sleeps for outcomes:
// every wait polls a condition with a deadline.
#include "sockstate/sink/sink.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <grp.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "sockstate/common/fd.h"
#include "sockstate/sink/sink_set.h"

namespace sockstate::sink {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;
namespace fs = std::filesystem;

// ---- helpers ----------------------------------------------------------------------------

// A record shaped like ocsf/record.cpp's (classification numbers first), carrying its
// sequence number, padded with 'x' to `size` bytes (newline included) when that is larger.
std::string record(int seq, std::size_t size = 0) {
  std::string r =
      "{\"activity_id\":1,\"class_uid\":4001,\"type_uid\":400101,\"severity_id\":1,"
      "\"metadata\":{\"uid\":\"" +
      std::to_string(seq) + "\"},\"pad\":\"";
  const std::size_t tail = 3;  // "}\n plus the closing quote
  if (r.size() + tail < size) {
    r.append(size - r.size() - tail, 'x');
  }
  r += "\"}\n";
  return r;
}

// The sequence number of a line that is exactly record(seq, size) for some size (without
// its newline), or -1.
int seq_of(std::string_view line) {
  static constexpr std::string_view kUid = "\"uid\":\"";
  const auto at = line.find(kUid);
  if (at == std::string_view::npos) {
    return -1;
  }
  const auto begin = at + kUid.size();
  const auto end = line.find('"', begin);
  if (end == std::string_view::npos) {
    return -1;
  }
  const int seq = std::atoi(std::string(line.substr(begin, end - begin)).c_str());
  const std::string whole = std::string(line) + "\n";
  return whole == record(seq, whole.size()) ? seq : -1;
}

// Splits text into lines; `cut` receives a trailing piece without a newline.
std::vector<std::string> split_lines(const std::string& text, std::string* cut = nullptr) {
  std::vector<std::string> lines;
  std::size_t begin = 0;
  for (;;) {
    const auto nl = text.find('\n', begin);
    if (nl == std::string::npos) {
      break;
    }
    lines.push_back(text.substr(begin, nl - begin));
    begin = nl + 1;
  }
  if (cut != nullptr) {
    *cut = text.substr(begin);
  }
  return lines;
}

// Sequence numbers of the lines; every line must be a whole record.
std::vector<int> seqs_of(const std::string& text) {
  std::string cut;
  std::vector<int> seqs;
  for (const auto& line : split_lines(text, &cut)) {
    const int seq = seq_of(line);
    EXPECT_GE(seq, 0) << "not a whole record: " << line.substr(0, 120);
    seqs.push_back(seq);
  }
  EXPECT_EQ(cut, "") << "text ends in a cut line";
  return seqs;
}

std::vector<int> range(int from, int to) {
  std::vector<int> v;
  for (int i = from; i < to; ++i) {
    v.push_back(i);
  }
  return v;
}

bool eventually(const std::function<bool()>& condition, std::chrono::milliseconds timeout = 10s) {
  const auto deadline = Clock::now() + timeout;
  while (!condition()) {
    if (Clock::now() >= deadline) {
      return condition();
    }
    std::this_thread::sleep_for(1ms);
  }
  return true;
}

std::string read_file(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

class TempDir {
 public:
  TempDir() {
    std::string tmpl = (fs::temp_directory_path() / "sink_test.XXXXXX").string();
    if (::mkdtemp(tmpl.data()) == nullptr) {
      throw std::runtime_error("mkdtemp failed");
    }
    path_ = tmpl;
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  [[nodiscard]] const fs::path& path() const { return path_; }
  fs::path operator/(const std::string& name) const { return path_ / name; }

 private:
  fs::path path_;
};

Fd make_pipe(int flags, Fd& write_end) {
  std::array<int, 2> p{-1, -1};
  if (::pipe2(p.data(), O_CLOEXEC | flags) != 0) {
    ADD_FAILURE() << "pipe2: " << std::strerror(errno);
  }
  write_end.reset(p[1]);
  return Fd(p[0]);
}

// Everything readable now from a non-blocking descriptor.
std::string drain(int fd) {
  std::string out;
  std::array<char, 65536> buf{};
  for (;;) {
    const ssize_t n = ::read(fd, buf.data(), buf.size());
    if (n > 0) {
      out.append(buf.data(), static_cast<std::size_t>(n));
      continue;
    }
    if (n < 0 && errno == EINTR) {
      continue;
    }
    return out;
  }
}

// Reads from a connected socket until `lines` newlines have arrived, EOF, or the timeout.
std::string read_lines(int fd, std::size_t lines, std::chrono::milliseconds timeout = 10s) {
  std::string out;
  std::size_t seen = 0;
  const auto deadline = Clock::now() + timeout;
  std::array<char, 65536> buf{};
  while (seen < lines && Clock::now() < deadline) {
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, 50) <= 0) {
      continue;
    }
    const ssize_t n = ::recv(fd, buf.data(), buf.size(), MSG_DONTWAIT);
    if (n == 0) {
      break;
    }
    if (n < 0) {
      if (errno == EAGAIN || errno == EINTR) {
        continue;
      }
      break;
    }
    seen += static_cast<std::size_t>(std::count(buf.begin(), buf.begin() + n, '\n'));
    out.append(buf.data(), static_cast<std::size_t>(n));
  }
  return out;
}

// A listening socket made by the test, standing in for a shipper.
class Listener {
 public:
  static Listener unix_at(const fs::path& path) {
    Listener l;
    l.fd_.reset(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_un un{};
    un.sun_family = AF_UNIX;
    std::strncpy(un.sun_path, path.c_str(), sizeof un.sun_path - 1);
    EXPECT_EQ(::bind(l.fd_.get(), reinterpret_cast<sockaddr*>(&un), sizeof un), 0)
        << std::strerror(errno);
    EXPECT_EQ(::listen(l.fd_.get(), 16), 0);
    return l;
  }

  // 127.0.0.1:port (0: an ephemeral port). SO_REUSEADDR so that a listener can come back
  // on the port of one that closed.
  static Listener tcp(std::uint16_t port = 0, int backlog = 16, int rcvbuf = 0) {
    Listener l;
    l.fd_.reset(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    const int on = 1;
    ::setsockopt(l.fd_.get(), SOL_SOCKET, SO_REUSEADDR, &on, sizeof on);
    if (rcvbuf > 0) {
      ::setsockopt(l.fd_.get(), SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
    }
    sockaddr_in in{};
    in.sin_family = AF_INET;
    in.sin_port = htons(port);
    in.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    EXPECT_EQ(::bind(l.fd_.get(), reinterpret_cast<sockaddr*>(&in), sizeof in), 0)
        << std::strerror(errno);
    EXPECT_EQ(::listen(l.fd_.get(), backlog), 0);
    return l;
  }

  [[nodiscard]] std::uint16_t port() const {
    sockaddr_in in{};
    socklen_t len = sizeof in;
    ::getsockname(fd_.get(), reinterpret_cast<sockaddr*>(&in), &len);
    return ntohs(in.sin_port);
  }

  Fd accept(std::chrono::milliseconds timeout = 10s) {
    pollfd p{fd_.get(), POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(timeout.count())) != 1) {
      ADD_FAILURE() << "no connection within " << timeout.count() << " ms";
      return Fd();
    }
    return Fd(::accept4(fd_.get(), nullptr, nullptr, SOCK_CLOEXEC));
  }

  void close() { fd_.reset(); }

 private:
  Fd fd_;
};

SinkConfig socket_config(SinkType type, std::size_t queue) {
  SinkConfig c;
  c.type = type;
  c.queue_records = queue;
  c.reconnect_min = 5ms;
  c.reconnect_max = 20ms;
  return c;
}

// Waits until the sink's worker is stuck on a destination that does not take more: the
// written count has not moved for `quiet` while records are still queued.
bool stalled(const Sink& sink, std::chrono::milliseconds quiet = 100ms) {
  return eventually([&] {
    const auto before = sink.stats();
    std::this_thread::sleep_for(quiet);
    const auto after = sink.stats();
    return before.written == after.written && after.queued > 0;
  });
}

// ---- the fd (stdout) sink ---------------------------------------------------------------

TEST(FdSink, PipeGetsEveryRecordWholeAndInOrder) {
  Fd write_end;
  Fd read_end = make_pipe(0, write_end);
  std::string received;
  std::thread reader([&] {
    std::array<char, 65536> buf{};
    for (;;) {
      const ssize_t n = ::read(read_end.get(), buf.data(), buf.size());
      if (n <= 0) {
        return;
      }
      received.append(buf.data(), static_cast<std::size_t>(n));
    }
  });

  auto sink = make_fd_sink(write_end.get(), "pipe", QueueLimit{4096});
  ASSERT_TRUE(sink->start());
  std::string expected;
  // Sizes from 100 bytes to 6 KiB: records over PIPE_BUF take several write()s on a pipe.
  for (int i = 0; i < 2000; ++i) {
    const std::string r = record(i, static_cast<std::size_t>(100 + (i % 7) * 1000));
    sink->submit(r);
    expected += r;
  }
  sink->stop(10s);
  write_end.reset();  // with the sink's own description closed by stop(): EOF for the reader
  reader.join();

  EXPECT_EQ(received, expected);
  const auto s = sink->stats();
  EXPECT_EQ(s.written, 2000U);
  EXPECT_EQ(s.dropped, 0U);
  EXPECT_EQ(s.errors, 0U);
  EXPECT_EQ(s.queued, 0U);
}

// Fills a non-blocking pipe from the test's end until it takes no more; returns what it
// wrote (64-byte lines).
std::string fill_pipe(int fd) {
  const std::string line = std::string(63, '#') + "\n";
  std::string written;
  while (::write(fd, line.data(), line.size()) == static_cast<ssize_t>(line.size())) {
    written += line;
  }
  return written;
}

// Reads from a non-blocking descriptor until `size` bytes arrived or the timeout.
std::string read_exactly(int fd, std::size_t size, std::chrono::milliseconds timeout = 10s) {
  std::string out;
  eventually(
      [&] {
        out += drain(fd);
        return out.size() >= size;
      },
      timeout);
  return out;
}

// write() calls of this process so far (all threads): /proc/self/io's syscw.
std::uint64_t write_calls() {
  std::ifstream io("/proc/self/io");
  std::string key;
  std::uint64_t value = 0;
  while (io >> key >> value) {
    if (key == "syscw:") {
      return value;
    }
  }
  ADD_FAILURE() << "no syscw in /proc/self/io";
  return 0;
}

// Records that wait in the queue go out together: one write() for many whole records,
// in order, none cut, every one counted written.
TEST(FdSink, QueuedRecordsGoOutInBatches) {
  Fd write_end;
  Fd read_end = make_pipe(O_NONBLOCK, write_end);
  // The pipe is full before the first record: the records queue whatever the pace of
  // this thread against the worker's (under the sanitizers on a loaded machine the worker
  // wrote a pipe's worth one by one before they began to queue).
  std::string filler;
  for (const std::string chunk(4096, '-');;) {
    const ssize_t n = ::write(write_end.get(), chunk.data(), chunk.size());
    if (n <= 0) {
      break;
    }
    filler.append(chunk, 0, static_cast<std::size_t>(n));
  }
  auto sink = make_fd_sink(write_end.get(), "pipe", QueueLimit{100000});
  ASSERT_TRUE(sink->start());
  constexpr int kRecords = 3000;
  const std::uint64_t before = write_calls();
  std::string expected = filler;
  for (int i = 0; i < kRecords; ++i) {  // nobody reads yet: they queue
    const std::string r = record(i);
    sink->submit(r);
    expected += r;
  }
  const std::string received = read_exactly(read_end.get(), expected.size());
  sink->stop(10s);
  const std::uint64_t calls = write_calls() - before;
  EXPECT_EQ(received, expected);
  EXPECT_LT(calls, static_cast<std::uint64_t>(kRecords) / 10) << "records went one by one";
  const auto s = sink->stats();
  EXPECT_EQ(s.written, static_cast<std::uint64_t>(kRecords));
  EXPECT_EQ(s.dropped, 0U);
}

// Whether anything can be read from fd within `wait`.
bool readable_within(int fd, std::chrono::milliseconds wait) {
  pollfd p{.fd = fd, .events = POLLIN, .revents = 0};
  return ::poll(&p, 1, static_cast<int>(wait.count())) == 1;
}

// Deferred wakeups (the daemon's loop between two waits): a few records wait for the
// undefer and then go out in one write(); a batch's worth (kWakeBatch) wakes the worker
// without it; nothing is lost either way.
TEST(FdSink, DeferredWakeupsWriteAPassInOneGo) {
  Fd write_end;
  Fd read_end = make_pipe(O_NONBLOCK, write_end);
  auto sink = make_fd_sink(write_end.get(), "pipe", QueueLimit{100000});
  ASSERT_TRUE(sink->start());
  // A first record, undeferred: then the worker is idle in its wait (a worker that has not
  // reached it yet, or is still writing, takes what waits without a wakeup).
  sink->submit(record(99));
  ASSERT_EQ(read_exactly(read_end.get(), record(99).size()), record(99));
  std::this_thread::sleep_for(200ms);
  sink->defer_wakeups(true);
  std::string expected;
  constexpr int kPass = 50;  // fewer than kWakeBatch
  static_assert(kPass < static_cast<int>(Sink::kWakeBatch));
  for (int i = 0; i < kPass; ++i) {
    expected += record(i);
    sink->submit(record(i));
  }
  EXPECT_FALSE(readable_within(read_end.get(), 200ms)) << "a deferred record woke the worker";
  const std::uint64_t before = write_calls();
  sink->defer_wakeups(false);
  ASSERT_TRUE(readable_within(read_end.get(), 5s)) << "undeferring did not wake the worker";
  EXPECT_EQ(read_exactly(read_end.get(), expected.size()), expected);
  // One write() here; under the sanitizers this process makes a few more of its own.
  EXPECT_LT(write_calls() - before, 10U) << "the pass's records went out one by one";

  sink->defer_wakeups(true);
  expected.clear();
  for (int i = 0; i < static_cast<int>(Sink::kWakeBatch); ++i) {
    expected += record(100 + i);
    sink->submit(record(100 + i));
  }
  EXPECT_EQ(read_exactly(read_end.get(), expected.size()), expected);  // still deferred
  sink->stop(10s);
  const auto s = sink->stats();
  EXPECT_EQ(s.written, 1U + kPass + Sink::kWakeBatch);
  EXPECT_EQ(s.dropped, 0U);
}

// Where stderr is the same file (systemd's journal stream, `2>&1`), a log line between two
// pieces of a batch would cut a record: one record per write() there.
TEST(FdSink, NoBatchesWhereStderrIsTheSameFile) {
  Fd write_end;
  Fd read_end = make_pipe(O_NONBLOCK, write_end);
  const int saved = ::dup(STDERR_FILENO);
  ASSERT_GE(saved, 0);
  ASSERT_EQ(::dup2(write_end.get(), STDERR_FILENO), STDERR_FILENO);
  auto sink = make_fd_sink(write_end.get(), "stdout", QueueLimit{100000});
  const bool started = static_cast<bool>(sink->start());  // decides at open()
  ::dup2(saved, STDERR_FILENO);
  ::close(saved);
  ASSERT_TRUE(started);
  constexpr int kRecords = 1000;
  const std::uint64_t before = write_calls();
  std::string expected;
  for (int i = 0; i < kRecords; ++i) {
    const std::string r = record(i);
    sink->submit(r);
    expected += r;
  }
  EXPECT_EQ(read_exactly(read_end.get(), expected.size()), expected);
  sink->stop(10s);
  EXPECT_GE(write_calls() - before, static_cast<std::uint64_t>(kRecords));
  EXPECT_EQ(sink->stats().written, static_cast<std::uint64_t>(kRecords));
}

// A seqpacket socket takes each send() as one message: records go one per message.
TEST(FdSink, MessageSocketsGetOneRecordPerMessage) {
  std::array<int, 2> sv{};
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv.data()), 0);
  Fd reader_end(sv[0]);
  Fd writer_end(sv[1]);
  auto sink = make_fd_sink(writer_end.get(), "seqpacket", QueueLimit{100000});
  ASSERT_TRUE(sink->start());
  constexpr int kRecords = 500;
  for (int i = 0; i < kRecords; ++i) {
    sink->submit(record(i));
  }
  std::array<char, 256 * 1024> buf{};
  for (int i = 0; i < kRecords; ++i) {
    pollfd pfd{reader_end.get(), POLLIN, 0};
    ASSERT_EQ(::poll(&pfd, 1, 10000), 1) << "records stopped coming";
    const ssize_t n = ::recv(reader_end.get(), buf.data(), buf.size(), 0);
    ASSERT_EQ(std::string(buf.data(), static_cast<std::size_t>(std::max<ssize_t>(n, 0))),
              record(i));
  }
  sink->stop(10s);
  EXPECT_EQ(sink->stats().written, static_cast<std::uint64_t>(kRecords));
}

TEST(FdSink, StalledReaderDropsAndCountsExactlyWithoutBlockingSubmit) {
  Fd write_end;
  Fd read_end = make_pipe(O_NONBLOCK, write_end);
  ASSERT_GT(::fcntl(write_end.get(), F_SETPIPE_SZ, 4096), 0);
  std::string filler = fill_pipe(write_end.get());  // the reader has stalled
  auto sink = make_fd_sink(write_end.get(), "pipe", QueueLimit{8});
  ASSERT_TRUE(sink->start());

  constexpr int kRecords = 20000;
  const auto t0 = Clock::now();
  for (int i = 0; i < kRecords; ++i) {
    sink->submit(record(i));
  }
  EXPECT_LT(Clock::now() - t0, 2s) << "submit() waited on the stalled reader";
  // One record held by the blocked worker and seven waiting fill the queue of 8.
  ASSERT_TRUE(eventually([&] { return sink->stats().queued == 8; }));
  auto s = sink->stats();
  EXPECT_EQ(s.written, 0U);
  EXPECT_EQ(s.dropped, kRecords - 8U);

  // The reader wakes up: the 8 queued records, the first 8 submitted, arrive whole.
  const std::size_t size = record(0).size();
  const std::string got = read_exactly(read_end.get(), filler.size() + 8 * size);
  ASSERT_EQ(got.substr(0, filler.size()), filler);
  EXPECT_EQ(seqs_of(got.substr(filler.size())), range(0, 8));
  ASSERT_TRUE(eventually([&] { return sink->stats().written == 8; }));

  // Stalled again: stop() gives up at its deadline and counts what it could not write.
  filler = fill_pipe(write_end.get());
  for (int i = 0; i < 20; ++i) {
    sink->submit(record(kRecords + i));
  }
  const auto t1 = Clock::now();
  sink->stop(100ms);
  const auto took = Clock::now() - t1;
  EXPECT_GE(took, 90ms);
  EXPECT_LT(took, 2s) << "stop() waited for the stalled reader";
  s = sink->stats();
  EXPECT_EQ(s.written, 8U);
  EXPECT_EQ(s.dropped, kRecords - 8U + 20U);
  EXPECT_EQ(s.queued, 0U);
  EXPECT_EQ(s.errors, 0U);
  EXPECT_EQ(drain(read_end.get()), filler);
}

// The queue is bounded in bytes, not only in records: big records against a stalled reader
// hold at most the byte limit, whatever the record limit says.
TEST(FdSink, StalledReaderHoldsAtMostTheByteLimit) {
  Fd write_end;
  Fd read_end = make_pipe(O_NONBLOCK, write_end);
  ASSERT_GT(::fcntl(write_end.get(), F_SETPIPE_SZ, 4096), 0);
  const std::string filler = fill_pipe(write_end.get());
  constexpr std::size_t kLimit = 256 * 1024;
  auto sink = make_fd_sink(write_end.get(), "pipe", QueueLimit{1000000, kLimit});
  ASSERT_TRUE(sink->start());

  constexpr std::size_t kSize = 3000;  // 64 MiB offered against a 256 KiB queue
  constexpr int kRecords = 20000;
  for (int i = 0; i < kRecords; ++i) {
    sink->submit(record(i, kSize));
  }
  const std::size_t fit = kLimit / (kSize + kQueueEntryBytes);
  ASSERT_TRUE(eventually([&] { return sink->stats().queued == fit; }));
  const auto s = sink->stats();
  EXPECT_LE(s.queued_bytes, kLimit);
  EXPECT_EQ(s.queued_bytes, fit * (kSize + kQueueEntryBytes));
  EXPECT_EQ(s.dropped, kRecords - fit);
  EXPECT_EQ(s.written, 0U);

  // The reader wakes up: what was kept arrives, the byte count goes back to zero.
  const std::string got = read_exactly(read_end.get(), filler.size() + fit * kSize);
  EXPECT_EQ(seqs_of(got.substr(filler.size())), range(0, static_cast<int>(fit)));
  ASSERT_TRUE(eventually([&] { return sink->stats().written == fit; }));
  EXPECT_EQ(sink->stats().queued_bytes, 0U);
  sink->stop(1s);
}

// ---- the file sink ----------------------------------------------------------------------

SinkConfig file_config(const fs::path& path) {
  SinkConfig c;
  c.type = SinkType::kFile;
  c.path = path.string();
  c.queue_records = 65536;
  c.reconnect_min = 5ms;
  c.reconnect_max = 20ms;
  return c;
}

std::string group_name(gid_t gid) {
  const group* g = ::getgrgid(gid);
  return g != nullptr ? g->gr_name : "";
}

// The open flags of this process's descriptor for `path`, from /proc/self/fdinfo.
std::optional<int> open_flags_of(const std::string& path) {
  for (const auto& entry : fs::directory_iterator("/proc/self/fd")) {
    std::error_code ec;
    if (fs::read_symlink(entry.path(), ec) != path) {
      continue;
    }
    std::ifstream info("/proc/self/fdinfo/" + entry.path().filename().string());
    std::string key;
    while (info >> key) {
      if (key == "flags:") {
        std::string octal;
        info >> octal;
        return static_cast<int>(std::stol(octal, nullptr, 8));
      }
    }
  }
  return std::nullopt;
}

TEST(FileSink, CreatesTheFileWithExactlyItsModeAndGroupDespiteTheUmask) {
  TempDir dir;
  auto c = file_config(dir / "s.jsonl");
  c.file_mode = 0640;
  c.file_group = group_name(::getegid());
  ASSERT_FALSE(c.file_group.empty());
  const mode_t old = ::umask(077);
  auto sink = make_sink(c);
  auto started = sink->start();
  ::umask(old);
  ASSERT_TRUE(started) << started.error().message();
  EXPECT_EQ(sink->name(), "file:" + c.path);

  struct stat st {};
  ASSERT_EQ(::stat(c.path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0640U);
  EXPECT_EQ(st.st_gid, ::getegid());
  // The sink's own descriptor: O_APPEND and O_CLOEXEC.
  const auto flags = open_flags_of(c.path);
  ASSERT_TRUE(flags.has_value());
  EXPECT_NE(*flags & O_APPEND, 0);
  EXPECT_NE(*flags & O_CLOEXEC, 0);

  for (int i = 0; i < 3; ++i) {
    sink->submit(record(i));
  }
  sink->stop(5s);
  EXPECT_EQ(seqs_of(read_file(c.path)), range(0, 3));
}

TEST(FileSink, AppendsToAnExistingFileAndLeavesItsMode) {
  TempDir dir;
  const auto path = dir / "s.jsonl";
  { std::ofstream(path) << record(100); }
  ASSERT_EQ(::chmod(path.c_str(), 0600), 0);
  auto c = file_config(path);
  c.file_mode = 0640;
  auto sink = make_sink(c);
  ASSERT_TRUE(sink->start());
  sink->submit(record(101));
  sink->submit(record(102));
  sink->stop(5s);
  EXPECT_EQ(seqs_of(read_file(path)), range(100, 103));
  struct stat st {};
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0600U);
}

TEST(FileSink, AnUnknownGroupOrAMissingDirectoryFailsStart) {
  TempDir dir;
  auto c = file_config(dir / "s.jsonl");
  c.file_group = "sockstate-no-such-group";
  auto sink = make_sink(c);
  auto started = sink->start();
  ASSERT_FALSE(started);
  EXPECT_NE(started.error().message().find("sockstate-no-such-group"), std::string::npos);
  EXPECT_FALSE(fs::exists(c.path));

  auto missing = make_sink(file_config(dir / "no" / "s.jsonl"));
  started = missing->start();
  ASSERT_FALSE(started);
  EXPECT_EQ(started.error().errnum, ENOENT);
  EXPECT_NE(started.error().message().find("no/s.jsonl"), std::string::npos);
}

TEST(FileSink, RenameAndReopenLosesNoRecord) {
  TempDir dir;
  const auto path = dir / "s.jsonl";
  auto sink = make_sink(file_config(path));
  ASSERT_TRUE(sink->start());

  constexpr int kRecords = 30000;
  std::thread producer([&] {
    for (int i = 0; i < kRecords; ++i) {
      sink->submit(record(i));
    }
  });
  // logrotate's way, three times while records stream in: rename, then SIGHUP.
  for (int k = 1; k <= 3; ++k) {
    ASSERT_TRUE(eventually(
        [&] { return sink->stats().written >= static_cast<std::uint64_t>(kRecords * k / 5); }));
    fs::rename(path, dir / ("s.jsonl." + std::to_string(k)));
    sink->reopen();
  }
  producer.join();
  sink->stop(20s);

  std::vector<int> all;
  for (const std::string name : {"s.jsonl.1", "s.jsonl.2", "s.jsonl.3", "s.jsonl"}) {
    const auto seqs = seqs_of(read_file(dir / name));
    EXPECT_TRUE(std::is_sorted(seqs.begin(), seqs.end())) << name;
    all.insert(all.end(), seqs.begin(), seqs.end());
  }
  EXPECT_EQ(all, range(0, kRecords));  // each record once, and files in rotation order
  const auto s = sink->stats();
  EXPECT_EQ(s.written, static_cast<std::uint64_t>(kRecords));
  EXPECT_EQ(s.dropped, 0U);
  EXPECT_EQ(s.reopens, 3U);
}

TEST(FileSink, SizeRotationKeepsNFilesNoneOverTheSize) {
  TempDir dir;
  const auto path = dir / "s.jsonl";
  auto c = file_config(path);
  c.rotate_bytes = 1000;
  c.rotate_keep = 3;
  auto sink = make_sink(c);
  ASSERT_TRUE(sink->start());
  // 125-byte records: exactly 8 fit in 1000 bytes; 100 records make 13 files.
  for (int i = 0; i < 100; ++i) {
    sink->submit(record(i, 125));
  }
  sink->stop(10s);

  EXPECT_EQ(sink->stats().reopens, 12U);
  EXPECT_FALSE(fs::exists(dir / "s.jsonl.4"));
  const std::vector<std::pair<std::string, std::vector<int>>> expected{
      {"s.jsonl.3", range(72, 80)},
      {"s.jsonl.2", range(80, 88)},
      {"s.jsonl.1", range(88, 96)},
      {"s.jsonl", range(96, 100)},
  };
  std::set<std::string> first_lines;
  for (const auto& [name, seqs] : expected) {
    const std::string text = read_file(dir / name);
    EXPECT_LE(text.size(), 1000U) << name;
    EXPECT_EQ(seqs_of(text), seqs) << name;
    first_lines.insert(text.substr(0, text.find('\n')));
  }
  EXPECT_EQ(first_lines.size(), expected.size()) << "two files start with the same line";
}

TEST(FileSink, ARecordBiggerThanTheRotationSizeGetsAFileOfItsOwn) {
  TempDir dir;
  const auto path = dir / "s.jsonl";
  auto c = file_config(path);
  c.rotate_bytes = 1000;
  c.rotate_keep = 2;
  auto sink = make_sink(c);
  ASSERT_TRUE(sink->start());
  sink->submit(record(0, 200));
  sink->submit(record(1, 3000));
  sink->submit(record(2, 200));
  sink->stop(10s);
  EXPECT_EQ(seqs_of(read_file(dir / "s.jsonl.2")), std::vector<int>{0});
  EXPECT_EQ(seqs_of(read_file(dir / "s.jsonl.1")), std::vector<int>{1});
  EXPECT_EQ(seqs_of(read_file(path)), std::vector<int>{2});
}

TEST(FileSink, KeepZeroRotatesByRemoving) {
  TempDir dir;
  const auto path = dir / "s.jsonl";
  auto c = file_config(path);
  c.rotate_bytes = 300;
  c.rotate_keep = 0;
  auto sink = make_sink(c);
  ASSERT_TRUE(sink->start());
  for (int i = 0; i < 10; ++i) {
    sink->submit(record(i, 150));  // two per file
  }
  sink->stop(10s);
  EXPECT_EQ(seqs_of(read_file(path)), (std::vector<int>{8, 9}));
  EXPECT_FALSE(fs::exists(dir / "s.jsonl.1"));
}

// Only a regular file of our own: a FIFO would block startup, reload and shutdown; a
// symbolic link (planted in a 1777 directory) would send the records elsewhere; a file
// every user may write could be filled with lies.
TEST(FileSink, OnlyARegularFileOfOurOwn) {
  TempDir dir;
  const auto fifo = dir / "fifo";
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  const auto target = dir / "target";
  const auto link = dir / "link";
  ASSERT_EQ(::symlink(target.c_str(), link.c_str()), 0);
  const auto open = dir / "open.jsonl";
  { std::ofstream(open.string()) << ""; }
  ASSERT_EQ(::chmod(open.c_str(), 0666), 0);
  const std::pair<std::string, std::string> cases[] = {
      {fifo.string(), "not a regular file"},
      {"/dev/full", "not a regular file"},
      {link.string(), "a symbolic link"},
      {open.string(), "writable by every user"},
  };
  for (const auto& [path, why] : cases) {
    auto sink = make_sink(file_config(path));
    const auto started = sink->start();
    ASSERT_FALSE(started) << path;
    EXPECT_NE(started.error().message().find(why), std::string::npos)
        << path << ": " << started.error().message();
  }
  EXPECT_FALSE(fs::exists(target)) << "nothing written through the link";
}

TEST(FileSink, AFailedReopenIsRetriedUntilThePathWorksAgain) {
  TempDir dir;
  fs::create_directory(dir / "logs");
  const auto path = dir / "logs" / "s.jsonl";
  auto sink = make_sink(file_config(path));
  ASSERT_TRUE(sink->start());
  int submitted = 0;
  sink->submit(record(submitted++));
  ASSERT_TRUE(eventually([&] { return sink->stats().written == 1; }));

  fs::rename(dir / "logs", dir / "old");
  sink->reopen();
  ASSERT_TRUE(eventually([&] { return sink->stats().errors >= 1; }));
  EXPECT_NE(sink->last_error().find("s.jsonl"), std::string::npos);
  sink->submit(record(submitted++));
  ASSERT_TRUE(eventually([&] { return sink->stats().dropped >= 1; }));

  fs::create_directory(dir / "logs");
  ASSERT_TRUE(eventually([&] {
    sink->submit(record(submitted++));
    std::this_thread::sleep_for(2ms);
    return sink->stats().written >= 2;
  }));
  sink->stop(5s);
  const auto s = sink->stats();
  EXPECT_EQ(s.written + s.dropped, static_cast<std::uint64_t>(submitted));
  EXPECT_EQ(seqs_of(read_file(dir / "old" / "s.jsonl")), std::vector<int>{0});
  const auto seqs = seqs_of(read_file(path));
  EXPECT_EQ(seqs.size(), s.written - 1);
}

// The file removed (not renamed) under the sink: the next record makes a new file at the
// path, with one notice, and no record is counted written into the unlinked one.
TEST(FileSink, ADeletedFileIsMadeAgainAndNothingGoesIntoTheOldOne) {
  TempDir dir;
  const auto path = dir / "s.jsonl";
  auto sink = make_sink(file_config(path));
  ASSERT_TRUE(sink->start());
  sink->submit(record(0));
  ASSERT_TRUE(eventually([&] { return sink->stats().written == 1; }));
  ASSERT_TRUE(fs::remove(path));
  for (int i = 1; i <= 5; ++i) {
    sink->submit(record(i));
  }
  ASSERT_TRUE(eventually([&] { return sink->stats().written == 6; }));
  sink->stop(5s);
  EXPECT_EQ(seqs_of(read_file(path)), (std::vector<int>{1, 2, 3, 4, 5}));
  EXPECT_EQ(sink->stats().reopens, 1U);
  EXPECT_EQ(sink->stats().dropped, 0U);
  const auto notices = sink->take_notices();
  ASSERT_EQ(notices.size(), 1U);
  EXPECT_NE(notices[0].find("was deleted"), std::string::npos) << notices[0];
  EXPECT_TRUE(sink->take_notices().empty()) << "each notice once";
}

// ---- the unix and tcp sinks -------------------------------------------------------------

// Delivery, then the shipper goes away: records wait in the queue (the overflow is dropped
// and counted exactly), and a new listener at the same address gets the queued records.
void queue_while_disconnected_then_resume(SinkType type) {
  TempDir dir;
  auto c = socket_config(type, 50);
  Listener first;
  if (type == SinkType::kUnix) {
    c.path = (dir / "shipper.sock").string();
    first = Listener::unix_at(c.path);
  } else {
    c.host = "127.0.0.1";
    first = Listener::tcp();
    c.port = first.port();
  }
  auto sink = make_sink(c);
  ASSERT_TRUE(sink->start());
  for (int i = 0; i < 40; ++i) {
    sink->submit(record(i));
  }
  Fd conn = first.accept();
  EXPECT_EQ(seqs_of(read_lines(conn.get(), 40)), range(0, 40));
  ASSERT_TRUE(eventually([&] { return sink->stats().written == 40; }));

  // The shipper stops: connection and listener closed.
  conn.reset();
  first.close();
  if (type == SinkType::kUnix) {
    fs::remove(c.path);
  }
  for (int i = 40; i < 120; ++i) {
    sink->submit(record(i));
  }
  ASSERT_TRUE(eventually([&] { return sink->stats().errors >= 1; }));
  auto s = sink->stats();
  EXPECT_EQ(s.written, 40U);
  EXPECT_EQ(s.queued, 50U);
  EXPECT_EQ(s.dropped, 30U);

  // It comes back: the queued records (the first 50 after the break) arrive, whole.
  Listener second = type == SinkType::kUnix ? Listener::unix_at(c.path) : Listener::tcp(c.port);
  Fd conn2 = second.accept();
  EXPECT_EQ(seqs_of(read_lines(conn2.get(), 50)), range(40, 90));
  ASSERT_TRUE(eventually([&] { return sink->stats().written == 90; }));
  sink->stop(1s);
  s = sink->stats();
  EXPECT_EQ(s.written, 90U);
  EXPECT_EQ(s.dropped, 30U);
  EXPECT_EQ(s.reconnects, 1U);
  EXPECT_EQ(s.queued, 0U);
}

// The shipper stops reading mid-record, then drops the connection: the record that was
// partly sent arrives whole, first, on the next connection, and so does everything after.
// Returns how many bytes of a cut record the first connection held (unix sockets only: for
// TCP, part of what was sent may still sit in the sender's buffer).
std::size_t partial_record_resent_whole(SinkType type, int records, std::size_t size) {
  TempDir dir;
  auto c = socket_config(type, static_cast<std::size_t>(records));
  Listener listener;
  if (type == SinkType::kUnix) {
    c.path = (dir / "shipper.sock").string();
    listener = Listener::unix_at(c.path);
  } else {
    c.host = "127.0.0.1";
    listener = Listener::tcp(0, 16, 8192);
    c.port = listener.port();
  }
  auto sink = make_sink(c);
  EXPECT_TRUE(sink->start());
  for (int i = 0; i < records; ++i) {
    sink->submit(record(i, size));
  }
  Fd conn = listener.accept();
  EXPECT_TRUE(stalled(*sink));
  const auto written = sink->stats().written;
  EXPECT_LT(written, static_cast<std::uint64_t>(records));
  int pending = 0;
  ::ioctl(conn.get(), FIONREAD, &pending);
  conn.reset();  // unread data: the sink sees EPIPE / ECONNRESET

  Fd conn2 = listener.accept();
  const int first = static_cast<int>(written);
  EXPECT_EQ(seqs_of(read_lines(conn2.get(), static_cast<std::size_t>(records - first))),
            range(first, records));
  sink->stop(5s);
  const auto s = sink->stats();
  EXPECT_EQ(s.written, static_cast<std::uint64_t>(records));
  EXPECT_EQ(s.dropped, 0U);
  EXPECT_EQ(s.reconnects, 1U);
  EXPECT_GE(s.errors, 1U);
  if (type != SinkType::kUnix) {
    return 0;
  }
  // Every byte the sink sent is in the peer's queue: the whole records counted as written,
  // then maybe the cut part of the next one.
  EXPECT_EQ(static_cast<std::size_t>(pending) / size, written);
  return static_cast<std::size_t>(pending) % size;
}

TEST(UnixSink, QueuesWhileTheShipperIsGoneAndResumesWhenItReturns) {
  queue_while_disconnected_then_resume(SinkType::kUnix);
}

TEST(TcpSink, QueuesWhileTheShipperIsGoneAndResumesWhenItReturns) {
  queue_while_disconnected_then_resume(SinkType::kTcp);
}

TEST(UnixSink, APartlySentRecordIsSentAgainWhole) {
  // A unix stream socket takes a send() in pieces of at most ~32 KiB, all or nothing each,
  // so only a record bigger than that can be cut. Where the worker stalls is up to the
  // kernel; a few rounds make sure a cut record was among them.
  int cuts = 0;
  for (int round = 0; round < 10 && cuts < 2; ++round) {
    cuts += partial_record_resent_whole(SinkType::kUnix, 100, 100000) > 0 ? 1 : 0;
    if (HasFailure()) {
      return;
    }
  }
  EXPECT_GE(cuts, 1) << "no round cut a record: the resend path was not exercised";
}

TEST(TcpSink, APartlySentRecordIsSentAgainWhole) {
  partial_record_resent_whole(SinkType::kTcp, 600, 7000);
}

TEST(UnixSink, StartsBeforeTheShipperListens) {
  TempDir dir;
  auto c = socket_config(SinkType::kUnix, 100);
  c.path = (dir / "late.sock").string();
  auto sink = make_sink(c);
  ASSERT_TRUE(sink->start());  // nobody listens yet: not an error
  EXPECT_EQ(sink->name(), "unix:" + c.path);
  for (int i = 0; i < 5; ++i) {
    sink->submit(record(i));
  }
  ASSERT_TRUE(eventually([&] { return sink->stats().errors >= 1; }));
  EXPECT_NE(sink->last_error().find(c.path), std::string::npos) << sink->last_error();
  Listener listener = Listener::unix_at(c.path);
  Fd conn = listener.accept();
  EXPECT_EQ(seqs_of(read_lines(conn.get(), 5)), range(0, 5));
  sink->stop(1s);
  EXPECT_EQ(sink->stats().written, 5U);
  EXPECT_EQ(sink->stats().reconnects, 0U);  // the first connection is not a reconnect
}

TEST(TcpSink, ResolvesAHostName) {
  Listener listener = Listener::tcp();
  auto c = socket_config(SinkType::kTcp, 100);
  c.host = "localhost";  // may resolve to ::1 first: refused, then 127.0.0.1
  c.port = listener.port();
  auto sink = make_sink(c);
  EXPECT_EQ(sink->name(), "tcp:localhost:" + std::to_string(c.port));
  ASSERT_TRUE(sink->start());
  sink->submit(record(1));
  Fd conn = listener.accept();
  EXPECT_EQ(seqs_of(read_lines(conn.get(), 1)), std::vector<int>{1});
  sink->stop(1s);
}

TEST(TcpSink, StopReturnsInTimeWhenThePeerNeverAccepts) {
  // backlog 0 and never accept(): one connection fills the accept queue, after which the
  // kernel drops SYNs and a connect() stays in progress.
  Listener listener = Listener::tcp(0, 0);
  std::vector<Fd> fillers;
  for (int i = 0; i < 8; ++i) {
    Fd f(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
    sockaddr_in in{};
    in.sin_family = AF_INET;
    in.sin_port = htons(listener.port());
    in.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    (void)::connect(f.get(), reinterpret_cast<sockaddr*>(&in), sizeof in);  // in progress
    pollfd p{f.get(), POLLOUT, 0};
    const bool connected = ::poll(&p, 1, 200) == 1;
    fillers.push_back(std::move(f));
    if (!connected) {
      break;
    }
  }
  auto c = socket_config(SinkType::kTcp, 100);
  c.host = "127.0.0.1";
  c.port = listener.port();
  auto sink = make_sink(c);
  ASSERT_TRUE(sink->start());
  for (int i = 0; i < 50; ++i) {
    sink->submit(record(i));
  }
  std::this_thread::sleep_for(50ms);  // let the worker get into its connect()
  const auto t0 = Clock::now();
  sink->stop(200ms);
  const auto took = Clock::now() - t0;
  EXPECT_GE(took, 150ms);  // it did try until the deadline
  EXPECT_LT(took, 1500ms);
  const auto s = sink->stats();
  EXPECT_EQ(s.written, 0U);
  EXPECT_EQ(s.dropped, 50U);
}

TEST(TcpSink, StopReturnsInTimeWhenThePeerStopsReading) {
  Listener listener = Listener::tcp(0, 16, 4096);
  auto c = socket_config(SinkType::kTcp, 1000);
  c.host = "127.0.0.1";
  c.port = listener.port();
  auto sink = make_sink(c);
  ASSERT_TRUE(sink->start());
  for (int i = 0; i < 1000; ++i) {
    sink->submit(record(i, 7000));
  }
  Fd conn = listener.accept();
  ASSERT_TRUE(stalled(*sink));
  const auto t0 = Clock::now();
  sink->stop(200ms);
  EXPECT_LT(Clock::now() - t0, 1500ms);
  const auto s = sink->stats();
  EXPECT_EQ(s.written + s.dropped, 1000U);
  EXPECT_GT(s.dropped, 0U);
}

// ---- the journald sink ------------------------------------------------------------------

class FakeJournal {
 public:
  explicit FakeJournal(const fs::path& path) : path_(path) { bind(); }

  void bind() {
    fd_.reset(::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0));
    sockaddr_un un{};
    un.sun_family = AF_UNIX;
    std::strncpy(un.sun_path, path_.c_str(), sizeof un.sun_path - 1);
    EXPECT_EQ(::bind(fd_.get(), reinterpret_cast<sockaddr*>(&un), sizeof un), 0);
  }

  // journald going away and coming back: a new socket at the same path.
  void restart() {
    fd_.reset();
    fs::remove(path_);
    bind();
  }

  std::string receive() {
    pollfd p{fd_.get(), POLLIN, 0};
    if (::poll(&p, 1, 10000) != 1) {
      return "(nothing)";
    }
    std::array<char, 65536> buf{};
    const ssize_t n = ::recv(fd_.get(), buf.data(), buf.size(), 0);
    return n > 0 ? std::string(buf.data(), static_cast<std::size_t>(n)) : "(error)";
  }

 private:
  fs::path path_;
  Fd fd_;
};

SinkConfig journald_config() {
  SinkConfig c;
  c.type = SinkType::kJournald;
  c.syslog_identifier = "sockstate-test";
  c.queue_records = 100;
  c.reconnect_min = 5ms;
  c.reconnect_max = 20ms;
  return c;
}

TEST(JournaldSink, SendsOneNativeProtocolEntryPerRecord) {
  TempDir dir;
  FakeJournal journal(dir / "socket");
  auto sink = make_journald_sink(journald_config(), (dir / "socket").string());
  ASSERT_TRUE(sink->start());
  EXPECT_EQ(sink->name(), "journald");

  const std::string r = record(7);
  sink->submit(r);
  EXPECT_EQ(journal.receive(), "MESSAGE=" + r.substr(0, r.size() - 1) +
                                   "\n"
                                   "PRIORITY=6\n"
                                   "SYSLOG_IDENTIFIER=sockstate-test\n"
                                   "OCSF_CLASS_UID=4001\n"
                                   "OCSF_ACTIVITY_ID=1\n"
                                   "OCSF_TYPE_UID=400101\n"
                                   "OCSF_SEVERITY_ID=1\n");

  // Not an OCSF record: no extra fields. A newline inside a value takes the binary form.
  sink->submit("{\"a\":\"b\"}\n");
  EXPECT_EQ(journal.receive(),
            "MESSAGE={\"a\":\"b\"}\nPRIORITY=6\nSYSLOG_IDENTIFIER=sockstate-test\n");
  sink->submit("two\nlines\n");
  EXPECT_EQ(journal.receive(), std::string("MESSAGE\n\x09\0\0\0\0\0\0\0two\nlines\n", 26) +
                                   "PRIORITY=6\nSYSLOG_IDENTIFIER=sockstate-test\n");
  sink->stop(1s);
  EXPECT_EQ(sink->stats().written, 3U);
}

TEST(JournaldSink, NoJournaldMeansCountedDrops) {
  TempDir dir;
  auto sink = make_journald_sink(journald_config(), (dir / "socket").string());
  ASSERT_TRUE(sink->start());  // journald being absent does not stop the daemon
  for (int i = 0; i < 5; ++i) {
    sink->submit(record(i));
  }
  sink->stop(1s);
  const auto s = sink->stats();
  EXPECT_EQ(s.written, 0U);
  EXPECT_EQ(s.dropped, 5U);
  EXPECT_GE(s.errors, 1U);
  EXPECT_NE(sink->last_error().find((dir / "socket").string()), std::string::npos);
}

TEST(JournaldSink, FollowsARestartedJournald) {
  TempDir dir;
  FakeJournal journal(dir / "socket");
  auto sink = make_journald_sink(journald_config(), (dir / "socket").string());
  ASSERT_TRUE(sink->start());
  sink->submit(record(1));
  EXPECT_NE(journal.receive().find("\"uid\":\"1\""), std::string::npos);
  journal.restart();
  sink->submit(record(2));
  EXPECT_NE(journal.receive().find("\"uid\":\"2\""), std::string::npos);
  sink->stop(1s);
  EXPECT_EQ(sink->stats().written, 2U);
  EXPECT_EQ(sink->stats().dropped, 0U);
}

// ---- every sink -------------------------------------------------------------------------

// ---- the daemon's set of sinks across reloads --------------------------------------------

std::uint64_t written_by(const SinkSet& set, const std::string& name) {
  for (const auto& v : set.views()) {
    if (v.name == name) {
      return v.stats.written;
    }
  }
  return 0;
}

// Waits until reap() has returned at least one ended sink; all it returned.
std::vector<SinkSet::Ended> reaped(SinkSet& set) {
  std::vector<SinkSet::Ended> ended;
  eventually([&] {
    for (auto& e : set.reap()) {
      ended.push_back(e);
    }
    return !ended.empty();
  });
  return ended;
}

// A set of one unix sink whose shipper accepted and never reads: 2000 records of 2 KB
// submitted, the sink stalled on them.
struct StalledUnixSet {
  explicit StalledUnixSet(const TempDir& dir) : config(socket_config(SinkType::kUnix, 100000)) {
    config.path = (dir / "shipper.sock").string();
    shipper = Listener::unix_at(config.path);
    EXPECT_TRUE(set.apply({config}, 1s));
    for (int i = 0; i < kRecords; ++i) {
      set.submit(record(i, 2000));
    }
    conn = shipper.accept();  // never read
    EXPECT_TRUE(stalled(set.at(0)));
  }
  static constexpr int kRecords = 2000;
  SinkConfig config;
  Listener shipper;
  SinkSet set;
  Fd conn;
};

TEST(SinkSet, AReloadKeepsUnchangedSinksAndEveryCounter) {
  TempDir dir;
  const SinkConfig a = file_config(dir / "a.jsonl");
  SinkConfig b = file_config(dir / "b.jsonl");
  SinkSet set;
  ASSERT_TRUE(set.apply({a, b}, 1s));
  for (int i = 0; i < 10; ++i) {
    set.submit(record(i));
  }
  ASSERT_TRUE(eventually([&] { return set.totals().written == 20; }));
  const Sink* kept = &set.at(0);

  b.file_mode = 0600;  // same name, new configuration: replaced, counts continue
  ASSERT_TRUE(set.apply({a, b}, 1s));
  EXPECT_EQ(&set.at(0), kept) << "an unchanged sink was restarted";
  for (int i = 10; i < 15; ++i) {
    set.submit(record(i));
  }
  ASSERT_TRUE(eventually([&] { return set.totals().written == 30; }));
  EXPECT_EQ(written_by(set, "file:" + (dir / "a.jsonl").string()), 15U);
  EXPECT_EQ(written_by(set, "file:" + (dir / "b.jsonl").string()), 15U);
  const std::vector<SinkSet::Ended> ended = reaped(set);
  ASSERT_EQ(ended.size(), 1U);
  EXPECT_EQ(ended[0].left, 0U);
  EXPECT_EQ(written_by(set, "file:" + (dir / "b.jsonl").string()), 15U);
  EXPECT_EQ(seqs_of(read_file(dir / "b.jsonl")), range(0, 15));
  set.stop(1s);
  EXPECT_EQ(set.totals().written, 30U);
  EXPECT_EQ(set.totals().dropped, 0U);
}

TEST(SinkSet, RetiringAStalledSinkNeverBlocksAndCountsWhatItHeld) {
  TempDir dir;
  StalledUnixSet stalled_set(dir);
  ASSERT_FALSE(::testing::Test::HasFailure());
  SinkSet& set = stalled_set.set;
  constexpr int kRecords = StalledUnixSet::kRecords;

  const SinkConfig file = file_config(dir / "new.jsonl");
  const auto t0 = Clock::now();
  ASSERT_TRUE(set.apply({file}, 300ms));
  EXPECT_LT(Clock::now() - t0, 100ms) << "the reload waited for the retired sink";
  set.submit(record(kRecords));
  const std::vector<SinkSet::Ended> ended = reaped(set);
  EXPECT_GE(Clock::now() - t0, 250ms);
  ASSERT_EQ(ended.size(), 1U);
  EXPECT_EQ(ended[0].name, "unix:" + stalled_set.config.path);
  EXPECT_GT(ended[0].left, 0U);
  set.stop(1s);
  // Nothing unaccounted for: every record submitted is written or dropped, per sink.
  for (const auto& v : set.views()) {
    EXPECT_EQ(v.stats.queued, 0U) << v.name;
    EXPECT_EQ(v.stats.written + v.stats.dropped, v.live ? 1U : std::uint64_t{kRecords}) << v.name;
    EXPECT_EQ(v.live, v.name == "file:" + (dir / "new.jsonl").string()) << v.name;
  }
}

// A sink whose settings change but not its destination: the new one writes only once the
// old one has finished with what it held, so two workers never write one stream at once.
TEST(SinkSet, ASinkReplacedOnItsDestinationWaitsForTheOldOne) {
  TempDir dir;
  StalledUnixSet stalled_set(dir);  // the old sink, stalled on a shipper that never reads
  ASSERT_FALSE(::testing::Test::HasFailure());
  SinkSet& set = stalled_set.set;
  Listener& shipper = stalled_set.shipper;

  auto new_config = stalled_set.config;
  new_config.reconnect_max = 30ms;
  const auto t0 = Clock::now();
  ASSERT_TRUE(set.apply({new_config}, 300ms));
  set.submit(record(99999));
  Fd second = shipper.accept(5s);
  ASSERT_TRUE(second.valid());
  EXPECT_GE(Clock::now() - t0, 250ms) << "the new sink wrote while the old one still did";
  const auto seqs = seqs_of(read_lines(second.get(), 1));
  ASSERT_FALSE(seqs.empty());
  EXPECT_EQ(seqs.front(), 99999);
  set.stop(1s);
}

TEST(SinkSet, AFailedApplyChangesNothing) {
  TempDir dir;
  const SinkConfig a = file_config(dir / "a.jsonl");
  SinkSet set;
  ASSERT_TRUE(set.apply({a}, 1s));
  set.submit(record(0));
  ASSERT_TRUE(eventually([&] { return set.totals().written == 1; }));
  const Sink* before = &set.at(0);
  auto applied =
      set.apply({file_config(dir / "b.jsonl"), file_config(dir / "no/such/dir.jsonl")}, 1s);
  ASSERT_FALSE(applied);
  EXPECT_NE(applied.error().message().find("no/such/dir.jsonl"), std::string::npos)
      << applied.error().message();
  ASSERT_EQ(set.size(), 1U);
  EXPECT_EQ(&set.at(0), before);
  EXPECT_FALSE(fs::exists(dir / "b.jsonl") && fs::file_size(dir / "b.jsonl") > 0);
  set.submit(record(1));
  ASSERT_TRUE(eventually([&] { return set.totals().written == 2; }));
  EXPECT_EQ(set.views().size(), 1U);
}

TEST(MakeSink, NamesEachKindAndDoesNotStartIt) {
  SinkConfig c;
  EXPECT_EQ(make_sink(c)->name(), "stdout");
  c.type = SinkType::kFile;
  c.path = "/var/log/sockstate/sockstate.jsonl";
  EXPECT_EQ(make_sink(c)->name(), "file:/var/log/sockstate/sockstate.jsonl");
  c.type = SinkType::kUnix;
  c.path = "/run/shipper.sock";
  EXPECT_EQ(make_sink(c)->name(), "unix:/run/shipper.sock");
  c.type = SinkType::kTcp;
  c.host = "127.0.0.1";
  c.port = 5170;
  EXPECT_EQ(make_sink(c)->name(), "tcp:127.0.0.1:5170");
  c.type = SinkType::kJournald;
  auto sink = make_sink(c);
  EXPECT_EQ(sink->name(), "journald");
  const auto s = sink->stats();
  EXPECT_EQ(s.written + s.dropped + s.errors + s.queued, 0U);
}

TEST(Sink, LifecycleRules) {
  Fd write_end;
  Fd read_end = make_pipe(O_NONBLOCK, write_end);
  auto sink = make_fd_sink(write_end.get(), "pipe", QueueLimit{10});
  sink->submit(record(0));  // before start: queued, delivered once started
  ASSERT_TRUE(sink->start());
  EXPECT_FALSE(sink->start());
  sink->stop(1s);
  sink->stop(1s);
  sink->submit(record(1));  // after stop: dropped
  const auto s = sink->stats();
  EXPECT_EQ(s.written, 1U);
  EXPECT_EQ(s.dropped, 1U);
  EXPECT_EQ(seqs_of(drain(read_end.get())), std::vector<int>{0});

  // Destroyed without stop(): what is queued is dropped, nothing hangs.
  auto unstarted = make_fd_sink(write_end.get(), "pipe", QueueLimit{10});
  unstarted->submit(record(2));
}

}  // namespace
}  // namespace sockstate::sink
