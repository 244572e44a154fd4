#pragma once

namespace sockstate {

// A move-only owner of a file descriptor: closed exactly once, on destruction or reset.
class Fd {
 public:
  Fd() = default;
  explicit Fd(int fd) : fd_(fd) {}
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  Fd(Fd&& other) noexcept : fd_(other.release()) {}
  Fd& operator=(Fd&& other) noexcept;
  ~Fd() { reset(); }

  [[nodiscard]] int get() const { return fd_; }
  [[nodiscard]] bool valid() const { return fd_ >= 0; }
  int release();
  void reset(int fd = -1);

 private:
  int fd_ = -1;
};

// A way to write to a descriptor the process was given (stdout, stderr) that never waits
// on a stalled reader, without changing the descriptor's flags, which the parent and the
// reader share:
// - a socket (journald's stream under systemd): send() with MSG_DONTWAIT;
// - a pipe or a terminal (which can block on flow control, or on a hung ssh session's
//   pty): opened again through /proc/self/fd as this process's own open file description,
//   which can be O_NONBLOCK (without /proc, writes may block);
// - a regular file: write(), which does not wait on a reader.
struct NonBlockingOutput {
  int fd = -1;            // where to write: the given descriptor, or `own`
  bool use_send = false;  // send(MSG_DONTWAIT | MSG_NOSIGNAL) instead of write()
  Fd own;                 // the pipe's own description, when one was opened
};

// -1 and errno when `fd` cannot even be fstat()ed.
NonBlockingOutput nonblocking_output(int fd);

}  // namespace sockstate
