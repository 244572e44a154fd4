#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>

#include "sockstate/flow/host.h"
#include "sockstate/flow/observation.h"
#include "sockstate/ocsf/json_writer.h"
#include "sockstate/ocsf/tcp_state.h"
#include "sockstate/ocsf/version.h"

namespace sockstate::ocsf {

// What is fixed for one run of sockstate; injected so golden records are byte-exact.
struct RecordContext {
  std::string product_version;
  std::string vendor_name = "sockstate";
  std::string log_name = "sockstate";
  flow::HostIdentity host;
  int device_type_id = 0;         // OCSF device type_id, 0 Unknown
  std::uint64_t netns_inode = 0;  // unmapped.netns when known (0: left out)
  // Community ID v1 seed for connection_info.community_uid (0 is everyone's default).
  std::uint16_t community_id_seed = 0;
  // 64 random bits per run: the first half of every metadata.uid of the run.
  std::uint64_t run_id = 0;
  bool observables = true;  // write `observables`
  // The OCSF version records are written in (a version mode, include/sockstate/ocsf/
  // version.h): what it lacks goes to `unmapped`, or to "Other", as the contract says.
  OcsfVersion ocsf_version{};
};

// Renders finished flow observations as OCSF Network Activity records (1.8.0, or the
// version mode the context names) per the output
// contract (../shared/docs/output-contract.md), one line of JSON each. It decides nothing
// a record means: that is the observation's. Keeps metadata.sequence: strictly increasing
// across all records it builds.
class RecordBuilder {
 public:
  explicit RecordBuilder(RecordContext context);

  // Appends the record for `obs`, JSON and '\n', to out.
  void append(const flow::Observation& obs, std::string& out);

  // Records from now on in version `v` (a reload): the sequence goes on.
  void set_ocsf_version(OcsfVersion v);

  [[nodiscard]] std::uint64_t last_sequence() const { return sequence_; }
  [[nodiscard]] const RecordContext& context() const { return context_; }

  struct Sides;  // which endpoint is which in one record

 private:
  void write_head(JsonWriter& w, const flow::Observation& obs);
  void write_message(JsonWriter& w, const flow::Observation& obs, const Sides& sides);
  void write_metadata(JsonWriter& w, const flow::Observation& obs, bool with_container);
  void write_connection_info(JsonWriter& w, const flow::Observation& obs, const Sides& sides);
  void write_actor(JsonWriter& w, const flow::Owner& owner);
  void write_endpoints(JsonWriter& w, const flow::Observation& obs, const Sides& sides) const;
  void write_observables(JsonWriter& w, const flow::Observation& obs, const Sides& sides);
  void write_unmapped(JsonWriter& w, const flow::Observation& obs, const Sides& sides);
  // What the version mode has no field for, in `unmapped`.
  void write_moved(JsonWriter& w, const flow::Observation& obs, const Sides& sides);
  // connection_info.community_uid into scratch_; false when the flow has none.
  bool community_uid(const flow::Observation& obs, const Sides& sides);
  // An `unmapped` flag: a boolean, or its text where `unmapped` holds scalars only.
  void write_flag(JsonWriter& w, std::string_view key, bool value) const;
  [[nodiscard]] bool has(Feature f) const { return features_[static_cast<std::size_t>(f)]; }

  RecordContext context_;
  // Rendered once: what every record of an activity, or of an IP version, shares.
  std::array<std::string, 9> envelope_;  // activity_id .. severity, per flow::Activity
  // metadata.version, product, profiles: ["host"], and ["host", "container"]
  std::array<std::string, 2> metadata_head_;
  // protocol_* of each protocol (kProtocols' order), for IPv4 and IPv6.
  std::array<std::array<std::string, 2>, 2> connection_head_;
  std::array<bool, kFeatures.size()> features_{};  // the context's version's, by Feature
  std::string device_json_;
  std::string device_unmapped_;  // the device fields the version mode lacks
  std::string uid_prefix_;       // metadata.uid up to the sequence
  std::string boot_prefix_;      // correlation_uid up to the cookie
  // Members that take few values, rendered once each: status; direction and boundary;
  // observation point and assignment known; the TCP state per kernel state 0..13.
  void render();  // everything rendered once, for the context's version
  void render_envelope();
  void render_constant_members();
  static std::string state_members(std::uint8_t kernel_state);
  std::array<std::string, 3> status_json_;
  std::array<std::array<std::string, 4>, 5> direction_json_;
  std::array<std::array<std::string, 2>, 5> point_json_;
  std::array<std::array<std::string, 2>, 5> point_unmapped_;  // what the mode lacks of it
  std::array<std::string, 14> state_json_;
  std::string hostname_observable_;  // rendered once: the host name does not change
  // actor.user and its observable, rendered once per user: most records share a few.
  struct RenderedUser {
    std::string name;
    int type_id = 0;
    std::string user_json;
    std::string observable_json;
  };
  const RenderedUser& rendered(const proc::UserInfo& user);
  std::unordered_map<std::uint32_t, RenderedUser> users_;
  std::uint64_t sequence_ = 0;
  std::string scratch_;  // reused for the message and ids: no allocation per record
};

// metadata.correlation_uid for a socket: stable for the socket's life, unique across
// hosts and boots (boot id + kernel socket cookie). Exposed for tests and the daemon.
std::string correlation_uid(const std::string& boot_id, std::uint64_t cookie);
void append_correlation_uid(std::string& out, std::string_view boot_id, std::uint64_t cookie);

// actor.process.uid: UUID-shaped, unique per boot and process, stable across runs: the
// first 64 bits of the boot id, then the pid (24 bits) and its start time in clock ticks.
void append_process_uid(std::string& out, std::string_view boot_id, std::int32_t pid,
                        std::uint64_t start_ticks);

// Text form of an endpoint address: IPv4-mapped IPv6 becomes dotted IPv4.
using AddressBuffer = std::array<char, 48>;  // >= INET6_ADDRSTRLEN
std::string_view format_address(const flow::Address& a, AddressBuffer& buf);
std::string address_text(const flow::Address& a);

}  // namespace sockstate::ocsf
