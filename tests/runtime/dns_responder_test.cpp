// frontend::dns::DnsResponder over a catalog on FakeEtcd, no sockets: the first query of a service waits
// for its sync, later ones are answered from memory, a change invalidates the prepared answer, and a lookup
// the catalog refuses is SERVFAIL.
#include "agent/frontend/dns/dns_responder.hpp"

#include <gtest/gtest.h>

#include <optional>
#include <string>
#include <vector>

extern "C" {
#include <libknot/libknot.h>
}

#include "tests/runtime/drive.hpp"
#include "tests/runtime/fake_etcd.hpp"

namespace sidecar::frontend::dns {
namespace {

using namespace std::chrono_literals;
using runtime::Catalog;
using runtime::TaskScope;
using sidecar::runtime::testing::FakeEtcd;
using sidecar::runtime::testing::run_until;

std::vector<uint8_t> query(const std::string& name, uint16_t qtype) {
  std::vector<uint8_t> wire = {0x12, 0x34, 0x00, 0x00, 0x00, 0x01, 0, 0, 0, 0, 0, 0};
  size_t start = 0;
  while (start < name.size()) {
    size_t dot = name.find('.', start);
    if (dot == std::string::npos) dot = name.size();
    wire.push_back(static_cast<uint8_t>(dot - start));
    wire.insert(wire.end(), name.begin() + static_cast<std::ptrdiff_t>(start), name.begin() + static_cast<std::ptrdiff_t>(dot));
    start = dot + 1;
  }
  wire.insert(wire.end(), {0, static_cast<uint8_t>(qtype >> 8), static_cast<uint8_t>(qtype & 0xff), 0, 1});
  return wire;
}

struct Answer {
  int rcode = -1;
  int answers = -1;
};

// Runs one message through the responder as the server does: waits for the sync when it must.
struct Probe {
  std::optional<Answer> answer;
  asio::awaitable<void> run(DnsResponder& responder, std::vector<uint8_t> wire) {
    std::optional<DnsResponder::Exchange> ex = responder.begin(wire.data(), wire.size(), false);
    if (responder.needs_sync(*ex) || responder.refresh_due(*ex)) co_await responder.lookup(*ex);
    std::vector<uint8_t> out(kMaxTcpMessage);
    const size_t n = responder.finish(*ex, out.data());
    answer = Answer{knot_wire_get_rcode(out.data()), n >= 12 ? knot_wire_get_ancount(out.data()) : -1};
  }
};

runtime::CatalogOptions catalog_options(size_t max_services) {
  runtime::CatalogOptions o;
  o.limits = core::CatalogLimits{.idle_timeout = 10min, .max_services = max_services};
  return o;
}

Answer ask(asio::io_context& io, TaskScope& scope, DnsResponder& responder, const std::string& name) {
  Probe probe;
  scope.spawn("dns probe", probe.run(responder, query(name, 1)));
  EXPECT_TRUE(run_until(io, [&] { return probe.answer.has_value(); }));
  return probe.answer.value_or(Answer{});
}

TEST(DnsResponder, FirstQueryWaitsForTheSyncThenAnswersFromMemoryAndFollowsChanges) {
  asio::io_context io;
  FakeEtcd etcd(io);
  etcd.put("/services/order/1", R"({"address":"10.0.0.1","port":80})");
  Catalog catalog(io, etcd, catalog_options(10));
  catalog.start();
  TaskScope scope(io, "test");
  DnsResponder responder(catalog, DnsOptions{});
  const std::vector<uint8_t> first = query("order.service.sidecar", 1);
  std::optional<DnsResponder::Exchange> ex = responder.begin(first.data(), first.size(), false);
  ASSERT_TRUE(ex.has_value());
  EXPECT_TRUE(responder.needs_sync(*ex)) << "nothing watches order yet";
  const Answer a = ask(io, scope, responder, "order.service.sidecar");
  EXPECT_EQ(a.rcode, KNOT_RCODE_NOERROR);
  EXPECT_EQ(a.answers, 1);
  ex = responder.begin(first.data(), first.size(), false);
  EXPECT_FALSE(responder.needs_sync(*ex)) << "synced: answered from memory";
  EXPECT_EQ(responder.cache_size(), 1u);

  const int64_t before = catalog.find("order")->index();
  etcd.put("/services/order/2", R"({"address":"10.0.0.2","port":80})");
  ASSERT_TRUE(run_until(io, [&] { return catalog.find("order")->index() != before; }));
  EXPECT_EQ(ask(io, scope, responder, "order.service.sidecar").answers, 2) << "the prepared answer was rebuilt";
  EXPECT_EQ(ask(io, scope, responder, "nobody.service.sidecar").rcode, KNOT_RCODE_NXDOMAIN);
  catalog.stop();
  EXPECT_TRUE(sidecar::runtime::testing::join(io, catalog));
  EXPECT_TRUE(sidecar::runtime::testing::join(io, scope));
}

TEST(DnsResponder, ALookupTheCatalogRefusesIsServfailAndCounted) {
  asio::io_context io;
  FakeEtcd etcd(io);
  Catalog catalog(io, etcd, catalog_options(1));
  catalog.start();
  TaskScope scope(io, "test");
  DnsResponder responder(catalog, DnsOptions{});
  EXPECT_EQ(ask(io, scope, responder, "one.service.sidecar").rcode, KNOT_RCODE_NXDOMAIN);
  EXPECT_EQ(ask(io, scope, responder, "two.service.sidecar").rcode, KNOT_RCODE_SERVFAIL);
  EXPECT_EQ(responder.stats().lookups_refused, 1u);
  EXPECT_EQ(ask(io, scope, responder, "example.com").rcode, KNOT_RCODE_REFUSED);
  catalog.stop();
  EXPECT_TRUE(sidecar::runtime::testing::join(io, catalog));
  EXPECT_TRUE(sidecar::runtime::testing::join(io, scope));
}

}  // namespace
}  // namespace sidecar::frontend::dns
