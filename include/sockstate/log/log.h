#pragma once

#include <cstdint>
#include <string>

namespace sockstate::log {

// Diagnostics go to stderr through spdlog ("sockstate: warn: ..."), written so that a
// stalled reader (a full pipe, a journald that stopped reading) never stops the caller:
// a line stderr cannot take at once is dropped and counted, and the next line that gets
// through says how many were lost. Collection and SIGTERM never wait on stderr.
void setup(const std::string& level);

// Lines dropped because stderr could not take them, since setup().
std::uint64_t dropped_lines();

}  // namespace sockstate::log
