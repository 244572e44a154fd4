#pragma once

#include <string>

namespace sockstate::flow {

// Who is reporting, as every record's `device` says it. Read once per run (see
// collect/host.h); a field left empty is left out of the record.
struct HostIdentity {
  std::string hostname;        // this UTS namespace's host name
  std::string device_uid;      // the application-specific machine id, never the machine id
  std::string boot_id;         // /proc/sys/kernel/random/boot_id
  std::string kernel_release;  // /proc/sys/kernel/osrelease
  std::string ip;              // the preferred source of the default route; "" when none
};

}  // namespace sockstate::flow
