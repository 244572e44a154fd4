#include "sockstate/config/config.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <charconv>
#include <exception>
#include <new>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "sockstate/common/fd.h"
#include "sockstate/document/reader.h"
#include "sockstate/flow/orientation.h"
#include "sockstate/metrics/server.h"
#include "sockstate/ocsf/tcp_state.h"
#include "sockstate/sink/registry.h"

namespace sockstate::config {

namespace {

using document::as_bool;
using document::as_duration;
using document::as_integer;
using document::as_size;
using document::as_text;
using document::element_path;
using document::fail;
using document::format_duration;
using document::Invalid;
using document::json;
using document::kGiB;
using document::kKiB;
using document::member_path;
using document::one_line;
using document::quote_text;
using document::unknown_key;
using document::wrong_type;
using std::chrono::milliseconds;
using namespace std::chrono_literals;

// ---- top-level keys -----------------------------------------------------------------------

std::uint32_t as_states(const json& v, const std::string& path) {
  if (!v.is_array()) {
    wrong_type(path, v, "an array of state names such as [\"all\"]");
  }
  if (v.empty()) {
    fail(path, "must not be empty (no socket would be reported)");
  }
  std::uint32_t mask = 0;
  for (std::size_t i = 0; i < v.size(); ++i) {
    const std::string at = element_path(path, i);
    if (!v[i].is_string()) {
      wrong_type(at, v[i], "a state name");
    }
    const auto& name = v[i].get_ref<const std::string&>();
    const auto bits = ocsf::state_mask_for_name(name);
    if (!bits) {
      fail(at, "unknown state " + quote_text(name) + " (names: " + ocsf::state_names() + ")");
    }
    mask |= *bits;
  }
  return mask;
}

std::vector<std::uint8_t> as_protocols(const json& v, const std::string& path) {
  if (!v.is_array()) {
    wrong_type(path, v, "an array of protocol names such as [\"tcp\", \"udp\"]");
  }
  if (v.empty()) {
    fail(path, "must not be empty (no socket would be reported)");
  }
  std::vector<std::uint8_t> out;
  for (std::size_t i = 0; i < v.size(); ++i) {
    const std::string at = element_path(path, i);
    if (!v[i].is_string()) {
      wrong_type(at, v[i], "a protocol name");
    }
    const auto& name = v[i].get_ref<const std::string&>();
    const std::vector<std::uint8_t> named = flow::protocols_named(name);
    if (named.empty()) {
      fail(at, "unknown protocol " + quote_text(name) + " (tcp, udp or all)");
    }
    out.insert(out.end(), named.begin(), named.end());
  }
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}

std::array<std::uint32_t, 2> as_per_protocol(const json& v, const std::string& path,
                                             std::array<std::uint32_t, 2> out) {
  if (!v.is_object()) {
    wrong_type(path, v, "an object such as {\"udp\": 1000}");
  }
  if (v.empty()) {
    fail(path, "must name udp");
  }
  for (const auto& item : v.items()) {
    const std::string at = member_path(path, item.key());
    const std::vector<std::uint8_t> named = flow::protocols_named(item.key());
    if (named.size() != 1) {
      fail(at, "unknown protocol (tcp or udp)");
    }
    if (flow::has_tcp_states(named[0])) {
      // A TCP socket's Close, Fail or Refuse says how that connection ended: none is folded.
      (void)as_integer(item.value(), at, 0, 0, "must be 0: TCP connections are never summarised");
      continue;
    }
    out[1] = static_cast<std::uint32_t>(
        as_integer(item.value(), at, 0, 1000000, "must be 0 (every socket) to 1000000"));
  }
  return out;
}

std::string as_log_level(const json& v, const std::string& path) {
  static constexpr std::array<std::string_view, 4> kLevels = {"error", "warn", "info", "debug"};
  if (v.is_string()) {
    for (const auto level : kLevels) {
      if (v.get_ref<const std::string&>() == level) {
        return std::string(level);
      }
    }
  }
  fail(path, "must be one of error, warn, info, debug");
}

std::vector<flow::Cidr> as_networks(const json& v, const std::string& path) {
  if (!v.is_array()) {
    wrong_type(path, v, "an array of networks such as [\"10.0.0.0/8\", \"2001:db8::/32\"]");
  }
  std::vector<flow::Cidr> out;
  for (std::size_t i = 0; i < v.size(); ++i) {
    const std::string at = element_path(path, i);
    if (!v[i].is_string()) {
      wrong_type(at, v[i], "a network in CIDR form");
    }
    const auto& text = v[i].get_ref<const std::string&>();
    const auto cidr = flow::parse_cidr(text);
    if (!cidr) {
      fail(at, "must be a network in CIDR form with no host bits set (\"10.0.0.0/8\"), not " +
                   quote_text(text));
    }
    out.push_back(*cidr);
  }
  return out;
}

using TopHandler = void (*)(const json&, const std::string&, Config&);

struct TopKey {
  std::string_view name;
  TopHandler apply;
};

// Every top-level key, in the order they are checked (and documented in the example).
constexpr std::array<TopKey, 22> kTopKeys = {{
    {"poll_interval",
     [](const json& v, const std::string& p, Config& c) {
       c.poll_interval = as_duration(v, p, {100ms, {}});
     }},
    {"traffic_interval",
     [](const json& v, const std::string& p, Config& c) {
       c.traffic_interval = as_duration(v, p, {100ms, "off"});
     }},
    {"stats_interval",
     [](const json& v, const std::string& p, Config& c) {
       c.stats_interval = as_duration(v, p, {1s, "off"});
     }},
    {"baseline",
     [](const json& v, const std::string& p, Config& c) { c.baseline = as_bool(v, p); }},
    {"destroy_events",
     [](const json& v, const std::string& p, Config& c) { c.destroy_events = as_bool(v, p); }},
    {"states", [](const json& v, const std::string& p, Config& c) { c.states = as_states(v, p); }},
    {"protocols",
     [](const json& v, const std::string& p, Config& c) { c.protocols = as_protocols(v, p); }},
    {"short_lived_per_second",
     [](const json& v, const std::string& p, Config& c) {
       c.short_lived_per_second = as_per_protocol(v, p, Config{}.short_lived_per_second);
     }},
    {"process", [](const json& v, const std::string& p, Config& c) { c.process = as_bool(v, p); }},
    {"all_netns",
     [](const json& v, const std::string& p, Config& c) { c.all_netns = as_bool(v, p); }},
    {"community_id_seed",
     [](const json& v, const std::string& p, Config& c) {
       c.community_id_seed =
           static_cast<std::uint16_t>(as_integer(v, p, 0, 65535, "must be 0 to 65535"));
     }},
    {"event_buffer",
     [](const json& v, const std::string& p, Config& c) {
       // The listener caps SO_RCVBUF at 1 GiB (it is an int, and the kernel doubles it).
       c.event_buffer_bytes = static_cast<std::size_t>(as_size(v, p, {64 * kKiB, kGiB, {}}));
     }},
    {"log_name",
     [](const json& v, const std::string& p, Config& c) { c.log_name = as_text(v, p, 256); }},
    {"device_type_id",
     [](const json& v, const std::string& p, Config& c) {
       const std::string range = "must be an OCSF device type id: 0 to 15, or 99 (Other)";
       const auto id = as_integer(v, p, 0, 99, range);
       if (id > 15 && id != 99) {
         fail(p, range);
       }
       c.device_type_id = static_cast<int>(id);
     }},
    {"log_level",
     [](const json& v, const std::string& p, Config& c) { c.log_level = as_log_level(v, p); }},
    {"internal_networks", [](const json& v, const std::string& p,
                             Config& c) { c.internal_networks = as_networks(v, p); }},
    {"observables",
     [](const json& v, const std::string& p, Config& c) { c.observables = as_bool(v, p); }},
    {"metrics_listen",
     [](const json& v, const std::string& p, Config& c) {
       if (!v.is_string()) {
         wrong_type(p, v, "\"IP:PORT\" such as \"127.0.0.1:9465\", or \"\" for none");
       }
       const auto& text = v.get_ref<const std::string&>();
       if (!text.empty()) {
         // inet_pton() reads the address up to a NUL: "127.0.0.1\u0000\n..." passed, and
         // its newline broke describe()'s log line. No control characters, as in names.
         (void)as_text(v, p, 255);
         if (auto a = metrics::parse_listen_address(text); !a) {
           fail(p, "must be \"IP:PORT\" or \"[IPv6]:PORT\": " + a.error().context);
         }
       }
       c.metrics_listen = text;
     }},
    {"bpf",
     [](const json& v, const std::string& p, Config& c) {
       const auto mode =
           v.is_string() ? parse_bpf_mode(v.get_ref<const std::string&>()) : std::nullopt;
       if (!mode) {
         fail(p, "must be \"auto\" (the kernel-event source where it loads), \"on\" or \"off\"");
       }
       c.bpf = *mode;
     }},
    {"bpf_ring_buffer",
     [](const json& v, const std::string& p, Config& c) {
       c.bpf_ring_bytes = static_cast<std::size_t>(as_size(v, p, {4 * kKiB, kGiB, {}}));
     }},
    {"ocsf_version",
     [](const json& v, const std::string& p, Config& c) {
       const auto version = v.is_string()
                                ? ocsf::parse_ocsf_version(v.get_ref<const std::string&>())
                                : std::nullopt;
       if (!version) {
         fail(p, "must be " + ocsf::supported_ocsf_versions());
       }
       c.ocsf_version = *version;
     }},
    {"sinks",
     [](const json& v, const std::string& p, Config& c) { c.sinks = sink::parse_sinks(v, p); }},
}};

const TopKey* find_top_key(std::string_view name) {
  for (const auto& k : kTopKeys) {
    if (k.name == name) {
      return &k;
    }
  }
  return nullptr;
}

Config from_document(const json& doc) {
  if (!doc.is_object()) {
    wrong_type("(document)", doc, "an object");
  }
  for (const auto& item : doc.items()) {
    if (find_top_key(item.key()) == nullptr) {
      unknown_key(member_path({}, item.key()), item.key(), kTopKeys);
    }
  }
  Config c;
  for (const auto& key : kTopKeys) {
    if (const auto it = doc.find(std::string(key.name)); it != doc.end()) {
      key.apply(*it, std::string(key.name), c);
    }
  }
  return c;
}

// JSON lets a key appear twice and nlohmann keeps the last; in a configuration that is a
// pasted block overriding an earlier one without a word. The parse callback sees keys in
// document order, so this tracks where it is and remembers the first repeat.
class DuplicateKeys {
 public:
  bool on_event(json::parse_event_t event, const json& parsed) {
    switch (event) {
      case json::parse_event_t::object_start:
        frames_.push_back(Frame{false, 0, {}, {}});
        break;
      case json::parse_event_t::array_start:
        frames_.push_back(Frame{true, 0, {}, {}});
        break;
      case json::parse_event_t::key:
        if (!frames_.empty()) {
          Frame& f = frames_.back();
          f.key = parsed.get<std::string>();
          if (!f.keys.insert(f.key).second && first_.empty()) {
            first_ = path();
          }
        }
        break;
      case json::parse_event_t::object_end:
      case json::parse_event_t::array_end:
        if (!frames_.empty()) {
          frames_.pop_back();
        }
        element_done();
        break;
      case json::parse_event_t::value:
        element_done();
        break;
    }
    return true;
  }

  // The path of the first key given twice, or empty.
  [[nodiscard]] const std::string& first() const { return first_; }

 private:
  struct Frame {
    bool array;
    std::size_t index;  // array: elements completed, so the one being read
    std::string key;    // object: the key being read
    std::set<std::string> keys;
  };

  void element_done() {
    if (!frames_.empty() && frames_.back().array) {
      ++frames_.back().index;
    }
  }

  [[nodiscard]] std::string path() const {
    std::string out;
    for (const auto& f : frames_) {
      out = f.array ? element_path(out, f.index) : member_path(out, f.key);
    }
    return out;
  }

  std::vector<Frame> frames_;
  std::string first_;
};

// nlohmann's parse_error::what() is "[json.exception.parse_error.101] parse error at line
// 3, column 5: syntax error while parsing ..."; the id means nothing to a user.
std::string syntax_message(const char* what) {
  std::string_view m(what);
  if (const auto bracket = m.find("] ");
      m.rfind("[json.exception.", 0) == 0 && bracket != std::string_view::npos) {
    m.remove_prefix(bracket + 2);
  }
  for (const std::string_view prefix : {"parse error at ", "parse error: "}) {
    if (m.rfind(prefix, 0) == 0) {
      m.remove_prefix(prefix.size());
      break;
    }
  }
  return "(document): " + std::string(m);
}

}  // namespace

namespace {

// Deeper than any configuration needs; a document nested 100,000 deep is an attack or an
// accident, and walking it would recurse.
constexpr int kMaxDepth = 16;

// One JSON value, strictly: comments allowed, a key given twice or nesting deeper than
// kMaxDepth refused. Throws Invalid (with `what_path`) or json::exception.
json parse_strict(std::string_view text, const std::string& what_path) {
  DuplicateKeys duplicates;
  json doc = json::parse(
      text.begin(), text.end(),
      [&duplicates, &what_path](int depth, json::parse_event_t event, json& parsed) {
        if (depth > kMaxDepth) {
          fail(what_path, "nested deeper than " + std::to_string(kMaxDepth) + " levels");
        }
        return duplicates.on_event(event, parsed);
      },
      /*allow_exceptions=*/true, /*ignore_comments=*/true);
  if (!duplicates.first().empty()) {
    fail(duplicates.first(), "given twice (JSON would keep the last)");
  }
  return doc;
}

// The document, then each command-line override (key, JSON text) set over it, then the
// whole validated. Never throws.
Result<Config> build(std::string_view text,
                     const std::vector<std::pair<std::string, std::string>>& overrides) {
  // The JSON parser stops at a NUL byte as at the end of the text, and what follows would
  // be ignored without a word.
  if (const auto nul = text.find('\0'); nul != std::string_view::npos) {
    const std::string_view before = text.substr(0, nul);
    const auto line = 1 + std::count(before.begin(), before.end(), '\n');
    const auto line_start = before.rfind('\n');
    const auto column = line_start == std::string_view::npos ? nul + 1 : nul - line_start;
    return Error{0, "(document): line " + std::to_string(line) + ", column " +
                        std::to_string(column) + ": a NUL byte: not a text file"};
  }
  try {
    json doc = parse_strict(text, "(document)");
    if (!doc.is_object()) {
      return from_document(doc);  // its error names the problem
    }
    for (const auto& [key, value] : overrides) {
      doc[key] = parse_strict(value, key);
    }
    return from_document(doc);
  } catch (const Invalid& e) {
    return Error{0, one_line(e.path + ": " + e.what)};
  } catch (const json::exception& e) {
    return Error{0, one_line(syntax_message(e.what()))};
  } catch (const std::bad_alloc&) {
    return Error{0, "(document): out of memory"};
  } catch (const std::exception& e) {
    return Error{0, one_line(std::string("(document): ") + e.what())};
  }
}

// A configuration is a few KiB of a regular file that only its owner may change; anything
// else is the wrong file (a FIFO would block, /dev/zero never ends, a log is huge) or one
// another user could rewrite.
Result<std::string> read_config_file(const std::string& path) {
  constexpr std::size_t kMaxBytes = 1U << 20;
  const std::string context = one_line("cannot read configuration file " + path);
  const Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY));
  if (!fd.valid()) {
    return errno_error(context);
  }
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) {
    return errno_error(context);
  }
  if (S_ISDIR(st.st_mode)) {
    return Error{EISDIR, context};
  }
  if (!S_ISREG(st.st_mode)) {
    return Error{0, one_line(path + ": not a regular file")};
  }
  if ((st.st_mode & S_IWOTH) != 0) {
    return Error{0, one_line(path + ": writable by every user; refused (chmod o-w)")};
  }
  if (static_cast<std::uint64_t>(st.st_size) > kMaxBytes) {
    return Error{0, one_line(path + ": larger than 1MiB, not a configuration file")};
  }
  std::string text;
  std::array<char, 16384> buf{};
  for (;;) {
    const ssize_t n = ::read(fd.get(), buf.data(), buf.size());
    if (n < 0) {
      if (errno == EINTR) {
        continue;
      }
      return errno_error(context);
    }
    if (n == 0) {
      return text;
    }
    text.append(buf.data(), static_cast<std::size_t>(n));
    if (text.size() > kMaxBytes) {
      return Error{0, one_line(path + ": larger than 1MiB, not a configuration file")};
    }
  }
}

}  // namespace

Result<Config> parse_config(std::string_view text) {
  return build(text, {});
}

Result<Config> load_config(const std::string& path,
                           const std::vector<std::pair<std::string, std::string>>& overrides) {
  std::string text = "{}";
  if (!path.empty()) {
    auto read = read_config_file(path);
    if (!read) {
      return read.error();
    }
    text = std::move(*read);
  }
  auto parsed = build(text, overrides);
  if (!parsed) {
    const std::string where = path.empty()        ? std::string("command line")
                              : overrides.empty() ? path
                                                  : path + " with the command line";
    return Error{0, one_line(where + ": " + parsed.error().context)};
  }
  return parsed;
}

std::optional<BpfMode> parse_bpf_mode(std::string_view text) {
  if (text == "auto") {
    return BpfMode::kAuto;
  }
  if (text == "on") {
    return BpfMode::kOn;
  }
  if (text == "off") {
    return BpfMode::kOff;
  }
  return std::nullopt;
}

std::string_view bpf_mode_name(BpfMode mode) {
  switch (mode) {
    case BpfMode::kOn:
      return "on";
    case BpfMode::kOff:
      return "off";
    case BpfMode::kAuto:
      break;
  }
  return "auto";
}

namespace {

// describe()'s part for which sockets are reported and how: "" when the defaults.
std::string describe_selection(const Config& config) {
  std::string out;
  if (config.protocols != Config{}.protocols) {
    out += ", protocols";
    for (const std::uint8_t p : config.protocols) {
      out += flow::has_tcp_states(p) ? " tcp" : " udp";
    }
  }
  if (config.short_lived_per_second != Config{}.short_lived_per_second) {
    out += ", short-lived udp " + std::to_string(config.short_lived_per_second[1]) + "/s";
  }
  if (config.states != netlink::kAllStates) {
    std::array<char, 16> hex{};
    const auto [end, ec] = std::to_chars(hex.data(), hex.data() + hex.size(), config.states, 16);
    out += ", states 0x" + std::string(hex.data(), end);
  }
  return out;
}

}  // namespace

std::string describe(const Config& config) {
  const auto every = [](milliseconds d) { return d.count() == 0 ? "off" : format_duration(d); };
  std::string out = "poll " + format_duration(config.poll_interval);
  out += ", traffic " + every(config.traffic_interval);
  out += ", stats " + every(config.stats_interval);
  if (!config.baseline) {
    out += ", no baseline";
  }
  if (!config.destroy_events) {
    out += ", no destroy events";
  }
  if (!config.process) {
    out += ", no process";
  }
  if (config.all_netns) {
    out += ", all namespaces";
  }
  if (config.community_id_seed != 0) {
    out += ", community id seed " + std::to_string(config.community_id_seed);
  }
  if (config.internal_networks != flow::NetworkSet::default_internal().networks()) {
    out += ", internal networks:";
    for (const auto& n : config.internal_networks) {
      out += " " + flow::cidr_text(n);
    }
    if (config.internal_networks.empty()) {
      out += " none";
    }
  }
  if (!config.observables) {
    out += ", no observables";
  }
  if (!config.metrics_listen.empty()) {
    out += ", metrics on " + config.metrics_listen;
  }
  if (config.bpf != BpfMode::kAuto) {
    out += ", bpf " + std::string(bpf_mode_name(config.bpf));
  }
  if (config.ocsf_version != ocsf::OcsfVersion{}) {
    out += ", OCSF " + ocsf::to_string(config.ocsf_version);
  }
  out += describe_selection(config);
  out += ", " + std::to_string(config.sinks.size()) +
         (config.sinks.size() == 1 ? " sink: " : " sinks: ");
  for (std::size_t i = 0; i < config.sinks.size(); ++i) {
    out += (i == 0 ? "" : ", ") + sink::sink_name(config.sinks[i]);
  }
  return out;
}

std::vector<std::string> known_keys() {
  const std::vector<std::string_view> sink_keys = sink::sink_keys();
  std::vector<std::string> keys;
  keys.reserve(kTopKeys.size() + sink_keys.size());
  for (const auto& k : kTopKeys) {
    keys.emplace_back(k.name);
  }
  for (const auto name : sink_keys) {
    keys.push_back("sinks[]." + std::string(name));
  }
  return keys;
}

}  // namespace sockstate::config
