// The journald sink: one journal entry per record, through journald's native protocol
// (https://systemd.io/JOURNAL_NATIVE_PROTOCOL/: one datagram per entry, "FIELD=value\n"
// lines, a length-prefixed form for values holding a newline).
//
// Why not sd_journal_sendv(): libsystemd returns 0 when the journal socket does not
// exist ("fail silently if the journal is not available"), so a missing journald could not
// be counted; its socket is blocking and process-wide, so a stalled journald would hold the
// worker past stop()'s deadline; and its path is fixed, so tests could not give it a socket
// of their own. The protocol is documented as stable for clients that speak it directly.
#include <endian.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <array>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <memory>
#include <optional>
#include <string>
#include <utility>

#include "queued_sink.h"
#include "sockstate/sink/registry.h"

namespace sockstate::sink::detail {
namespace {

// As libsystemd does: an entry up to this size goes in one datagram (records are < 8 KiB).
constexpr int kSendBufferBytes = 8 << 20;

// ocsf/record.cpp writes the classification numbers first:
//   {"activity_id":7,...,"class_uid":4001,...,"type_uid":400107,...,"severity_id":1,...
// so they are found in the first bytes without parsing the JSON. Inside a JSON string a
// quote is escaped, so `"key":` cannot match text in a value. A record laid out otherwise
// just gets fewer fields.
constexpr std::size_t kScanBytes = 256;

struct ExtraField {
  std::string_view journal_name;  // upper-case [A-Z0-9_]: journald drops other names silently
  std::string_view json_key;      // with quotes and colon
};
constexpr std::array<ExtraField, 4> kExtraFields{{
    {"OCSF_CLASS_UID", "\"class_uid\":"},
    {"OCSF_ACTIVITY_ID", "\"activity_id\":"},
    {"OCSF_TYPE_UID", "\"type_uid\":"},
    {"OCSF_SEVERITY_ID", "\"severity_id\":"},
}};

std::optional<std::string_view> leading_integer(std::string_view record, std::string_view key) {
  const std::string_view head = record.substr(0, kScanBytes);
  const auto at = head.find(key);
  if (at == std::string_view::npos) {
    return std::nullopt;
  }
  const std::size_t begin = at + key.size();
  std::size_t end = begin;
  while (end < record.size() && std::isdigit(static_cast<unsigned char>(record[end])) != 0) {
    ++end;
  }
  if (end == begin || end - begin > 20) {
    return std::nullopt;
  }
  return record.substr(begin, end - begin);
}

void append_field(std::string& out, std::string_view name, std::string_view value) {
  out += name;
  if (value.find('\n') == std::string_view::npos) {
    out += '=';
  } else {
    out += '\n';
    const std::uint64_t size = htole64(static_cast<std::uint64_t>(value.size()));
    std::array<char, sizeof size> raw{};
    std::memcpy(raw.data(), &size, sizeof size);
    out.append(raw.data(), raw.size());
  }
  out += value;
  out += '\n';
}

class JournaldWriter final : public Writer {
 public:
  JournaldWriter(const SinkConfig& config, std::string socket_path)
      : path_(std::move(socket_path)),
        identifier_(config.syslog_identifier),
        retry_(config.reconnect_min, config.reconnect_max) {}

  Result<void> open() override {
    if (path_.empty() || path_.size() >= sizeof(sockaddr_un{}.sun_path)) {
      return Error{ENAMETOOLONG, "journald socket path " + path_};
    }
    if (identifier_.empty() || identifier_.find('\n') != std::string::npos) {
      return Error{0, "journald: syslog_identifier must be one non-empty line"};
    }
    return {};
  }

  // journald is local: when it is not there the record is dropped and counted at once
  // rather than held in the queue, and connecting is retried with backoff.
  Delivery write(std::string_view record, SinkCore& core) override {
    if (!sock_.valid() && !connect(core)) {
      return Delivery::kDropped;
    }
    build_entry(record);
    for (bool reconnected = false;;) {
      const ssize_t n = ::send(sock_.get(), entry_.data(), entry_.size(), MSG_NOSIGNAL);
      if (n >= 0) {
        retry_.reset();
        return Delivery::kWritten;
      }
      if (errno == EINTR) {
        continue;
      }
      if (errno == EAGAIN || errno == EWOULDBLOCK) {
        // journald's queue is full: wait like any slow destination.
        if (core.wait_for(sock_.get(), POLLOUT, Clock::time_point::max()) == 0 && core.expired()) {
          return Delivery::kStopped;
        }
        continue;
      }
      const int err = errno;
      const bool peer_gone =
          err == ECONNREFUSED || err == ENOTCONN || err == ECONNRESET || err == EPIPE;
      if (peer_gone && !reconnected) {
        // journald restarted: the socket we connected to is gone, a new one has its path.
        sock_.reset();
        reconnected = true;
        if (connect(core)) {
          continue;
        }
        return Delivery::kDropped;
      }
      core.count_error(Error{err, "send to journald at " + path_});
      if (peer_gone) {
        sock_.reset();
        retry_at_ = Clock::now() + retry_.next();
      }
      return Delivery::kDropped;
    }
  }

  void close() override { sock_.reset(); }

 private:
  bool connect(SinkCore& core) {
    if (Clock::now() < retry_at_) {
      return false;
    }
    Fd sock(::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
    if (!sock.valid()) {
      return fail(core, errno_error("journald: socket"));
    }
    (void)::setsockopt(sock.get(), SOL_SOCKET, SO_SNDBUF, &kSendBufferBytes,
                       sizeof kSendBufferBytes);
    sockaddr_un un{};
    un.sun_family = AF_UNIX;
    std::memcpy(un.sun_path, path_.data(), path_.size());
    const auto len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + path_.size() + 1);
    // Connected, so that poll(POLLOUT) waits for room in journald's queue, and a journald
    // that went away shows as ECONNREFUSED.
    if (::connect(sock.get(), reinterpret_cast<const sockaddr*>(&un), len) != 0) {
      return fail(core, errno_error("connect to journald at " + path_));
    }
    sock_ = std::move(sock);
    return true;
  }

  bool fail(SinkCore& core, const Error& error) {
    core.count_error(error);
    retry_at_ = Clock::now() + retry_.next();
    return false;
  }

  void build_entry(std::string_view record) {
    std::string_view message = record;
    if (!message.empty() && message.back() == '\n') {
      message.remove_suffix(1);
    }
    entry_.clear();
    append_field(entry_, "MESSAGE", message);
    append_field(entry_, "PRIORITY", "6");
    append_field(entry_, "SYSLOG_IDENTIFIER", identifier_);
    for (const ExtraField& field : kExtraFields) {
      if (auto value = leading_integer(message, field.json_key)) {
        append_field(entry_, field.journal_name, *value);
      }
    }
  }

  const std::string path_;
  const std::string identifier_;
  Fd sock_;
  std::string entry_;  // reused: one allocation for the life of the sink
  SinkCore::Backoff retry_;
  Clock::time_point retry_at_{};
};

}  // namespace

// ---- the journald sink type ---------------------------------------------------------------

namespace {

using document::as_text;
using document::json;

constexpr std::array<SinkKey, 1> kKeys = {{
    {"syslog_identifier", [](const json& v, const std::string& p,
                             SinkConfig& s) { s.syslog_identifier = as_text(v, p, 255); }},
}};

std::unique_ptr<Sink> make_system_journald_sink(const SinkConfig& c,
                                                const SinkContext& /*context*/) {
  return make_journald_sink(c, std::string(kJournalSocket));
}

}  // namespace

extern constexpr SinkKind kJournaldKind = {
    .type = SinkType::kJournald,
    .word = "journald",
    .keys = kKeys,
    // One journal would get every record twice.
    .at_most_one = true,
    .make = make_system_journald_sink,
};

}  // namespace sockstate::sink::detail

namespace sockstate::sink {

std::unique_ptr<Sink> make_journald_sink(const SinkConfig& config, std::string socket_path) {
  return detail::queued(config,
                        std::make_unique<detail::JournaldWriter>(config, std::move(socket_path)));
}

}  // namespace sockstate::sink
