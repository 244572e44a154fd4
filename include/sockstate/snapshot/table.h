#pragma once

#include <string>

#include "sockstate/flow/observation.h"

namespace sockstate::snapshot {

// `sockstate snapshot --format table`: for people at a terminal, one line per socket with
// the columns an `ss -tanp` user expects. Local and peer are the socket's own ends, as the
// host sees them (not the record's src/dst, which follow who connected).
void append_table_header(std::string& out);
void append_table_row(const flow::Observation& obs, std::string& out);

}  // namespace sockstate::snapshot
