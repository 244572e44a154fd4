#include "sink_keys.h"

#include <filesystem>
#include <string>

namespace sockstate::sink::detail {

using document::as_text;
using document::fail;
using document::json;
using document::quote_text;

// Sinks open files and connect sockets by these names: refuse what open() or connect()
// would refuse, here, with the key's name, instead of a failure at startup.
std::string as_path(const json& v, const std::string& path, SinkType type) {
  std::string s = as_text(v, path, 4095);
  if (s[0] != '/') {
    fail(path, "must be an absolute path, not " + quote_text(s));
  }
  if (type == SinkType::kUnix) {
    // sun_path is 108 bytes with its NUL.
    if (s.size() > 107) {
      fail(path, "must be at most 107 bytes (the limit of a Unix socket address)");
    }
  } else if (!std::filesystem::path(s).lexically_normal().has_filename()) {
    fail(path, "must name a file, not a directory: " + quote_text(s));
  }
  return s;
}

std::string as_host(const json& v, const std::string& path) {
  std::string s = as_text(v, path, 253);  // a DNS name's limit
  for (const char c : s) {
    // Names, IPv4, IPv6 (':', and '%' for a zone) — brackets and ports are separate keys.
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '.' || c == '-' || c == '_' || c == ':' || c == '%';
    if (!ok) {
      fail(path,
           "must be an IP address or a host name (no brackets, no port), not " + quote_text(s));
    }
  }
  return s;
}

}  // namespace sockstate::sink::detail
