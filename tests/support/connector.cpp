// ss-connector PORT COUNT BYTES: a short-lived process for the kernel-event source's tests.
// It makes COUNT connections to 127.0.0.1:PORT one after another, writes BYTES on each,
// closes it and exits (0, or 1 when a connection failed): its sockets outlive it only in
// the kernel's destroy events, never in a poll.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdlib>
#include <string>

int main(int argc, char** argv) {
  if (argc != 4) {
    return 2;
  }
  const int port = std::atoi(argv[1]);
  const int count = std::atoi(argv[2]);
  const std::string data(static_cast<std::size_t>(std::atoi(argv[3])), 'x');
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<std::uint16_t>(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  for (int i = 0; i < count; ++i) {
    const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || ::connect(fd, reinterpret_cast<const sockaddr*>(&a), sizeof a) != 0 ||
        ::write(fd, data.data(), data.size()) != static_cast<ssize_t>(data.size())) {
      return 1;
    }
    ::close(fd);
  }
  return 0;
}
