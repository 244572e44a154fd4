// The configuration loader, both ways in: parse_config() on the input as it is, and
// load_config() with the input cut at NUL bytes into a file (the first part, written to
// a private file; empty: no file) and command-line overrides (each later part, KEY=VALUE
// cut at the first '='). Seeds: packaging/*.json, snippets of config_test.cpp and
// overrides, from tests/fuzz/make-corpus; tests/fuzz/fuzz_config.dict knows the keys.
//
// Beyond "nothing throws, nothing crashes": every message is one line (it ends up in a
// log line, a journal MESSAGE, check-config's stderr), and a file says what the same text
// says to parse_config(), with the file's name in front.

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "fuzz_check.h"
#include "sockstate/common/fd.h"
#include "sockstate/config/config.h"
#include "sockstate/sink/registry.h"

namespace {

using sockstate::fuzz::check;
using sockstate::fuzz::finding;

// The loader refuses what is not a regular file, or what other users may write: one file
// of mode 0600 in a mkdtemp() directory, made once per process, rewritten for each input.
class ConfigFile {
 public:
  ConfigFile() {
    const char* tmp = std::getenv("TMPDIR");
    std::string dir = std::string(tmp != nullptr && *tmp != '\0' ? tmp : "/tmp") +
                      "/sockstate-fuzz-config-XXXXXX";
    if (::mkdtemp(dir.data()) == nullptr) {
      finding("mkdtemp failed", dir);
    }
    dir_ = dir;
    path_ = dir_ + "/sockstate.json";
    fd_.reset(::open(path_.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600));
    // The umask could only take bits away; the mode is set anyway, so no umask matters.
    if (!fd_.valid() || ::fchmod(fd_.get(), 0600) != 0) {
      finding("cannot create the configuration file", path_);
    }
  }
  ConfigFile(const ConfigFile&) = delete;
  ConfigFile& operator=(const ConfigFile&) = delete;
  ~ConfigFile() {
    fd_.reset();
    ::unlink(path_.c_str());
    ::rmdir(dir_.c_str());
  }

  void write(std::string_view text) {
    check(::ftruncate(fd_.get(), 0) == 0, "ftruncate failed");
    std::size_t done = 0;
    while (done < text.size()) {
      const ssize_t n =
          ::pwrite(fd_.get(), text.data() + done, text.size() - done, static_cast<off_t>(done));
      check(n > 0, "pwrite failed");
      done += static_cast<std::size_t>(n);
    }
  }

  [[nodiscard]] const std::string& path() const { return path_; }

 private:
  std::string dir_;
  std::string path_;
  sockstate::Fd fd_;
};

void check_one_line(std::string_view text, std::string_view what) {
  for (const char c : text) {
    const auto u = static_cast<unsigned char>(c);
    check(u >= 0x20 && u != 0x7f, what, text);
  }
}

// A message the user reads: one line, errno 0 (the document was read; it is bad).
void check_error(const sockstate::Error& error) {
  check(error.errnum == 0, "a document error with an errno", error.context);
  check(!error.context.empty(), "an error without a message");
  check_one_line(error.context, "a multi-line error message");
}

void check_config(const sockstate::config::Config& config) {
  check(!config.sinks.empty(), "a configuration without sinks");
  check_one_line(sockstate::config::describe(config), "a multi-line describe()");
  for (const auto& sink : config.sinks) {
    check(sink.reconnect_min <= sink.reconnect_max, "reconnect_min above reconnect_max");
    check_one_line(sockstate::sink::sink_name(sink), "a multi-line sink name");
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static ConfigFile file;
  const std::string_view input(reinterpret_cast<const char*>(data), size);

  const auto whole = sockstate::config::parse_config(input);
  if (whole) {
    check_config(*whole);
  } else {
    check_error(whole.error());
  }

  const std::size_t nul = input.find('\0');
  const std::string_view document = input.substr(0, nul);
  std::vector<std::pair<std::string, std::string>> overrides;
  for (std::size_t at = nul; at != std::string_view::npos;) {
    const std::size_t next = input.find('\0', at + 1);
    const std::string_view part = input.substr(at + 1, next - (at + 1));
    const std::size_t eq = part.find('=');
    overrides.emplace_back(part.substr(0, eq),
                           eq == std::string_view::npos ? "" : part.substr(eq + 1));
    at = next;
  }

  std::string path;
  if (!document.empty() || overrides.empty()) {
    file.write(document);
    path = file.path();
  }
  const auto loaded = sockstate::config::load_config(path, overrides);
  if (loaded) {
    check_config(*loaded);
  } else {
    check_error(loaded.error());
  }

  // A file alone (the whole input: no NUL) says what its text says, prefixed with the
  // file's name.
  if (overrides.empty()) {
    check(whole.ok() == loaded.ok(), "load_config and parse_config disagree", document);
    if (whole) {
      check(*whole == *loaded, "load_config and parse_config read different values");
    } else {
      check(loaded.error().context == path + ": " + whole.error().context,
            "load_config's message is not parse_config's", loaded.error().context);
    }
  }
  return 0;
}
