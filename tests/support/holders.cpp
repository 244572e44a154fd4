#include "support/holders.h"

#include <unistd.h>

#include <chrono>
#include <fstream>
#include <sstream>
#include <thread>

namespace sockstate::testing {
namespace {

using namespace std::chrono_literals;

// argv: port, ready file, then "fork" to fork a child, then anything (shown in cmdline).
constexpr const char* kHolderScript = R"(import ctypes, os, signal, socket, sys
ctypes.CDLL(None).prctl(1, 9)
port = int(sys.argv[1])
l = socket.socket()
l.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
l.bind(('127.0.0.1', port))
l.listen(8)
c = socket.create_connection(('127.0.0.1', port))
s, _ = l.accept()
child = 0
if len(sys.argv) > 3 and sys.argv[3] == 'fork':
	child = os.fork()
	if child == 0:
		ctypes.CDLL(None).prctl(1, 9)
		signal.pause()
open(sys.argv[2] + '.tmp', 'w').write(str(child))
os.rename(sys.argv[2] + '.tmp', sys.argv[2])
signal.pause()
)";

std::string read_file(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

}  // namespace

std::optional<Holders::Holder> Holders::start(std::uint16_t port,
                                              const std::vector<std::string>& wrapper,
                                              bool fork_child,
                                              const std::vector<std::string>& extra_args) {
  const std::string tag = std::to_string(port) + "." + std::to_string(++started_);
  const std::string ready = dir_ + "/ready." + tag;
  std::vector<std::string> argv = {kPython, "-c", kHolderScript, std::to_string(port), ready};
  argv.emplace_back(fork_child ? "fork" : "nofork");
  argv.insert(argv.end(), extra_args.begin(), extra_args.end());
  std::vector<std::string> launch = wrapper;
  launch.insert(launch.end(), argv.begin(), argv.end());
  auto p =
      BackgroundProcess::start(launch, {}, dir_ + "/out." + tag, dir_ + "/err." + tag, &error_);
  if (!p) {
    return std::nullopt;
  }
  Holder h;
  h.pid = p->pid();
  h.argv = argv;
  processes_.push_back(std::move(*p));
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  while (::access(ready.c_str(), F_OK) != 0) {
    if (std::chrono::steady_clock::now() > deadline || !processes_.back().running()) {
      error_ = "holder on port " + std::to_string(port) +
               " not ready; stderr: " + read_file(dir_ + "/err." + tag);
      return std::nullopt;
    }
    std::this_thread::sleep_for(10ms);
  }
  h.child = std::stoi(read_file(ready));
  return h;
}

}  // namespace sockstate::testing
