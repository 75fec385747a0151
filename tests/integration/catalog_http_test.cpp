// The catalog's HTTP view on a real agent against a real etcd, with instances written by another client:
// the service JSON with its index and selector, blocking queries that see every change in order and only
// their own service's, 10,000 waiters answered by one put (the 10,001st refused, /livez still answering),
// server-sent events, and answers from the last good set while etcd is down.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <sys/socket.h>

#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <future>
#include <map>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "tests/support/admin_client.hpp"
#include "tests/support/agent_fixture.hpp"
#include "tests/support/agent_process.hpp"
#include "tests/support/etcd_client.hpp"
#include "tests/support/parked_requests.hpp"
#include "tests/support/process.hpp"
#include "tests/support/wait.hpp"

namespace sidecar::test {
namespace {

using namespace std::chrono_literals;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

std::string value(std::string_view address, int port, std::string_view extra = "") {
  std::string v = R"({"address":")" + std::string(address) + R"(","port":)" + std::to_string(port);
  if (!extra.empty()) v += "," + std::string(extra);
  return v + "}";
}

// The ids of a discover-file JSON body, in order.
std::vector<std::string> ids_of(const std::string& body) {
  std::vector<std::string> ids;
  const auto doc = nlohmann::json::parse(body, nullptr, false);
  if (doc.is_discarded() || !doc.contains("instances")) return {"<not a service document: " + body + ">"};
  for (const auto& i : doc["instances"]) ids.push_back(i.value("id", ""));
  return ids;
}

int64_t index_of(const HttpResponse& r) {
  const std::string h = r.header("x-sidecar-index");
  return h.empty() ? -1 : std::stoll(h);
}

// Resident memory of a process in KiB (VmRSS), 0 when unreadable.
long rss_kib(pid_t pid) {
  const auto text = read_file("/proc/" + std::to_string(pid) + "/status");
  if (!text) return 0;
  const auto at = text->find("VmRSS:");
  return at == std::string::npos ? 0 : std::stol(text->substr(at + 6));
}

class HttpLookups : public EtcdAgentFixture {
 protected:
  // An agent that discovers `orders` (so the manifest has work) and answers lookups of any service.
  std::uint16_t start_agent(std::string_view extra_yaml = "") {
    const std::string yaml = etcd_manifest_section(etcd_->client_url()) +
                             "discover:\n  - service: orders\n    output: orders.json\n" + std::string(extra_yaml);
    agent_ = AgentProcess::start(yaml, {"--log-level", "debug"});
    if (!agent_) throw std::runtime_error("cannot start the agent");
    std::optional<std::uint16_t> port;
    if (!wait_until([&] { return (port = admin_port_from_log(agent_->output())).has_value(); }, 5s)) {
      throw std::runtime_error("the agent never logged its admin port:\n" + agent_->output());
    }
    return *port;
  }

  int64_t put(const std::string& service, const std::string& id, const std::string& v) {
    return client_->put("/services/" + service + "/" + id, v);
  }

  // Blocking queries waiting now, from /v1/status.
  int64_t waiting(std::uint16_t port) {
    const HttpResponse r = http_request(port, "GET", "/v1/status");
    const auto doc = nlohmann::json::parse(r.body, nullptr, false);
    if (doc.is_discarded() || !doc.contains("http")) return -1;
    return doc["http"]["waiting"].get<int64_t>();
  }

  // GET of the service until its index is at least `revision` (the catalog caught up with a put).
  HttpResponse get_at_least(std::uint16_t port, const std::string& target, int64_t revision) {
    HttpResponse r;
    wait_until(
        [&] {
          r = http_request(port, "GET", target);
          return r.status == 200 && index_of(r) >= revision;
        },
        10s, 20ms);
    return r;
  }
};

TEST_F(HttpLookups, ServiceAnswersTheSelectedInstancesWithTheIndexOfItsLastChange) {
  put("orders", "o-1", value("10.0.0.1", 8080, R"("tags":["v2"],"zone":"a")"));
  put("orders", "o-2", value("10.0.0.2", 8080, R"("zone":"b")"));
  put("orders", "o-3", value("10.0.0.3", 8080, R"("tags":["v2"],"zone":"b","state":"draining")"));
  const int64_t last = put("payments", "p-1", value("10.0.1.1", 9090));
  const std::uint16_t port = start_agent();

  const HttpResponse all = get_at_least(port, "/v1/catalog/service/orders", 1);
  ASSERT_EQ(all.status, 200) << all.error << all.body;
  EXPECT_EQ(all.header("content-type"), "application/json");
  EXPECT_EQ(all.header("x-sidecar-stale"), "false");
  const auto doc = nlohmann::json::parse(all.body);
  EXPECT_EQ(doc["service"], "orders");
  // Draining instances are not selected by default (passing and warning are).
  EXPECT_THAT(ids_of(all.body), ElementsAre("o-1", "o-2"));
  EXPECT_EQ(doc["instances"][0]["address"], "10.0.0.1");
  // The index is that service's last change, not the store's revision (payments came later).
  const auto o3 = client_->get("/services/orders/o-3");
  ASSERT_TRUE(o3.has_value());
  EXPECT_EQ(index_of(all), o3->mod_revision);
  EXPECT_LT(index_of(all), last);

  EXPECT_THAT(ids_of(http_request(port, "GET", "/v1/catalog/service/orders?tag=v2").body), ElementsAre("o-1"));
  EXPECT_THAT(ids_of(http_request(port, "GET", "/v1/catalog/service/orders?zone=b").body), ElementsAre("o-2"));
  EXPECT_THAT(ids_of(http_request(port, "GET", "/v1/catalog/service/orders?tag=v2&state=draining").body),
              ElementsAre("o-3"));
  // A service no manifest entry names is watched on its first lookup.
  const HttpResponse payments = http_request(port, "GET", "/v1/catalog/service/payments");
  ASSERT_EQ(payments.status, 200) << payments.body;
  EXPECT_THAT(ids_of(payments.body), ElementsAre("p-1"));
  EXPECT_EQ(index_of(payments), last);

  const HttpResponse services = http_request(port, "GET", "/v1/catalog/services");
  ASSERT_EQ(services.status, 200);
  std::map<std::string, nlohmann::json> by_name;
  const auto services_doc = nlohmann::json::parse(services.body);
  for (const auto& s : services_doc["services"]) {
    by_name[s["service"].get<std::string>()] = s;
  }
  ASSERT_EQ(by_name.count("orders"), 1u) << services.body;
  ASSERT_EQ(by_name.count("payments"), 1u) << services.body;
  EXPECT_EQ(by_name["orders"]["index"].get<int64_t>(), o3->mod_revision);
  EXPECT_EQ(by_name["orders"]["instances"], 3);
  EXPECT_EQ(by_name["payments"]["instances"], 1);

  // Bad input is a 400 naming the parameter, never a guess.
  const HttpResponse typo = http_request(port, "GET", "/v1/catalog/service/orders?tags=v2");
  EXPECT_EQ(typo.status, 400);
  EXPECT_THAT(typo.body, HasSubstr("tags"));
  EXPECT_EQ(http_request(port, "GET", "/v1/catalog/service/orders?index=x").status, 400);
  EXPECT_EQ(http_request(port, "GET", "/v1/catalog/nothing").status, 404);
}

TEST_F(HttpLookups, BlockingConsumerSeesEveryChangeInOrder) {
  put("orders", "o-1", value("10.0.0.1", 8080));
  const std::uint16_t port = start_agent();
  HttpResponse first = get_at_least(port, "/v1/catalog/service/orders", 1);
  ASSERT_EQ(first.status, 200) << first.body;
  int64_t index = index_of(first);
  std::set<std::string> expected{"o-1"};

  for (int step = 0; step < 9; ++step) {
    auto answer = std::async(std::launch::async, [&, index] {
      return http_request(port, "GET", "/v1/catalog/service/orders?index=" + std::to_string(index) + "&wait=30s", 35s);
    });
    // Parked: the change below is what answers it, not a race with the request.
    ASSERT_TRUE(wait_until([&] { return waiting(port) == 1; }, 5s)) << "step " << step;
    int64_t revision = 0;
    const std::string id = "o-" + std::to_string(2 + step / 3);
    switch (step % 3) {
      case 0:  // add
        revision = put("orders", id, value("10.0.0.9", 8080));
        expected.insert(id);
        break;
      case 1:  // update in place
        revision = put("orders", id, value("10.0.0.10", 8081));
        break;
      case 2:  // delete
        client_->del("/services/orders/" + id);
        revision = client_->revision();
        expected.erase(id);
        break;
    }
    const HttpResponse r = answer.get();
    ASSERT_EQ(r.status, 200) << r.error << r.body;
    EXPECT_EQ(index_of(r), revision) << "step " << step;
    const auto ids = ids_of(r.body);
    EXPECT_EQ(std::set<std::string>(ids.begin(), ids.end()), expected) << "step " << step;
    if (step % 3 == 1) {
      EXPECT_THAT(r.body, HasSubstr("10.0.0.10")) << "step " << step;
    }
    index = revision;
  }
}

TEST_F(HttpLookups, AChangeToAnotherServiceWakesNoWaiter) {
  put("orders", "o-1", value("10.0.0.1", 8080));
  put("payments", "p-1", value("10.0.1.1", 9090));
  const std::uint16_t port = start_agent();
  const int64_t orders_index = index_of(get_at_least(port, "/v1/catalog/service/orders", 1));
  const int64_t payments_index = index_of(get_at_least(port, "/v1/catalog/service/payments", 1));
  ASSERT_GT(orders_index, 0);
  ASSERT_GT(payments_index, 0);

  const auto started = std::chrono::steady_clock::now();
  auto orders_wait = std::async(std::launch::async, [&] {
    HttpResponse r = http_request(port, "GET",
                                  "/v1/catalog/service/orders?index=" + std::to_string(orders_index) + "&wait=3s", 10s);
    return std::pair{r, std::chrono::steady_clock::now() - started};
  });
  auto payments_wait = std::async(std::launch::async, [&] {
    return http_request(port, "GET",
                        "/v1/catalog/service/payments?index=" + std::to_string(payments_index) + "&wait=30s", 35s);
  });
  ASSERT_TRUE(wait_until([&] { return waiting(port) == 2; }, 5s));

  const int64_t revision = put("payments", "p-2", value("10.0.1.2", 9090));
  const HttpResponse payments = payments_wait.get();
  ASSERT_EQ(payments.status, 200);
  EXPECT_EQ(index_of(payments), revision);
  // The positive marker: payments' waiter was answered and orders' is still parked.
  EXPECT_EQ(waiting(port), 1);

  const auto [orders, elapsed] = orders_wait.get();
  ASSERT_EQ(orders.status, 200);
  EXPECT_EQ(index_of(orders), orders_index);  // answered by its wait running out, with the same index
  EXPECT_GE(elapsed, 3s);
  const PromParse m = parse_prometheus(http_request(port, "GET", "/metrics").body);
  EXPECT_EQ(m.value("etcd_sidecar_http_blocking_changed_total"), 1.0);
  EXPECT_EQ(m.value("etcd_sidecar_http_blocking_timeouts_total"), 1.0);
}

// A keep-alive client's connection goes on after its blocking query is answered, whether the query waited
// as a parked record or (with a request pipelined behind it) in its connection's coroutine.
TEST_F(HttpLookups, KeepAliveAndPipelinedBlockingQueriesAnswerAndTheConnectionGoesOn) {
  put("orders", "o-1", value("10.0.0.1", 8080));
  const std::uint16_t port = start_agent();
  const int64_t index = index_of(get_at_least(port, "/v1/catalog/service/orders", 1));
  ASSERT_GT(index, 0);
  const std::string blocking =
      "GET /v1/catalog/service/orders?index=" + std::to_string(index) + "&wait=30s HTTP/1.1\r\nHost: t\r\n\r\n";
  const std::string livez = "GET /livez HTTP/1.1\r\nHost: t\r\n\r\n";
  ParkedRequests clients;
  ASSERT_TRUE(clients.open(port, blocking));          // 0: keep-alive, parks as a record
  ASSERT_TRUE(clients.open(port, blocking + livez));  // 1: pipelined, waits in its coroutine
  ASSERT_TRUE(wait_until([&] { return waiting(port) == 2; }, 5s));

  const int64_t revision = put("orders", "o-2", value("10.0.0.2", 8080));
  const std::string new_index = "X-Sidecar-Index: " + std::to_string(revision) + "\r\n";
  const auto received = [&](size_t i, const std::string& needle) {
    return wait_until(
        [&] {
          clients.read_available(i);
          return clients[i].received.find(needle) != std::string::npos;
        },
        5s, 5ms);
  };
  ASSERT_TRUE(received(0, new_index)) << clients[0].received;
  ASSERT_TRUE(received(1, "ok\n")) << clients[1].received;
  // The pipelined /livez was answered after the blocking query, on the same connection.
  EXPECT_LT(clients[1].received.find(new_index), clients[1].received.find("ok\n")) << clients[1].received;
  EXPECT_FALSE(clients[0].closed);
  // The parked one's connection serves its next request too.
  const std::string more = "GET /livez HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n";
  ASSERT_EQ(::send(clients[0].fd, more.data(), more.size(), MSG_NOSIGNAL), static_cast<ssize_t>(more.size()));
  ASSERT_TRUE(received(0, "ok\n")) << clients[0].received;
  // 0 is closed after its Connection: close; 1 stays open (until the admin endpoint's 5 s idle bound).
  EXPECT_EQ(clients.drain_until_closed(2s), 1u);
  EXPECT_TRUE(clients[0].closed);
}

TEST_F(HttpLookups, TenThousandWaitersAreAllAnsweredByOnePutWhileLivezAnswers) {
  constexpr size_t kWaiters = 10000;  // http.max_waiters' default
  ASSERT_GE(raise_open_file_limit(), kWaiters + 256) << "this test holds 10,000 sockets: raise the hard RLIMIT_NOFILE";

  put("orders", "o-1", value("10.0.0.1", 8080));
  const std::uint16_t port = start_agent();
  const int64_t index = index_of(get_at_least(port, "/v1/catalog/service/orders", 1));
  ASSERT_GT(index, 0);
  const long rss_before = rss_kib(agent_->pid());

  const std::string request = "GET /v1/catalog/service/orders?index=" + std::to_string(index) +
                              "&wait=120s HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n";
  ParkedRequests pending;
  for (size_t i = 0; i < kWaiters; ++i) ASSERT_TRUE(pending.open(port, request)) << i << " " << errno;
  ASSERT_TRUE(wait_until([&] { return waiting(port) == static_cast<int64_t>(kWaiters); }, 60s, 100ms))
      << waiting(port);
  const long rss_parked = rss_kib(agent_->pid());

  // The long-lived requests do not starve the short ones, and the next waiter is refused, not queued.
  const auto livez_start = std::chrono::steady_clock::now();
  const HttpResponse live = http_request(port, "GET", "/livez");
  const auto livez_ms = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() -
                                                                              livez_start);
  EXPECT_EQ(live.status, 200);
  EXPECT_LT(livez_ms, 1000ms);
  const HttpResponse refused = http_request(
      port, "GET", "/v1/catalog/service/orders?index=" + std::to_string(index) + "&wait=30s");
  EXPECT_EQ(refused.status, 429);
  EXPECT_THAT(refused.body, HasSubstr("http.max_waiters"));

  const auto put_at = std::chrono::steady_clock::now();
  const int64_t revision = put("orders", "o-2", value("10.0.0.2", 8080));
  const size_t still_open = pending.drain_until_closed(30s);
  const auto all_ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - put_at);
  EXPECT_EQ(still_open, 0u);
  size_t answered = 0;
  const std::string new_index = "X-Sidecar-Index: " + std::to_string(revision) + "\r\n";
  for (const auto& p : pending.requests()) {
    if (p.received.starts_with("HTTP/1.1 200 OK") && p.received.find(new_index) != std::string::npos &&
        p.received.find("\"o-2\"") != std::string::npos) {
      ++answered;
    }
  }
  EXPECT_EQ(answered, kWaiters) << pending[0].received;
  std::printf("[ figures  ] %zu waiters: RSS %ld KiB -> %ld KiB parked (+%ld KiB); put -> all answered %lld ms; "
              "/livez while parked %lld ms\n",
              kWaiters, rss_before, rss_parked, rss_parked - rss_before, static_cast<long long>(all_ms.count()),
              static_cast<long long>(livez_ms.count()));
  EXPECT_TRUE(wait_until([&] { return waiting(port) == 0; }, 5s));
}

TEST_F(HttpLookups, EventStreamSendsOneSnapshotPerChange) {
  put("orders", "o-1", value("10.0.0.1", 8080));
  const std::uint16_t port = start_agent();
  const int64_t index = index_of(get_at_least(port, "/v1/catalog/service/orders", 1));
  ASSERT_GT(index, 0);

  ParkedRequests streams;
  ASSERT_TRUE(streams.open(
      port, "GET /v1/catalog/service/orders HTTP/1.1\r\nHost: t\r\nAccept: text/event-stream\r\n\r\n"));
  const std::string& received = streams[0].received;
  const auto read_until = [&](const std::string& needle) {
    return wait_until(
        [&] {
          streams.read_available(0);
          return received.find(needle) != std::string::npos;
        },
        10s, 10ms);
  };
  ASSERT_TRUE(read_until("id: " + std::to_string(index) + "\n")) << received;
  EXPECT_THAT(received, HasSubstr("Content-Type: text/event-stream"));
  EXPECT_THAT(received, HasSubstr("\"o-1\""));

  const int64_t added = put("orders", "o-2", value("10.0.0.2", 8080));
  ASSERT_TRUE(read_until("id: " + std::to_string(added) + "\n")) << received;
  client_->del("/services/orders/o-1");
  const int64_t removed = client_->revision();
  ASSERT_TRUE(read_until("id: " + std::to_string(removed) + "\n")) << received;
  EXPECT_THAT(http_request(port, "GET", "/v1/status").body, HasSubstr("\"event_streams\":1"));
  streams.close(0);

  // Each event is one full snapshot: the last holds o-2 alone.
  std::vector<std::string> events;
  for (size_t at = 0; (at = received.find("data: ", at)) != std::string::npos; at += 6) {
    events.push_back(received.substr(at + 6, received.find('\n', at) - at - 6));
  }
  ASSERT_EQ(events.size(), 3u) << received;
  EXPECT_THAT(ids_of(events[0]), ElementsAre("o-1"));
  EXPECT_THAT(ids_of(events[1]), ElementsAre("o-1", "o-2"));
  EXPECT_THAT(ids_of(events[2]), ElementsAre("o-2"));
}

TEST_F(HttpLookups, AnswersFromTheLastGoodSetWhileEtcdIsDownAndSaysSo) {
  put("orders", "o-1", value("10.0.0.1", 8080));
  const int64_t last = put("orders", "o-2", value("10.0.0.2", 8080));
  const std::uint16_t port = start_agent();
  ASSERT_EQ(index_of(get_at_least(port, "/v1/catalog/service/orders", last)), last);

  etcd_->kill9();
  HttpResponse stale;
  ASSERT_TRUE(wait_until(
      [&] {
        stale = http_request(port, "GET", "/v1/catalog/service/orders");
        return stale.header("x-sidecar-stale") == "true";
      },
      15s, 50ms))
      << stale.body;
  EXPECT_EQ(stale.status, 200);
  EXPECT_EQ(index_of(stale), last);
  EXPECT_THAT(ids_of(stale.body), ElementsAre("o-1", "o-2"));
  // The seconds since the last contact grow while etcd stays away.
  const int64_t first_contact = std::stoll(stale.header("x-sidecar-last-contact"));
  HttpResponse later;
  ASSERT_TRUE(wait_until(
      [&] {
        later = http_request(port, "GET", "/v1/catalog/service/orders");
        return std::stoll(later.header("x-sidecar-last-contact")) > first_contact;
      },
      5s, 100ms));
  EXPECT_EQ(later.header("x-sidecar-stale"), "true");
  const PromParse m = parse_prometheus(http_request(port, "GET", "/metrics").body);
  EXPECT_GE(m.value("etcd_sidecar_http_stale_answers_total").value_or(0), 2.0);

  ASSERT_TRUE(etcd_->restart());
  client_ = std::make_unique<EtcdSyncClient>(etcd_->endpoint());
  const int64_t after = put("orders", "o-3", value("10.0.0.3", 8080));
  const HttpResponse fresh = get_at_least(port, "/v1/catalog/service/orders", after);
  EXPECT_EQ(fresh.header("x-sidecar-stale"), "false");
  EXPECT_EQ(fresh.header("x-sidecar-last-contact"), "0");
  EXPECT_THAT(ids_of(fresh.body), ElementsAre("o-1", "o-2", "o-3"));
}

}  // namespace
}  // namespace sidecar::test
