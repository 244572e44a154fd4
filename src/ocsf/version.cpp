#include "sockstate/ocsf/version.h"

namespace sockstate::ocsf {

std::string to_string(OcsfVersion v) {
  return std::to_string(v.major) + "." + std::to_string(v.minor) + "." + std::to_string(v.patch);
}

std::optional<OcsfVersion> parse_ocsf_version(std::string_view text) {
  for (const OcsfVersion v : kOcsfVersions) {
    if (text == to_string(v)) {
      return v;
    }
  }
  return std::nullopt;
}

std::string supported_ocsf_versions() {
  return to_string(kOcsfVersions[0]) + ", " + to_string(kOcsfVersions[1]) + " or " +
         to_string(kOcsfVersions[2]);
}

}  // namespace sockstate::ocsf
