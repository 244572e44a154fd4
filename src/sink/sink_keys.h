// Private to the sink library: readers of the sink keys that more than one sink type
// takes (a path: file, unix and kafka's TLS files; a host: tcp and kafka's brokers).
#pragma once

#include <string>

#include "sockstate/document/reader.h"
#include "sockstate/sink/sink_config.h"

namespace sockstate::sink::detail {

// An absolute path that open() (or, for kUnix, connect()) would take: for kUnix at most
// 107 bytes (sun_path), otherwise naming a file rather than a directory.
std::string as_path(const document::json& v, const std::string& path, SinkType type);

// An IP address or a host name, without brackets or a port.
std::string as_host(const document::json& v, const std::string& path);

}  // namespace sockstate::sink::detail
