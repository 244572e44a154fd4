// The version table against the schemas themselves: for each version we write and each
// field the table names, the vendored JSON Schema of that version has the field exactly
// when the table says so. A wrong "added in" fails here, not in a consumer's pipeline.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>

#include "sockstate/ocsf/version.h"

namespace sockstate::ocsf {
namespace {

using nlohmann::json;

json schema(OcsfVersion v) {
  const std::filesystem::path dir =
      std::filesystem::path(SOCKSTATE_OCSF_CHECK).parent_path() / "schema" / "json-schema";
  std::ifstream in(dir / ("network_activity-host." + to_string(v) + ".schema.json"));
  EXPECT_TRUE(in.good()) << "no vendored schema for " << to_string(v);
  return json::parse(in, nullptr, false);
}

bool enum_has(const json& property, int value) {
  const json& values = property.value("enum", json::array());
  return std::find(values.begin(), values.end(), value) != values.end();
}

bool property(const json& s, const char* def, const char* name) {
  const json& defs = s.at("$defs");
  return defs.contains(def) && defs.at(def).at("properties").contains(name);
}

// Whether the schema `s` has what `f` stands for.
bool in_schema(const json& s, Feature f) {
  const json& top = s.at("properties");
  const json& defs = s.at("$defs");
  switch (f) {
    case Feature::kListenActivity:
      return enum_has(top.at("activity_id"), 7);
    case Feature::kCommunityUid:
      return property(s, "network_connection_info", "community_uid");
    case Feature::kKernelRelease:
      return property(s, "os", "kernel_release");
    case Feature::kBootUid:
      return property(s, "device", "boot_uid");
    case Feature::kFilePathObservable:
      return enum_has(defs.at("observable").at("properties").at("type_id"), 45);
    case Feature::kAssignmentKnown:
      return top.contains("is_src_dst_assignment_known");
    case Feature::kLocalDirection:
      return enum_has(defs.at("network_connection_info").at("properties").at("direction_id"), 4);
    case Feature::kObservationPoint:
      return top.contains("observation_point_id") && top.contains("observation_point");
    case Feature::kTrafficTotals:
      return top.contains("cumulative_traffic") && property(s, "network_traffic", "start_time") &&
             property(s, "network_traffic", "end_time");
    case Feature::kOneEndpoint: {
      const json& required = s.at("required");
      return std::find(required.begin(), required.end(), "src_endpoint") == required.end() &&
             std::find(required.begin(), required.end(), "dst_endpoint") == required.end();
    }
  }
  return false;
}

TEST(OcsfVersion, TheTableAgreesWithEachVersionsSchema) {
  for (const OcsfVersion v : kOcsfVersions) {
    const json s = schema(v);
    ASSERT_TRUE(s.is_object()) << to_string(v);
    for (const FeatureRow& row : kFeatures) {
      EXPECT_EQ(has(v, row.feature), in_schema(s, row.feature))
          << row.field << " in OCSF " << to_string(v);
    }
  }
}

TEST(OcsfVersion, TheOldestModeHasNoneOfThemAndTheLatestAll) {
  for (const FeatureRow& row : kFeatures) {
    EXPECT_FALSE(has(kOcsf110, row.feature)) << row.field;
    EXPECT_TRUE(has(kOcsf180, row.feature)) << row.field;
  }
  EXPECT_TRUE(flat_unmapped(kOcsf110));
  EXPECT_FALSE(flat_unmapped(kOcsf150));
  EXPECT_FALSE(flat_unmapped(kOcsf180));
}

TEST(OcsfVersion, OnlyTheVersionsWeWriteParse) {
  EXPECT_EQ(parse_ocsf_version("1.8.0"), kOcsf180);
  EXPECT_EQ(parse_ocsf_version("1.5.0"), kOcsf150);
  EXPECT_EQ(parse_ocsf_version("1.1.0"), kOcsf110);
  for (const char* bad : {"", "1.8", "1.3.0", "1.8.0 ", "v1.8.0", "1.10.0", "2.0.0"}) {
    EXPECT_EQ(parse_ocsf_version(bad), std::nullopt) << '"' << bad << '"';
  }
  EXPECT_EQ(supported_ocsf_versions(), "1.8.0, 1.5.0 or 1.1.0");
  EXPECT_EQ(OcsfVersion{}, kOcsf180) << "the default";
}

}  // namespace
}  // namespace sockstate::ocsf
