#include "agent/runtime/catalog.hpp"

#include <gtest/gtest.h>

#include "tests/runtime/drive.hpp"
#include "tests/runtime/fake_etcd.hpp"

namespace sidecar::runtime {
namespace {

using namespace std::chrono_literals;
using testing::FakeEtcd;
using testing::run_until;

// Counts what a consumer is told.
class Recorder final : public CatalogListener {
 public:
  void on_catalog_change(const CatalogService& service, const CatalogChange& change) override {
    ++calls;
    snapshots += change.snapshot ? 1 : 0;
    changed += change.changed;
    last_index = service.index();
    last_size = service.set().size();
    if (change.ids != nullptr) ids.insert(ids.end(), change.ids->begin(), change.ids->end());
  }
  int calls = 0;
  int snapshots = 0;
  size_t changed = 0;
  int64_t last_index = 0;
  size_t last_size = 0;
  std::vector<std::string> ids;
};

std::string value(int port) { return R"({"address":"10.0.0.1","port":)" + std::to_string(port) + "}"; }

CatalogOptions options(int64_t page = 5000, core::CatalogLimits limits = {}) {
  CatalogOptions o;
  o.etcd_prefix = "/services";
  o.limits = limits;
  o.watch.range_page = page;
  o.watch.retry.failed = {.initial = 1ms, .max = 1ms, .multiplier = 2.0, .jitter = 0.0};
  o.watch.retry.canceled = o.watch.retry.failed;
  return o;
}

// Stops the catalog and joins it, with its subscriptions released first as the agent does.
bool stop_and_join(asio::io_context& io, Catalog& catalog) {
  catalog.stop();
  return testing::join(io, catalog);
}

// Runs one lookup in the test's scope; `result` is set when it has answered.
struct LookupProbe {
  std::optional<Catalog::Lookup> result;
  size_t instances = 0;  // read while the answer is valid: before the probe's coroutine suspends again
  asio::awaitable<void> run(Catalog& catalog, std::string service, std::chrono::milliseconds timeout) {
    auto r = co_await catalog.lookup(std::move(service), timeout);
    if (r.service != nullptr) instances = r.service->set().size();
    result = std::move(r);
  }
};

TEST(Catalog, TwoConsumersOfOneServiceShareOneWatch) {
  asio::io_context io;
  FakeEtcd etcd(io);
  etcd.put("/services/order/1", value(8080));
  Catalog catalog(io, etcd, options());
  catalog.start();
  Recorder a, b;
  auto sa = catalog.subscribe("order", a);
  auto sb = catalog.subscribe("order", b);
  ASSERT_TRUE(run_until(io, [&] { return a.snapshots == 1 && b.snapshots == 1 && etcd.open_watches() == 1; }));
  EXPECT_EQ(etcd.watches().size(), 1u);
  EXPECT_EQ(etcd.ranges(), 1);
  etcd.put("/services/order/2", value(8081));
  ASSERT_TRUE(run_until(io, [&] { return a.changed == 2 && b.changed == 2; }));
  EXPECT_EQ(a.last_size, 2u);
  EXPECT_EQ(b.ids, std::vector<std::string>{"2"});
  EXPECT_EQ(etcd.watches().size(), 1u);  // still one stream, one watch
  sa.reset();
  sb.reset();
  ASSERT_TRUE(run_until(io, [&] { return etcd.open_watches() == 0; }));
  EXPECT_EQ(catalog.find("order"), nullptr);
  EXPECT_TRUE(stop_and_join(io, catalog));
}

TEST(Catalog, TheIndexIsPerServiceAndMovesOnlyWithThatServicesChanges) {
  asio::io_context io;
  FakeEtcd etcd(io);
  etcd.put("/services/a/1", value(1));
  etcd.put("/services/b/1", value(1));
  Catalog catalog(io, etcd, options());
  catalog.start();
  Recorder ra, rb;
  auto sa = catalog.subscribe("a", ra);
  auto sb = catalog.subscribe("b", rb);
  ASSERT_TRUE(run_until(io, [&] { return ra.snapshots == 1 && rb.snapshots == 1 && etcd.open_watches() == 2; }));
  const int64_t a_index = catalog.find("a")->index();
  EXPECT_GT(a_index, 0);
  const int64_t put_b = etcd.put("/services/b/2", value(2));
  ASSERT_TRUE(run_until(io, [&] { return rb.changed == 2; }));
  EXPECT_EQ(catalog.find("b")->index(), put_b);
  EXPECT_EQ(catalog.find("a")->index(), a_index);
  EXPECT_EQ(ra.calls, 1);  // only its snapshot: b's change woke no one of a
  // A rewrite with the same bytes changes nothing a consumer sees: no call, index kept.
  etcd.put("/services/b/2", value(2));
  const int64_t marker = etcd.put("/services/b/3", value(3));
  ASSERT_TRUE(run_until(io, [&] { return rb.changed == 3; }));
  EXPECT_EQ(rb.calls, 3);
  EXPECT_EQ(catalog.find("b")->index(), marker);
  sa.reset();
  sb.reset();
  EXPECT_TRUE(stop_and_join(io, catalog));
}

TEST(Catalog, TheFirstReadIsPagedAtOneRevisionAndTheWatchReplaysWhatChangedMeanwhile) {
  asio::io_context io;
  FakeEtcd etcd(io);
  for (int i = 10; i < 22; ++i) etcd.put("/services/order/" + std::to_string(i), value(i));
  const int64_t before = etcd.revision();
  // Between the first and the second page another writer adds one key and deletes one.
  etcd.before_range = [&](int range) {
    if (range != 2) return;
    etcd.put("/services/order/00", value(1));
    etcd.erase("/services/order/21");
  };
  Catalog catalog(io, etcd, options(/*page=*/5));
  catalog.start();
  Recorder r;
  auto s = catalog.subscribe("order", r);
  ASSERT_TRUE(run_until(io, [&] { return r.snapshots == 1; }));
  // Three pages (5 + 5 + 2) of the store as it was at the first page's revision.
  EXPECT_EQ(etcd.ranges(), 3);
  EXPECT_EQ(catalog.find("order")->watch_stats().range_pages, 3u);
  EXPECT_EQ(r.last_size, 12u);
  EXPECT_EQ(catalog.find("order")->index(), before);
  EXPECT_NE(catalog.find("order")->set().find("21"), nullptr);
  // The watch starts after that revision: the add and the delete arrive as events.
  ASSERT_TRUE(run_until(io, [&] { return r.changed >= 2 && catalog.find("order")->set().size() == 12; }));
  EXPECT_NE(catalog.find("order")->set().find("00"), nullptr);
  EXPECT_EQ(catalog.find("order")->set().find("21"), nullptr);
  EXPECT_EQ(etcd.watches()[0]->request().start_revision, before + 1);
  s.reset();
  EXPECT_TRUE(stop_and_join(io, catalog));
}

TEST(Catalog, APagedReadThatMeetsACompactionReadsAgainAtTheLatestRevision) {
  asio::io_context io;
  FakeEtcd etcd(io);
  for (int i = 10; i < 20; ++i) etcd.put("/services/order/" + std::to_string(i), value(i));
  etcd.before_range = [&](int range) {
    if (range != 2) return;
    etcd.put("/services/order/30", value(30));
    etcd.compact(etcd.revision());  // the first page's revision is gone
  };
  Catalog catalog(io, etcd, options(/*page=*/4));
  catalog.start();
  Recorder r;
  auto s = catalog.subscribe("order", r);
  ASSERT_TRUE(run_until(io, [&] { return r.snapshots == 1; }));
  EXPECT_EQ(r.last_size, 11u);  // the second read, at the latest revision, has the new key
  EXPECT_EQ(catalog.find("order")->index(), etcd.revision());
  // 1 page, refused, then 3 pages (4 + 4 + 3).
  EXPECT_EQ(etcd.ranges(), 5);
  s.reset();
  EXPECT_TRUE(stop_and_join(io, catalog));
}

TEST(Catalog, ALookupStartsAWatchAnswersOnceSyncedAndItExpiresWhenIdle) {
  asio::io_context io;
  FakeEtcd etcd(io);
  etcd.put("/services/pay/1", value(9000));
  Catalog catalog(io, etcd, options(5000, {.idle_timeout = 10min, .max_services = 10}));
  catalog.start();
  TaskScope scope(io, "test lookups");
  LookupProbe probe;
  scope.spawn("lookup", probe.run(catalog, "pay", 500ms));
  ASSERT_TRUE(run_until(io, [&] { return probe.result.has_value(); }));
  EXPECT_EQ(probe.result->status, Catalog::Lookup::Status::kOk);
  EXPECT_EQ(probe.instances, 1u);
  ASSERT_TRUE(run_until(io, [&] { return etcd.open_watches() == 1; }));
  EXPECT_EQ(catalog.policy().on_demand(), 1u);

  // Nine minutes later it is still watched; ten minutes after the lookup it is stopped.
  testing::advance_clock(io, 9min);
  ASSERT_TRUE(run_until(io, [&] { return true; }));
  EXPECT_NE(catalog.find("pay"), nullptr);
  testing::advance_clock(io, 1min);
  ASSERT_TRUE(run_until(io, [&] { return catalog.find("pay") == nullptr && etcd.open_watches() == 0; }));
  EXPECT_EQ(catalog.stats().expired_total, 1u);
  RuntimeClock::reset();
  EXPECT_TRUE(stop_and_join(io, catalog));
  EXPECT_TRUE(testing::join(io, scope));
}

TEST(Catalog, ALookupPastMaxServicesIsRefusedWithAReason) {
  asio::io_context io;
  FakeEtcd etcd(io);
  Catalog catalog(io, etcd, options(5000, {.idle_timeout = 10min, .max_services = 1}));
  catalog.start();
  TaskScope scope(io, "test lookups");
  LookupProbe first, second;
  scope.spawn("first", first.run(catalog, "a", 500ms));
  ASSERT_TRUE(run_until(io, [&] { return first.result.has_value(); }));
  scope.spawn("second", second.run(catalog, "b", 500ms));
  ASSERT_TRUE(run_until(io, [&] { return second.result.has_value(); }));
  EXPECT_EQ(first.result->status, Catalog::Lookup::Status::kOk);
  EXPECT_EQ(second.result->status, Catalog::Lookup::Status::kRefused);
  EXPECT_NE(second.result->error.find("catalog.max_services"), std::string::npos) << second.result->error;
  EXPECT_EQ(catalog.policy().refused_total(), 1u);
  EXPECT_EQ(etcd.watches().size(), 1u);
  EXPECT_TRUE(stop_and_join(io, catalog));
  EXPECT_TRUE(testing::join(io, scope));
}

TEST(Catalog, ALookupGivesUpAfterItsTimeoutWhileEtcdIsSilent) {
  asio::io_context io;
  FakeEtcd etcd(io);
  etcd.set_silent(true, 2s);
  auto o = options();
  o.watch.range_timeout = 100ms;  // the stop below waits for the Range in flight
  Catalog catalog(io, etcd, o);
  catalog.start();
  TaskScope scope(io, "test lookups");
  LookupProbe probe;
  const auto started = std::chrono::steady_clock::now();
  scope.spawn("lookup", probe.run(catalog, "quiet", 50ms));
  ASSERT_TRUE(run_until(io, [&] { return probe.result.has_value(); }));
  EXPECT_EQ(probe.result->status, Catalog::Lookup::Status::kNotSynced);
  EXPECT_LT(std::chrono::steady_clock::now() - started, 1s);
  EXPECT_NE(catalog.find("quiet"), nullptr);  // still watched: the next lookup may find it synced
  etcd.set_silent(false);
  EXPECT_TRUE(stop_and_join(io, catalog));
  EXPECT_TRUE(testing::join(io, scope));
}

TEST(Catalog, ALookupWaitingForTheFirstSyncEndsWhenTheCatalogStops) {
  asio::io_context io;
  FakeEtcd etcd(io);
  etcd.set_silent(true, 2s);
  auto o = options();
  o.watch.range_timeout = 50ms;
  Catalog catalog(io, etcd, o);
  catalog.start();
  TaskScope scope(io, "test lookups");
  LookupProbe probe;
  scope.spawn("lookup", probe.run(catalog, "quiet", 10s));
  ASSERT_TRUE(run_until(io, [&] { return catalog.find("quiet") != nullptr; }));
  const auto stopped_at = std::chrono::steady_clock::now();
  catalog.stop();
  ASSERT_TRUE(run_until(io, [&] { return probe.result.has_value(); }));
  EXPECT_EQ(probe.result->status, Catalog::Lookup::Status::kStopping);
  EXPECT_LT(std::chrono::steady_clock::now() - stopped_at, 1s);  // not its 10 s timeout
  EXPECT_TRUE(testing::join(io, catalog));
  EXPECT_TRUE(testing::join(io, scope));
}

}  // namespace
}  // namespace sidecar::runtime
