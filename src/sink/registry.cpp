#include "sockstate/sink/registry.h"

#include <algorithm>
#include <string>
#include <utility>
#include <vector>

namespace sockstate::sink {

// Each sink type's kind, defined beside its writer (sink_kinds.def says where).
namespace detail {
#define SOCKSTATE_SINK_KIND(Name) extern const SinkKind k##Name##Kind;
#include "sockstate/sink/sink_kinds.def"
#undef SOCKSTATE_SINK_KIND
}  // namespace detail

namespace {

using document::as_integer;
using document::as_size;
using document::element_path;
using document::fail;
using document::json;
using document::kGiB;
using document::kKiB;
using document::member_path;
using document::unknown_key;
using document::wrong_type;

// Every sink type, in the order messages list them ("must be one of stdout, file, ...").
constexpr std::array kKinds = {
#define SOCKSTATE_SINK_KIND(Name) &detail::k##Name##Kind,
#include "sockstate/sink/sink_kinds.def"
#undef SOCKSTATE_SINK_KIND
};

// The keys every sink has, read between a kind's leading keys and its others.
constexpr std::array<SinkKey, 2> kQueueKeys = {{
    {"queue",
     [](const json& v, const std::string& p, SinkConfig& s) {
       s.queue_records =
           static_cast<std::size_t>(as_integer(v, p, 1, 10000000, "must be 1 to 10000000"));
     }},
    {"queue_size",
     [](const json& v, const std::string& p, SinkConfig& s) {
       // Below 64 KiB a single burst of records overflows; above 4 GiB is a typo.
       s.queue_bytes = static_cast<std::size_t>(as_size(v, p, {64 * kKiB, 4 * kGiB, {}}));
     }},
}};

// Read first, by kind_of_sink(); the last of the names "did you mean" picks from.
constexpr SinkKey kTypeKey{"type"};

bool has_key(std::span<const SinkKey> keys, std::string_view name) {
  return std::any_of(keys.begin(), keys.end(), [name](const SinkKey& k) { return k.name == name; });
}

// Whether a sink of `kind` takes the key `name`.
bool takes(const SinkKind& kind, std::string_view name) {
  return name == kTypeKey.name || has_key(kind.leading_keys, name) || has_key(kQueueKeys, name) ||
         has_key(kind.keys, name);
}

// Every sink key once, in the order they are checked (the first kind's row of a name).
const std::vector<SinkKey>& all_keys() {
  static const std::vector<SinkKey> keys = [] {
    std::vector<SinkKey> out;
    const auto add = [&out](std::span<const SinkKey> some) {
      for (const auto& k : some) {
        if (!has_key(out, k.name)) {
          out.push_back(k);
        }
      }
    };
    for (const SinkKind* kind : kKinds) {
      add(kind->leading_keys);
    }
    add(kQueueKeys);
    for (const SinkKind* kind : kKinds) {
      add(kind->keys);
    }
    add({&kTypeKey, 1});
    return out;
  }();
  return keys;
}

// "stdout, file, unix, tcp, journald, kafka", with `last` before the last word.
std::string type_words(std::string_view last) {
  std::string out;
  for (std::size_t i = 0; i < kKinds.size(); ++i) {
    out += i == 0 ? "" : i + 1 == kKinds.size() ? std::string(last) : ", ";
    out += kKinds[i]->word;
  }
  return out;
}

// "file and unix": the words of the kinds that take the key `name`.
std::string words_taking(std::string_view name) {
  std::string out;
  for (const SinkKind* kind : kKinds) {
    if (takes(*kind, name)) {
      out += out.empty() ? "" : " and ";
      out += kind->word;
    }
  }
  return out;
}

// Every key is known before anything else is judged: a misspelt "typ" explains a missing
// type better than "type: required" does. Then the type, by its word.
const SinkKind& kind_of_sink(const json& v, const std::string& path) {
  for (const auto& item : v.items()) {
    if (!has_key(all_keys(), item.key())) {
      unknown_key(member_path(path, item.key()), item.key(), all_keys());
    }
  }
  const std::string type_path = member_path(path, kTypeKey.name);
  const auto type_it = v.find(std::string(kTypeKey.name));
  if (type_it == v.end()) {
    fail(type_path, "required: " + type_words(" or "));
  }
  if (type_it->is_string()) {
    for (const SinkKind* kind : kKinds) {
      if (type_it->get_ref<const std::string&>() == kind->word) {
        return *kind;
      }
    }
  }
  fail(type_path, "must be one of " + type_words(", "));
}

void apply_keys(std::span<const SinkKey> keys, const json& v, const std::string& path,
                SinkConfig& sink) {
  for (const auto& key : keys) {
    if (const auto it = v.find(std::string(key.name)); it != v.end()) {
      key.apply(*it, member_path(path, key.name), sink);
    }
  }
}

SinkConfig parse_sink(const json& v, const std::string& path) {
  if (!v.is_object()) {
    wrong_type(path, v, "a sink object such as {\"type\": \"stdout\"}");
  }
  const SinkKind& kind = kind_of_sink(v, path);
  for (const auto& item : v.items()) {
    if (!takes(kind, item.key())) {
      fail(member_path(path, item.key()), "not a key of a " + std::string(kind.word) + " sink (" +
                                              item.key() + " is for " + words_taking(item.key()) +
                                              " sinks)");
    }
  }
  SinkConfig sink;
  sink.type = kind.type;
  apply_keys(kind.leading_keys, v, path, sink);
  apply_keys(kQueueKeys, v, path, sink);
  apply_keys(kind.keys, v, path, sink);
  // What the type's keys must say, alone and together.
  for (const auto key : kind.required) {
    if (!key.empty() && !v.contains(std::string(key))) {
      fail(member_path(path, key), "required for a " + std::string(kind.word) + " sink");
    }
  }
  if (kind.check != nullptr) {
    kind.check(v, path, sink);
  }
  return sink;
}

// `sink` (at `at`) against the earlier sinks of the array at `path`.
void refuse_duplicate(const std::vector<SinkConfig>& earlier, const SinkConfig& sink,
                      const std::string& path, const std::string& at) {
  const SinkKind& kind = *find_kind(sink.type);
  for (std::size_t j = 0; j < earlier.size(); ++j) {
    if (earlier[j].type != sink.type) {
      continue;
    }
    if (kind.at_most_one) {
      fail(member_path(at, kTypeKey.name), "a second " + std::string(kind.word) +
                                               " sink (at most one; the first is " +
                                               element_path(path, j) + ")");
    }
    const SameDestination& rule = kind.same_destination;
    if (rule.same != nullptr && rule.same(sink, earlier[j])) {
      fail(member_path(at, rule.key), std::string(rule.what) + " as " + element_path(path, j));
    }
  }
}

}  // namespace

const SinkKind* find_kind(SinkType type) {
  for (const SinkKind* kind : kKinds) {
    if (kind->type == type) {
      return kind;
    }
  }
  return nullptr;
}

std::vector<SinkConfig> parse_sinks(const json& v, const std::string& path) {
  if (!v.is_array()) {
    wrong_type(path, v, "an array of sink objects");
  }
  if (v.empty()) {
    fail(path, "must not be empty: records would be written nowhere");
  }
  std::vector<SinkConfig> sinks;
  for (std::size_t i = 0; i < v.size(); ++i) {
    const std::string at = element_path(path, i);
    SinkConfig sink = parse_sink(v[i], at);
    refuse_duplicate(sinks, sink, path, at);
    sinks.push_back(std::move(sink));
  }
  return sinks;
}

std::vector<std::string_view> sink_keys() {
  std::vector<std::string_view> names;
  names.reserve(all_keys().size());
  for (const auto& k : all_keys()) {
    names.push_back(k.name);
  }
  return names;
}

std::string sink_name(const SinkConfig& sink) {
  const SinkKind* kind = find_kind(sink.type);
  if (kind == nullptr) {
    return "unknown";
  }
  std::string name(kind->word);
  if (kind->destination != nullptr) {
    name += ":" + kind->destination(sink);
  }
  return name;
}

std::string_view sink_type_name(SinkType type) {
  const SinkKind* kind = find_kind(type);
  return kind != nullptr ? kind->word : kKinds[0]->word;  // every SinkType has a kind (a test)
}

}  // namespace sockstate::sink
