#include "sockstate/snapshot/output.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <csignal>
#include <cstdlib>
#include <string>

namespace sockstate::snapshot {
namespace {

std::string read_all(int fd) {
  std::string s;
  std::array<char, 4096> buf{};
  for (ssize_t n; (n = ::read(fd, buf.data(), buf.size())) > 0;) {
    s.append(buf.data(), static_cast<std::size_t>(n));
  }
  return s;
}

TEST(RecordOutput, WritesWholeRecordsAtThreshold) {
  int p[2];
  ASSERT_EQ(::pipe2(p, O_CLOEXEC | O_NONBLOCK), 0);
  Fd rd(p[0]);
  RecordOutput out(Fd(p[1]), 10);
  out.buffer().append("{\"a\":1}\n");
  ASSERT_TRUE(out.commit().ok());
  EXPECT_EQ(out.bytes_written(), 0U) << "below threshold: still buffered";
  out.buffer().append("{\"b\":2}\n");
  ASSERT_TRUE(out.commit().ok());
  EXPECT_EQ(out.bytes_written(), 16U);
  out.buffer().append("{\"c\":3}\n");
  ASSERT_TRUE(out.flush().ok());
  EXPECT_EQ(read_all(rd.get()), "{\"a\":1}\n{\"b\":2}\n{\"c\":3}\n");
}

TEST(RecordOutput, ClosedReaderIsAnErrorThatSticks) {
  std::signal(SIGPIPE, SIG_IGN);
  int p[2];
  ASSERT_EQ(::pipe2(p, O_CLOEXEC), 0);
  ::close(p[0]);
  RecordOutput out(Fd(p[1]), 0);
  out.buffer().append("x\n");
  auto r = out.commit();
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().errnum, EPIPE);
  EXPECT_NE(r.error().message().find("cannot write records"), std::string::npos);
  out.buffer().append("y\n");
  EXPECT_FALSE(out.flush().ok());
}

TEST(RecordOutput, OpenFileMode0640AndTruncates) {
  char tmpl[] = "/tmp/sockstate-output-XXXXXX";
  ASSERT_NE(::mkdtemp(tmpl), nullptr);
  const std::string path = std::string(tmpl) + "/out.jsonl";
  {
    auto fd = RecordOutput::open_file(path);
    ASSERT_TRUE(fd.ok());
    RecordOutput out(std::move(*fd));
    out.buffer().append("old line that is long\n");
    ASSERT_TRUE(out.flush().ok());
  }
  const mode_t old_mask = ::umask(0);
  {
    auto fd = RecordOutput::open_file(path);
    ASSERT_TRUE(fd.ok());
    RecordOutput out(std::move(*fd));
    out.buffer().append("new\n");
    ASSERT_TRUE(out.flush().ok());
  }
  ::umask(old_mask);
  struct stat st {};
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_size, 4);
  ::unlink(path.c_str());
  auto bad = RecordOutput::open_file(std::string(tmpl) + "/no/such/dir/x");
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.error().errnum, ENOENT);
  EXPECT_NE(bad.error().message().find("/no/such/dir/x"), std::string::npos);
  ::rmdir(tmpl);
}

}  // namespace
}  // namespace sockstate::snapshot
