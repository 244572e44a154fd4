#include "sockstate/flow/address.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <algorithm>
#include <charconv>
#include <cstring>

namespace sockstate::flow {

Address normalized_address(std::uint8_t family, const std::array<std::uint8_t, 16>& raw) {
  if (family == AF_INET6) {
    return raw;
  }
  Address a{};
  a[10] = 0xFF;
  a[11] = 0xFF;
  std::memcpy(a.data() + 12, raw.data(), 4);
  return a;
}

bool is_ipv4_mapped(const Address& a) {
  return std::all_of(a.begin(), a.begin() + 10, [](std::uint8_t b) { return b == 0; }) &&
         a[10] == 0xFF && a[11] == 0xFF;
}

bool is_unspecified(const Address& a) {
  if (is_ipv4_mapped(a)) {
    return a[12] == 0 && a[13] == 0 && a[14] == 0 && a[15] == 0;
  }
  return std::all_of(a.begin(), a.end(), [](std::uint8_t b) { return b == 0; });
}

bool is_loopback(const Address& a) {
  if (is_ipv4_mapped(a)) {
    return a[12] == 127;
  }
  return std::all_of(a.begin(), a.begin() + 15, [](std::uint8_t b) { return b == 0; }) &&
         a[15] == 1;
}

bool Cidr::contains(const Address& a) const {
  const unsigned whole = prefix / 8;
  if (std::memcmp(a.data(), base.data(), whole) != 0) {
    return false;
  }
  const unsigned bits = prefix % 8;
  if (bits == 0) {
    return true;
  }
  const auto mask = static_cast<std::uint8_t>(0xFFU << (8 - bits));
  return (a[whole] & mask) == (base[whole] & mask);
}

std::optional<Cidr> parse_cidr(std::string_view text) {
  const auto slash = text.find('/');
  const std::string host(text.substr(0, slash));
  Cidr c;
  unsigned max = 0;
  std::array<std::uint8_t, 16> raw{};
  if (::inet_pton(AF_INET, host.c_str(), raw.data()) == 1) {
    c.base = normalized_address(AF_INET, raw);
    max = 32;
  } else if (::inet_pton(AF_INET6, host.c_str(), raw.data()) == 1) {
    c.base = raw;
    max = 128;
  } else {
    return std::nullopt;
  }
  unsigned length = max;
  if (slash != std::string_view::npos) {
    const std::string_view digits = text.substr(slash + 1);
    const auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), length);
    if (digits.empty() || ec != std::errc() || end != digits.data() + digits.size() ||
        length > max) {
      return std::nullopt;
    }
  }
  c.prefix = length + (max == 32 ? 96 : 0);
  // Host bits must be clear: "10.1.2.3/8" is more likely a typo than a network.
  Cidr masked = c;
  for (unsigned bit = c.prefix; bit < 128; ++bit) {
    masked.base[bit / 8] = static_cast<std::uint8_t>(masked.base[bit / 8] & ~(0x80U >> (bit % 8)));
  }
  if (masked.base != c.base) {
    return std::nullopt;
  }
  return c;
}

std::string cidr_text(const Cidr& cidr) {
  std::array<char, INET6_ADDRSTRLEN> buf{};
  const bool v4 = is_ipv4_mapped(cidr.base) && cidr.prefix >= 96;
  if (v4) {
    ::inet_ntop(AF_INET, cidr.base.data() + 12, buf.data(), buf.size());
  } else {
    ::inet_ntop(AF_INET6, cidr.base.data(), buf.data(), buf.size());
  }
  return std::string(buf.data()) + "/" + std::to_string(v4 ? cidr.prefix - 96 : cidr.prefix);
}

const NetworkSet& NetworkSet::default_internal() {
  static const NetworkSet kDefault = [] {
    std::vector<Cidr> nets;
    for (const char* text : {"10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10",
                             "169.254.0.0/16", "fc00::/7", "fe80::/10"}) {
      nets.push_back(*parse_cidr(text));
    }
    return NetworkSet(std::move(nets));
  }();
  return kDefault;
}

bool NetworkSet::contains(const Address& a) const {
  return std::any_of(networks_.begin(), networks_.end(),
                     [&a](const Cidr& c) { return c.contains(a); });
}

std::size_t HostAddresses::Hash::operator()(const Address& a) const {
  std::uint64_t hi = 0;
  std::uint64_t lo = 0;
  std::memcpy(&hi, a.data(), 8);
  std::memcpy(&lo, a.data() + 8, 8);
  return std::hash<std::uint64_t>{}(hi * 0x9E3779B97F4A7C15ULL ^ lo);
}

bool HostAddresses::is_this_host(const Address& a) const {
  return is_loopback(a) || addresses_.contains(a);
}

Zone Perimeter::zone(const Address& a) const {
  if (is_loopback(a) || (host != nullptr && host->is_this_host(a))) {
    return Zone::kThisHost;
  }
  return internal->contains(a) ? Zone::kInside : Zone::kOutside;
}

}  // namespace sockstate::flow
