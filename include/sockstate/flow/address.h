#pragma once

#include <array>
#include <cstdint>
#include <cstring>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_set>
#include <vector>

namespace sockstate::flow {

// An address in one form for both families: IPv4 as IPv4-mapped IPv6 (::ffff:a.b.c.d).
using Address = std::array<std::uint8_t, 16>;
Address normalized_address(std::uint8_t family, const std::array<std::uint8_t, 16>& raw);
bool is_ipv4_mapped(const Address& a);
bool is_unspecified(const Address& a);  // 0.0.0.0 or ::
bool is_loopback(const Address& a);     // 127.0.0.0/8 or ::1

// `h` with the address's 16 bytes mixed in (for the hash of a key that holds addresses).
inline std::uint64_t mix_address(std::uint64_t h, const Address& a) {
  std::uint64_t hi = 0;
  std::uint64_t lo = 0;
  std::memcpy(&hi, a.data(), 8);
  std::memcpy(&lo, a.data() + 8, 8);
  h = (h ^ hi) * 0x9E3779B97F4A7C15U;
  return (h ^ lo) * 0x9E3779B97F4A7C15U;
}

// An address and a TCP port (0: none, the kernel cleared it).
struct Endpoint {
  Address ip{};
  std::uint16_t port = 0;
  bool operator==(const Endpoint&) const = default;
};

// A network in CIDR form, IPv4 held as IPv4-mapped (its prefix length + 96).
struct Cidr {
  Address base{};
  unsigned prefix = 0;  // 0..128 over the 16-byte form
  [[nodiscard]] bool contains(const Address& a) const;
  bool operator==(const Cidr&) const = default;
};

// "10.0.0.0/8", "2001:db8::/32", or a bare address (a /32 or /128). nullopt when the text
// is not one, or has host bits set beyond the prefix.
std::optional<Cidr> parse_cidr(std::string_view text);
std::string cidr_text(const Cidr& cidr);

// The networks a site calls inside (config key internal_networks).
class NetworkSet {
 public:
  NetworkSet() = default;
  explicit NetworkSet(std::vector<Cidr> networks) : networks_(std::move(networks)) {}
  // The contract's default: RFC 1918, CGNAT, link-local, ULA.
  static const NetworkSet& default_internal();

  [[nodiscard]] bool contains(const Address& a) const;
  [[nodiscard]] const std::vector<Cidr>& networks() const { return networks_; }

 private:
  std::vector<Cidr> networks_;
};

// The addresses assigned in one network namespace (rtnetlink RTM_GETADDR). With
// loopback, they are "this host" for direction.
class HostAddresses {
 public:
  void add(const Address& a) { addresses_.insert(a); }
  void clear() { addresses_.clear(); }
  // Loopback, or assigned here.
  [[nodiscard]] bool is_this_host(const Address& a) const;
  [[nodiscard]] std::size_t size() const { return addresses_.size(); }

 private:
  struct Hash {
    std::size_t operator()(const Address& a) const;
  };
  std::unordered_set<Address, Hash> addresses_;
};

// Where an address stands relative to the network perimeter (output contract).
enum class Zone : std::uint8_t { kThisHost, kInside, kOutside };

struct Perimeter {
  const HostAddresses* host = nullptr;                           // null: loopback only
  const NetworkSet* internal = &NetworkSet::default_internal();  // never null
  [[nodiscard]] Zone zone(const Address& a) const;
};

}  // namespace sockstate::flow
