// The consumer recipes of packaging/consumers/ (Splunk, Sentinel, OpenSearch, Security Lake,
// Elastic) name the fields they read. None of those products runs here, so what can be
// checked is that every field a recipe reads exists in a record sockstate writes, in the
// recipe's ocsf_version: the golden records of that version mode (snapshot, daemon and
// attributed observations, kept byte-exact by record_test and attribution_test).
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

namespace sockstate {
namespace {

using nlohmann::json;

const std::string kRecipes = std::string(SOCKSTATE_SOURCE_DIR) + "/packaging/consumers/";
const std::string kGolden = std::string(SOCKSTATE_TEST_DATA_DIR) + "/golden/";

std::string read(const std::string& path) {
  std::ifstream in(path);
  EXPECT_TRUE(in) << path;
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// The records we write in `version`, from the goldens of that mode.
std::vector<json> records_in(const std::string& version) {
  const std::vector<std::string> files =
      version == "1.8.0"
          ? std::vector<std::string>{"snapshot_records.jsonl", "daemon_records.jsonl",
                                     "attributed_records.jsonl"}
          : std::vector<std::string>{"records-" + version + ".jsonl",
                                     "attributed_records-" + version + ".jsonl"};
  std::vector<json> out;
  for (const auto& f : files) {
    std::istringstream lines(read(kGolden + f));
    for (std::string line; std::getline(lines, line);) {
      out.push_back(json::parse(line));
    }
  }
  return out;
}

// Whether `j` has the dotted `path` (through arrays: in any element).
bool has_path(const json& j, std::string_view path) {
  if (path.empty()) {
    return true;
  }
  if (j.is_array()) {
    for (const json& e : j) {
      if (has_path(e, path)) {
        return true;
      }
    }
    return false;
  }
  const auto dot = path.find('.');
  const std::string key(path.substr(0, dot));
  if (!j.is_object() || !j.contains(key)) {
    return false;
  }
  return has_path(j[key], dot == std::string_view::npos ? "" : path.substr(dot + 1));
}

// The recipe's ocsf_version (its "sockstate-recipe: ocsf_version=V" line).
std::string version_of(const std::string& text) {
  static const std::regex kVersion(R"(sockstate-recipe: ocsf_version=([0-9]+\.[0-9]+\.[0-9]+))");
  std::smatch m;
  EXPECT_TRUE(std::regex_search(text, m, kVersion)) << "a recipe says its version";
  return m.size() > 1 ? m[1].str() : "";
}

// Every field is in some record of the recipe's version; the extractor found enough of
// them to mean something.
void expect_written(const std::set<std::string>& fields, const std::string& version,
                    std::size_t at_least) {
  const std::vector<json> records = records_in(version);
  ASSERT_FALSE(records.empty());
  EXPECT_GE(fields.size(), at_least) << "the recipe's fields were found";
  for (const auto& f : fields) {
    bool found = false;
    for (const json& r : records) {
      found = found || has_path(r, f);
    }
    EXPECT_TRUE(found) << f << " is in no record sockstate writes in " << version;
  }
}

std::set<std::string> matches(const std::string& text, const std::regex& re) {
  std::set<std::string> out;
  for (auto it = std::sregex_iterator(text.begin(), text.end(), re); it != std::sregex_iterator();
       ++it) {
    out.insert((*it)[1].str());
  }
  return out;
}

// props.conf: the sources of FIELDALIAS (`a.b AS c`) and the quoted fields of EVAL.
TEST(Recipes, SplunkReadsFieldsWeWrite) {
  const std::string props = read(kRecipes + "splunk/props.conf");
  std::set<std::string> fields;
  std::istringstream lines(props);
  static const std::regex kAlias(R"(([A-Za-z0-9_.{}]+)\s+AS\s+[A-Za-z0-9_]+)");
  static const std::regex kQuoted(R"('([A-Za-z0-9_.{}]+)')");
  for (std::string line; std::getline(lines, line);) {
    if (line.rfind("FIELDALIAS-", 0) == 0) {
      const auto f = matches(line.substr(line.find('=') + 1), kAlias);
      fields.insert(f.begin(), f.end());
    } else if (line.rfind("EVAL-", 0) == 0) {
      const auto f = matches(line, kQuoted);
      fields.insert(f.begin(), f.end());
    }
  }
  const std::string version = version_of(props);
  EXPECT_EQ(version, "1.1.0");
  for (const char* f : {"transforms.conf", "eventtypes.conf", "tags.conf"}) {
    EXPECT_EQ(version_of(read(kRecipes + "splunk/" + f)), version) << f;
  }
  expect_written(fields, version, 20);
}

// The KQL parser reads the record as r = parse_json(RawData): every r.<path>.
TEST(Recipes, SentinelReadsFieldsWeWrite) {
  const std::string kql = read(kRecipes + "sentinel/ASimNetworkSessionSockstate.kql");
  static const std::regex kField(R"(\br\.([A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*))");
  expect_written(matches(kql, kField), version_of(kql), 30);
}

void leaf_properties(const json& properties, const std::string& prefix,
                     std::set<std::string>& out) {
  for (const auto& [name, spec] : properties.items()) {
    if (spec.contains("properties")) {
      leaf_properties(spec["properties"], prefix + name + ".", out);
    } else {
      out.insert(prefix + name);
    }
  }
}

// The index template's mapped fields, and every path the Security Analytics aliases name.
TEST(Recipes, OpenSearchReadsFieldsWeWrite) {
  const std::string template_text = read(kRecipes + "opensearch/index-template.json");
  const json t = json::parse(template_text);
  std::set<std::string> fields;
  leaf_properties(t["template"]["mappings"]["properties"], "", fields);
  const std::string version = version_of(template_text);
  expect_written(fields, version, 25);

  const std::string mappings_text = read(kRecipes + "opensearch/security-analytics-mappings.json");
  EXPECT_EQ(version_of(mappings_text), version);
  const json m = json::parse(mappings_text);
  std::set<std::string> paths;
  for (const auto& [alias, spec] : m["mappings"]["alias_mappings"]["properties"].items()) {
    EXPECT_EQ(spec["type"], "alias") << alias;
    paths.insert(spec["path"].get<std::string>());
    EXPECT_TRUE(fields.contains(spec["path"].get<std::string>()))
        << alias << ": an alias must point at a field the template maps";
  }
  expect_written(paths, version, 15);
}

// A Hive type's leaf paths: struct<a:int,b:struct<c:string>> under `prefix` is prefix.a and
// prefix.b.c; an array's are its element's; a map or a primitive is the path itself.
void hive_paths(std::string_view type, const std::string& prefix, std::set<std::string>& out) {
  if (type.rfind("array<", 0) == 0) {
    hive_paths(type.substr(6, type.size() - 7), prefix, out);
    return;
  }
  if (type.rfind("struct<", 0) != 0) {
    out.insert(prefix);
    return;
  }
  std::string_view body = type.substr(7, type.size() - 8);
  int depth = 0;
  std::size_t start = 0;
  for (std::size_t i = 0; i <= body.size(); ++i) {
    if (i < body.size() && body[i] == '<') {
      ++depth;
    } else if (i < body.size() && body[i] == '>') {
      --depth;
    } else if (i == body.size() || (body[i] == ',' && depth == 0)) {
      const std::string_view field = body.substr(start, i - start);
      const auto colon = field.find(':');
      hive_paths(field.substr(colon + 1), prefix + "." + std::string(field.substr(0, colon)), out);
      start = i + 1;
    }
  }
}

// Every column of the Glue table Firehose writes the Parquet with, to its leaves.
TEST(Recipes, SecurityLakeTableHoldsFieldsWeWrite) {
  const std::string text = read(kRecipes + "security-lake/glue-table.json");
  const json t = json::parse(text);
  std::set<std::string> fields;
  for (const json& c : t["StorageDescriptor"]["Columns"]) {
    std::set<std::string> leaves;
    hive_paths(c["Type"].get<std::string>(), c["Name"].get<std::string>(), leaves);
    fields.insert(leaves.begin(), leaves.end());
  }
  const std::string version = version_of(text);
  EXPECT_EQ(version, "1.1.0") << "what Security Lake validates against";
  EXPECT_TRUE(fields.contains("actor.process.file.path")) << "the parser reaches the leaves";
  expect_written(fields, version, 60);
}

// The pipeline's date fields, set processors' copy_from, and what its script reads of the
// record (ctx.<path>, except the ECS objects the pipeline itself writes).
TEST(Recipes, ElasticReadsFieldsWeWrite) {
  const json p = json::parse(read(kRecipes + "elastic/ingest-pipeline.json"));
  std::set<std::string> fields;
  std::set<std::string> written_roots;
  std::string script;
  for (const json& proc : p["processors"]) {
    if (proc.contains("date")) {
      fields.insert(proc["date"]["field"].get<std::string>());
    } else if (proc.contains("set")) {
      fields.insert(proc["set"]["copy_from"].get<std::string>());
      const std::string target = proc["set"]["field"].get<std::string>();
      written_roots.insert(target.substr(0, target.find('.')));
    } else if (proc.contains("script")) {
      script += proc["script"]["source"].get<std::string>();
    }
  }
  static const std::regex kCtx(R"(\bctx\.([A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*))");
  std::size_t script_reads = 0;
  for (const auto& f : matches(script, kCtx)) {
    if (!written_roots.contains(f.substr(0, f.find('.')))) {
      fields.insert(f);
      ++script_reads;
    }
  }
  EXPECT_GE(script_reads, 4U);
  expect_written(fields, p["_meta"]["ocsf_version"].get<std::string>(), 25);
}

}  // namespace
}  // namespace sockstate
