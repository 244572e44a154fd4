#include "sockstate/ocsf/community_id.h"

#include <nettle/base64.h>
#include <nettle/sha1.h>

#include <cstring>
#include <utility>

namespace sockstate::ocsf {
namespace {

constexpr std::uint8_t kProtoIcmp = 1;
constexpr std::uint8_t kProtoTcp = 6;
constexpr std::uint8_t kProtoUdp = 17;
constexpr std::uint8_t kProtoIcmp6 = 58;
constexpr std::uint8_t kProtoSctp = 132;

// seed(2) + two IPv6 addresses(32) + proto(1) + pad(1) + ports(4).
constexpr std::size_t kMaxInput = 2 + 16 + 16 + 1 + 1 + 2 + 2;

struct IcmpPair {
  std::uint8_t type;
  std::uint8_t counterpart;
};

// The spec takes ICMP "ports" from Zeek (ICMP4_counterpart / ICMP6_counterpart): a type with
// a counterpart is hashed as (type, counterpart) and may be reordered like a port pair; any
// other type is hashed as (type, code) in the order seen.
constexpr std::array<IcmpPair, 10> kIcmp4Pairs{{
    {8, 0},    // echo request / reply
    {0, 8},    //
    {13, 14},  // timestamp / reply
    {14, 13},  //
    {15, 16},  // information request / reply
    {16, 15},  //
    {10, 9},   // router solicitation / advertisement
    {9, 10},   //
    {17, 18},  // address mask request / reply
    {18, 17},  //
}};
constexpr std::array<IcmpPair, 12> kIcmp6Pairs{{
    {128, 129},  // echo request / reply
    {129, 128},  //
    {130, 131},  // MLD listener query / report
    {131, 130},  //
    {133, 134},  // router solicitation / advertisement
    {134, 133},  //
    {135, 136},  // neighbour solicitation / advertisement
    {136, 135},  //
    {139, 140},  // node information (who-are-you) query / reply
    {140, 139},  //
    {144, 145},  // home agent address discovery request / reply
    {145, 144},  //
}};

template <std::size_t N>
constexpr bool pairs_are_symmetric(const std::array<IcmpPair, N>& pairs) {
  for (const IcmpPair& p : pairs) {
    bool back = false;
    for (const IcmpPair& q : pairs) {
      back = back || (q.type == p.counterpart && q.counterpart == p.type);
    }
    if (!back) {
      return false;
    }
  }
  return true;
}
static_assert(pairs_are_symmetric(kIcmp4Pairs) && pairs_are_symmetric(kIcmp6Pairs));

template <std::size_t N>
const IcmpPair* find_pair(const std::array<IcmpPair, N>& pairs, std::uint16_t type) {
  for (const IcmpPair& p : pairs) {
    if (p.type == type) {
      return &p;
    }
  }
  return nullptr;
}

void put16(std::uint8_t*& out, std::uint16_t v) {
  *out++ = static_cast<std::uint8_t>(v >> 8);
  *out++ = static_cast<std::uint8_t>(v & 0xFF);
}

// One flow as the spec hashes it: the endpoints in the order they are hashed, and the
// "ports" its protocol gives it.
struct HashTuple {
  const std::uint8_t* a = nullptr;
  const std::uint8_t* b = nullptr;
  std::size_t addr_len = 0;
  std::uint16_t a_port = 0;
  std::uint16_t b_port = 0;
  std::uint8_t protocol = 0;
  bool has_ports = false;
};

// Sets the tuple's ports as its protocol defines them; true when the flow is one-way (an
// ICMP type without a counterpart), whose endpoints keep the order seen.
bool apply_port_rule(HashTuple& t) {
  switch (t.protocol) {
    case kProtoTcp:
    case kProtoUdp:
    case kProtoSctp:
      t.has_ports = true;
      return false;
    case kProtoIcmp:
    case kProtoIcmp6: {
      t.has_ports = true;
      const IcmpPair* pair = t.protocol == kProtoIcmp ? find_pair(kIcmp4Pairs, t.a_port)
                                                      : find_pair(kIcmp6Pairs, t.a_port);
      if (pair == nullptr) {
        return true;
      }
      t.b_port = pair->counterpart;
      return false;
    }
    default:
      t.a_port = 0;
      t.b_port = 0;
      return false;
  }
}

HashTuple hash_tuple(const Address& src, std::uint16_t src_port, const Address& dst,
                     std::uint16_t dst_port, std::uint8_t protocol) {
  const bool v4 = flow::is_ipv4_mapped(src) && flow::is_ipv4_mapped(dst);
  const std::size_t offset = v4 ? 12 : 0;
  HashTuple t;
  t.a = src.data() + offset;
  t.b = dst.data() + offset;
  t.addr_len = v4 ? 4 : 16;
  t.a_port = src_port;
  t.b_port = dst_port;
  t.protocol = protocol;
  const bool one_way = apply_port_rule(t);
  if (!one_way) {
    // Both directions of a flow hash alike: the smaller endpoint goes first.
    const int cmp = std::memcmp(t.a, t.b, t.addr_len);
    if (cmp > 0 || (cmp == 0 && t.a_port > t.b_port)) {
      std::swap(t.a, t.b);
      std::swap(t.a_port, t.b_port);
    }
  }
  return t;
}

// The spec's hash input: seed, addresses, protocol, a pad byte, then the ports if any.
CommunityIdDigest digest_of(const HashTuple& t, std::uint16_t seed) {
  std::array<std::uint8_t, kMaxInput> input{};
  std::uint8_t* out = input.data();
  put16(out, seed);
  std::memcpy(out, t.a, t.addr_len);
  out += t.addr_len;
  std::memcpy(out, t.b, t.addr_len);
  out += t.addr_len;
  *out++ = t.protocol;
  *out++ = 0;
  if (t.has_ports) {
    put16(out, t.a_port);
    put16(out, t.b_port);
  }

  CommunityIdDigest digest{};
  static_assert(std::tuple_size_v<CommunityIdDigest> == SHA1_DIGEST_SIZE);
  const auto input_len = static_cast<std::size_t>(out - input.data());
  sha1_ctx ctx{};
  sha1_init(&ctx);
  sha1_update(&ctx, input_len, input.data());
  sha1_digest(&ctx, digest.size(), digest.data());
  return digest;
}

}  // namespace

CommunityIdDigest community_id_v1_digest(const Address& src, std::uint16_t src_port,
                                         const Address& dst, std::uint16_t dst_port,
                                         std::uint8_t protocol, std::uint16_t seed) {
  return digest_of(hash_tuple(src, src_port, dst, dst_port, protocol), seed);
}

std::string community_id_v1(const Address& src, std::uint16_t src_port, const Address& dst,
                            std::uint16_t dst_port, std::uint8_t protocol, std::uint16_t seed) {
  std::string id;
  id.reserve(kCommunityIdLength);
  append_community_id_v1(id, src, src_port, dst, dst_port, protocol, seed);
  return id;
}

void append_community_id_v1(std::string& out, const Address& src, std::uint16_t src_port,
                            const Address& dst, std::uint16_t dst_port, std::uint8_t protocol,
                            std::uint16_t seed) {
  const CommunityIdDigest digest =
      community_id_v1_digest(src, src_port, dst, dst_port, protocol, seed);
  static_assert(BASE64_ENCODE_RAW_LENGTH(std::tuple_size_v<CommunityIdDigest>) + 2 ==
                kCommunityIdLength);
  const std::size_t at = out.size();
  out.resize(at + kCommunityIdLength);
  char* p = out.data() + at;
  *p++ = '1';
  *p++ = ':';
  base64_encode_raw(p, digest.size(), digest.data());
}

}  // namespace sockstate::ocsf
