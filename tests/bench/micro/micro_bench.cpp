// Google Benchmark micro-benchmarks of the data path's three steps, one socket at a time:
// parsing a recorded sock_diag dump, deciding what a socket means (initiator, direction),
// and rendering its record. Built with -DSOCKSTATE_BUILD_BENCH=ON (Debian's
// libbenchmark-dev); run build/tests/bench/micro/micro_bench. Items/s is sockets/s.
#include <benchmark/benchmark.h>
#include <sys/socket.h>

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "netlink_fixture.h"
#include "socket_entries.h"
#include "sockstate/flow/observation.h"
#include "sockstate/flow/orientation.h"
#include "sockstate/netlink/parser.h"
#include "sockstate/ocsf/record.h"

namespace {

using sockstate::netlink::DumpParser;
using sockstate::netlink::SocketEntry;
namespace flow = sockstate::flow;
namespace fixture = sockstate::netlink::testing;

// The recorded dump with tcp_info (tests/data/tcp_info.nldump), cut into its datagrams.
struct Dump {
  fixture::Bytes bytes = fixture::read_bytes(fixture::data_path("tcp_info.nldump"));
  std::vector<std::size_t> sizes =
      fixture::read_datagram_sizes(fixture::data_path("tcp_info.datagrams"));
};

void BM_ParseDump(benchmark::State& state) {
  const Dump dump;
  std::int64_t sockets = 0;
  for (auto _ : state) {
    DumpParser parser(fixture::kSsSeq, 0);
    std::size_t pos = 0;
    for (const std::size_t n : dump.sizes) {
      auto done = parser.parse(std::span<const std::uint8_t>(dump.bytes).subspan(pos, n),
                               [&](const SocketEntry& e) {
                                 benchmark::DoNotOptimize(e.cookie);
                                 ++sockets;
                               });
      pos += n;
      if (done && *done) {
        parser = DumpParser(fixture::kSsSeq, 0);  // the other family's dump follows
      }
    }
  }
  state.SetItemsProcessed(sockets);
}
BENCHMARK(BM_ParseDump);

SocketEntry established(std::uint16_t port) {
  SocketEntry e = sockstate::testing::make_entry(AF_INET, 1, "10.0.0.5", port, "192.0.2.10", 51514,
                                                 0x1000U + port);
  e.full_socket = true;
  e.has_tcp_info = true;
  e.inode = 4242;
  e.uid = 1000;
  e.info = sockstate::testing::info(5300, 1200, 12, 10, 250, 1);
  return e;
}

// 100 listeners, the host's address: what a busy server's table looks like to orient().
struct Table {
  flow::ListenerTable listeners;
  flow::HostAddresses host;
  Table() {
    for (std::uint16_t p = 1; p <= 100; ++p) {
      SocketEntry l =
          sockstate::testing::make_entry(AF_INET, 10, "0.0.0.0", p, "0.0.0.0", 0, 0x10 + p);
      l.full_socket = true;
      listeners.add(l);
    }
    host.add(
        flow::normalized_address(AF_INET, sockstate::testing::raw_address(AF_INET, "10.0.0.5")));
  }
};

void BM_Orient(benchmark::State& state) {
  const Table table;
  const flow::Perimeter perimeter{&table.host};
  const SocketEntry e = established(22);
  for (auto _ : state) {
    benchmark::DoNotOptimize(flow::orient(e, table.listeners, perimeter));
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()));
}
BENCHMARK(BM_Orient);

void BM_RenderRecord(benchmark::State& state) {
  const Table table;
  const flow::Perimeter perimeter{&table.host};
  sockstate::ocsf::RecordContext context;
  context.product_version = "0.1.0";
  context.host = {"web01", "0123456789abcdef0123456789abcdef",
                  "6b1f1a6e-2f7e-4f3c-9d2a-5c1e9b0d7a11", "6.18.0", ""};
  sockstate::ocsf::RecordBuilder builder(context);
  const SocketEntry e = established(22);
  const flow::Observation obs =
      flow::observe_snapshot(e, flow::orient(e, table.listeners, perimeter), 1796040000000);
  std::string out;
  std::int64_t bytes = 0;
  for (auto _ : state) {
    out.clear();
    builder.append(obs, out);
    bytes += static_cast<std::int64_t>(out.size());
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()));
  state.SetBytesProcessed(bytes);
}
BENCHMARK(BM_RenderRecord);

}  // namespace
