// The OCSF versions sockstate writes, and which of the fields it uses each one has: one
// table (the output contract's "Version modes"), read by the one renderer (record.cpp),
// so a mode is a version, never a renderer of its own. What a version lacks moves to
// `unmapped` or takes OCSF's "Other" (99), as the contract says field by field.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace sockstate::ocsf {

struct OcsfVersion {
  std::uint8_t major = 1;
  std::uint8_t minor = 8;
  std::uint8_t patch = 0;
  bool operator==(const OcsfVersion&) const = default;
  // Ordered as releases are: 1.10.0 after 1.9.0.
  [[nodiscard]] constexpr std::uint32_t rank() const {
    return (std::uint32_t{major} << 16U) | (std::uint32_t{minor} << 8U) | patch;
  }
};

inline constexpr OcsfVersion kOcsf110{1, 1, 0};
inline constexpr OcsfVersion kOcsf150{1, 5, 0};
inline constexpr OcsfVersion kOcsf180{1, 8, 0};  // the default
// The versions a record can be written in: the ones consumers read (1.1.0: AWS Security
// Lake, Splunk, Google SecOps, Elastic; 1.5.0: CloudWatch's parseToOCSF) and the latest.
inline constexpr std::array<OcsfVersion, 3> kOcsfVersions = {kOcsf180, kOcsf150, kOcsf110};

// Fields (or values) of our records that OCSF added after 1.1.0.
enum class Feature : std::uint8_t {
  kListenActivity,      // activity_id 7 Listen
  kCommunityUid,        // connection_info.community_uid
  kKernelRelease,       // device.os.kernel_release
  kBootUid,             // device.boot_uid
  kFilePathObservable,  // observable type_id 45 File Path
  kAssignmentKnown,     // is_src_dst_assignment_known
  kLocalDirection,      // direction_id 4 Local
  kObservationPoint,    // observation_point_id, observation_point
  kTrafficTotals,       // cumulative_traffic, traffic.start_time / end_time
  kOneEndpoint,         // a record with one of src_endpoint, dst_endpoint (Listen, Bound)
};

struct FeatureRow {
  Feature feature;
  OcsfVersion added_in;
  std::string_view field;  // as the contract's table names it
};

// kOneEndpoint: 1.1.0 requires both endpoints, 1.5.0 does not; which release between them
// relaxed it matters to no mode we write (the test checks these three).
inline constexpr std::array<FeatureRow, 10> kFeatures = {{
    {Feature::kListenActivity, {1, 3, 0}, "activity_id 7 Listen"},
    {Feature::kCommunityUid, {1, 4, 0}, "connection_info.community_uid"},
    {Feature::kKernelRelease, {1, 4, 0}, "device.os.kernel_release"},
    {Feature::kBootUid, {1, 5, 0}, "device.boot_uid"},
    {Feature::kFilePathObservable, {1, 5, 0}, "observable type_id 45 File Path"},
    {Feature::kAssignmentKnown, {1, 6, 0}, "is_src_dst_assignment_known"},
    {Feature::kLocalDirection, {1, 7, 0}, "direction_id 4 Local"},
    {Feature::kObservationPoint, {1, 7, 0}, "observation_point_id"},
    {Feature::kTrafficTotals, {1, 7, 0}, "cumulative_traffic"},
    {Feature::kOneEndpoint, {1, 5, 0}, "src_endpoint or dst_endpoint alone"},
}};

// One row per Feature, in its order: a Feature indexes the table.
constexpr bool rows_in_feature_order() {
  for (std::size_t i = 0; i < kFeatures.size(); ++i) {
    if (static_cast<std::size_t>(kFeatures[i].feature) != i) {
      return false;
    }
  }
  return true;
}
static_assert(rows_in_feature_order() &&
              kFeatures.size() == static_cast<std::size_t>(Feature::kOneEndpoint) + 1);

// Whether records of version `v` can carry `f`.
constexpr bool has(OcsfVersion v, Feature f) {
  for (const FeatureRow& row : kFeatures) {
    if (row.feature == f) {
      return v.rank() >= row.added_in.rank();
    }
  }
  return false;
}

// Whether `unmapped` holds only scalars (strings, numbers): the 1.1.0 mode's consumers
// (AWS Security Lake) read it as a map of strings.
constexpr bool flat_unmapped(OcsfVersion v) {
  return v.rank() < kOcsf150.rank();
}

// "1.8.0", "1.5.0", "1.1.0"; nullopt for any other text.
std::optional<OcsfVersion> parse_ocsf_version(std::string_view text);
std::string to_string(OcsfVersion v);
// "1.8.0, 1.5.0 or 1.1.0", for messages.
std::string supported_ocsf_versions();

}  // namespace sockstate::ocsf
