#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace sockstate::ocsf {

// OCSF TcpStateIdEnum (1.8.0). There is no 99 Other in this enum.
inline constexpr std::array<std::string_view, 12> kTcpStateCaptions = {
    "Unknown",   "ESTABLISHED", "SYN-SENT",   "SYN-RECEIVED", "FIN-WAIT-1", "FIN-WAIT-2",
    "TIME-WAIT", "CLOSED",      "CLOSE-WAIT", "LAST-ACK",     "LISTEN",     "CLOSING",
};

// The whole kernel -> OCSF translation (output contract), index = kernel idiag_state
// (include/net/tcp_states.h): 1..11 are the same number, 12 (TCP_NEW_SYN_RECV, request
// sockets) is 3 SYN-RECEIVED, 13 (TCP_BOUND_INACTIVE) is 7 CLOSED; anything else is 0
// Unknown. What a snapshot reports a state as is flow::snapshot_activity(): what a socket
// means is flow's, how its state is written is this table's.
struct KernelStateRow {
  std::uint8_t tcp_state_id;  // OCSF TcpStateIdEnum
};
inline constexpr std::array<KernelStateRow, 14> kKernelStates = {{
    {0},   // 0: not a TCP state
    {1},   // TCP_ESTABLISHED
    {2},   // TCP_SYN_SENT
    {3},   // TCP_SYN_RECV
    {4},   // TCP_FIN_WAIT1
    {5},   // TCP_FIN_WAIT2
    {6},   // TCP_TIME_WAIT
    {7},   // TCP_CLOSE
    {8},   // TCP_CLOSE_WAIT
    {9},   // TCP_LAST_ACK
    {10},  // TCP_LISTEN
    {11},  // TCP_CLOSING
    {3},   // TCP_NEW_SYN_RECV
    {7},   // TCP_BOUND_INACTIVE
}};
static_assert(kKernelStates.size() == 14, "one row per kernel TCP state 0..13");

constexpr KernelStateRow kernel_state_row(unsigned kernel_state) {
  return kernel_state < kKernelStates.size() ? kKernelStates[kernel_state] : KernelStateRow{0};
}

constexpr std::uint8_t tcp_state_id(unsigned kernel_state) {
  return kernel_state_row(kernel_state).tcp_state_id;
}

// The kernel states mask (bit 1 << kernel state) for a --state word: a contract state
// name (case-insensitive, '-' or '_'), or `all`, `connected`, `bound`. nullopt when the
// word is not known.
std::optional<std::uint32_t> state_mask_for_name(std::string_view name);
// The words state_mask_for_name() knows, for messages and --help: "established, syn-sent,
// ..., all, connected, bound" (its aliases left out).
std::string state_names();

}  // namespace sockstate::ocsf
