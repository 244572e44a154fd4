#pragma once

#include <array>
#include <cstdint>
#include <string>

#include "sockstate/flow/address.h"

namespace sockstate::ocsf {

using flow::Address;

// Community ID v1 flow hashing (github.com/corelight/community-id-spec), the flow key Zeek,
// Suricata and most SIEMs compute: "1:" + base64(SHA-1(seed | saddr | daddr | proto | 0 |
// sport | dport)), all in network byte order, with the endpoints ordered so that the smaller
// address (then, for equal addresses, the smaller port) comes first. Both directions of a
// flow therefore get the same ID.
//
// Addresses are the project's 16-byte form. When both are IPv4-mapped they hash as 4-byte
// IPv4 addresses (what a monitor on the wire sees for an AF_INET or dual-stack IPv4 flow);
// otherwise both hash as 16 bytes.
//
// The ports mean what they mean for the protocol:
//  - TCP (6), UDP (17), SCTP (132): transport ports.
//  - ICMP (1), ICMPv6 (58): src_port is the ICMP type and dst_port the code, as Zeek and OCSF
//    log them. Request/reply types are paired as the spec (after Zeek) does, so an echo
//    request and its reply share an ID; other types are one-way and never reordered.
//  - Any other protocol: the ports are ignored and only the addresses and protocol hash.
//
// The seed separates ID domains; 0 is the default everyone uses.
inline constexpr std::size_t kCommunityIdLength = 30;  // "1:" + 28 base64 characters
using CommunityIdDigest = std::array<std::uint8_t, 20>;

// The ID. One allocation: the returned string. (The spec's empty string for "no hash could
// be computed" cannot happen: SHA-1 over at most 40 bytes cannot fail.)
std::string community_id_v1(const Address& src, std::uint16_t src_port, const Address& dst,
                            std::uint16_t dst_port, std::uint8_t protocol, std::uint16_t seed = 0);

// Appends the ID to `out` (the record hot path).
void append_community_id_v1(std::string& out, const Address& src, std::uint16_t src_port,
                            const Address& dst, std::uint16_t dst_port, std::uint8_t protocol,
                            std::uint16_t seed = 0);

// The raw SHA-1 behind the ID (the spec's "no base64" form), for tests and troubleshooting.
CommunityIdDigest community_id_v1_digest(const Address& src, std::uint16_t src_port,
                                         const Address& dst, std::uint16_t dst_port,
                                         std::uint8_t protocol, std::uint16_t seed = 0);

}  // namespace sockstate::ocsf
