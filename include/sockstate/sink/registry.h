// Sink types as components. Each type is one SinkKind, defined in the file of its writer:
// its word in the document, its keys and what they must say together, the rule against a
// second sink on its destination, its name, how it is made and what preflight() checks.
// The registry (registry.cpp) lists the kinds, one line each. Reading a document's
// `sinks`, naming a sink, make_sink() and preflight() all go through it, so no other
// place spells out a sink type.
#pragma once

#include <array>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "sockstate/common/error.h"
#include "sockstate/document/reader.h"
#include "sockstate/sink/sink.h"
#include "sockstate/sink/sink_config.h"

namespace sockstate::sink {

// One key of a sink object: `apply` reads the value at `path` into the sink (whose type is
// already set), or throws document::Invalid.
struct SinkKey {
  std::string_view name{};
  void (*apply)(const document::json& v, const std::string& path, SinkConfig& sink) = nullptr;
};

// When a later sink of a type writes where an earlier one does (same() is true), the
// document is refused at `key`: "sinks[1].path: " + `what` + " as sinks[0]".
struct SameDestination {
  bool (*same)(const SinkConfig& sink, const SinkConfig& earlier) = nullptr;  // nullptr: never
  std::string_view key{};
  std::string_view what{};  // "the same file"
};

// A sink type. Only `type`, `word` and `make` are required; the rest default to nothing.
struct SinkKind {
  SinkType type = SinkType::kStdout;
  std::string_view word{};  // its `type` in the document, and how its sinks' names start
  // Its own keys, around the ones every sink has (queue, queue_size, in registry.cpp):
  // `leading_keys` are read before those and `keys` after. That is the order keys were
  // always checked in, so a document with several mistakes is told of the same one first.
  std::span<const SinkKey> leading_keys{};
  std::span<const SinkKey> keys{};
  std::array<std::string_view, 2> required{};  // keys it cannot do without; "" for none
  // What its keys must say together, once every key is read (nullptr: nothing).
  void (*check)(const document::json& v, const std::string& path, SinkConfig& sink) = nullptr;
  // A second sink of the type would duplicate the first (two writers on one stream, one
  // journal getting every record twice).
  bool at_most_one = false;
  SameDestination same_destination{};
  // What its sinks' names say after "WORD:" (nullptr: the word alone, as "stdout").
  std::string (*destination)(const SinkConfig& sink) = nullptr;
  std::unique_ptr<Sink> (*make)(const SinkConfig& sink, const SinkContext& context) = nullptr;
  // What preflight() checks of the host (nullptr: it needs nothing of it).
  Result<void> (*preflight)(const SinkConfig& sink) = nullptr;
};

// The kind of `type`; nullptr for a value no kind has.
const SinkKind* find_kind(SinkType type);

// A document's `sinks` array at `path`: each object read and checked by its kind, and no
// two on one destination. Throws document::Invalid for the first problem (config's
// parse_config() turns it into an Error).
std::vector<SinkConfig> parse_sinks(const document::json& v, const std::string& path);

// Every key a sink object may have, in the order they are checked (the kinds' leading
// keys, queue and queue_size, the kinds' other keys, type): for config's known_keys().
std::vector<std::string_view> sink_keys();

// The sink as log lines and errors name it: "stdout", "file:PATH", "unix:PATH",
// "tcp:HOST:PORT" ("tcp:[HOST]:PORT" when HOST is an IPv6 address), "journald",
// "kafka:TOPIC@FIRST-BROKER".
std::string sink_name(const SinkConfig& sink);

// The `type` word of a sink in the document: "stdout", "file", "unix", "tcp", "journald",
// "kafka".
std::string_view sink_type_name(SinkType type);

}  // namespace sockstate::sink
