// Owns: the catalog's HTTP view on the admin endpoint: /v1/catalog/services, /v1/catalog/service/<name>
//       (the discover file's JSON, selectable), its blocking queries (?index=N&wait=30s) and event streams.
// Thread: io_context thread; each request is a coroutine of the admin server's connection.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <random>
#include <string>

#include "agent/core/catalog_query.hpp"
#include "agent/frontend/http/service_waiters.hpp"
#include "agent/runtime/admin_server.hpp"
#include "agent/runtime/catalog.hpp"

namespace sidecar::frontend {

struct CatalogHttpOptions {
  // A service no one watched yet is watched on the first request; it answers once synced, or 503 after this.
  std::chrono::milliseconds lookup_timeout{2000};
  std::string local_zone;  // for zone=local
  std::string seed;        // for sort=random-stable (the host name)
  // An event stream with nothing to say sends a comment this often: a dead client is found by the write.
  std::chrono::milliseconds heartbeat{15000};
};

struct CatalogHttpStats {
  uint64_t requests_total = 0;
  uint64_t blocking_total = 0;       // blocking queries that waited
  uint64_t blocking_changed_total = 0;
  uint64_t blocking_timeouts_total = 0;
  uint64_t streams_total = 0;        // event streams opened
  uint64_t events_total = 0;         // events sent on them
  uint64_t stale_answers_total = 0;  // answers from a set whose watch had lost etcd
  uint64_t unavailable_total = 0;    // 503: not synced in time, refused by catalog.max_services, stopping
  uint64_t waiters_refused_total = 0;  // 429: http.max_waiters already waiting
};

class CatalogHttp final : public runtime::AdminAsyncRoutes {
 public:
  CatalogHttp(asio::io_context& io, runtime::Catalog& catalog, CatalogHttpOptions options);
  void start() { waiters_.start(); }
  // Completes once the waiters' deadline loop has ended (after stop()).
  asio::awaitable<void> join() { return waiters_.join(); }

  bool handles(std::string_view path) const override;
  asio::awaitable<bool> serve(runtime::AdminConnection& connection, runtime::AdminHttpRequest request) override;
  // Wakes every waiting request and stream (they answer and close); new requests get 503.
  void stop();

  const CatalogHttpStats& stats() const { return stats_; }
  size_t waiting() const { return waiters_.waiting(); }
  size_t streams_open() const { return streams_open_; }

 private:
  using Response = boost::beast::http::response<boost::beast::http::string_body>;
  // Why a service cannot be answered: status 200 when it can (catalog_.find(name) is synced until the caller
  // next suspends).
  struct Unanswerable {
    int status = 200;
    std::string error;
  };
  // Waiting requests keep their coroutine frames for minutes, so the frames that stay suspended hold the
  // request, the query and little else: responses are built in the frames that write them.
  asio::awaitable<bool> answer_service(runtime::AdminConnection& connection, runtime::AdminHttpRequest request,
                                       core::CatalogQuery query);
  // event_stream.cpp: Accept: text/event-stream.
  asio::awaitable<bool> stream_service(runtime::AdminConnection& connection, runtime::AdminHttpRequest request,
                                       core::CatalogQuery query);
  // Writes `res` whole; whether the connection may serve another request.
  asio::awaitable<bool> respond(runtime::AdminConnection& connection, Response res, bool keep_alive);
  asio::awaitable<bool> respond_error(runtime::AdminConnection& connection, const runtime::AdminHttpRequest& request,
                                      const Unanswerable& why);
  // The blocking-query counters for how a wait ended.
  void count_woken(ServiceWaiters::Woken woken);
  Response services_response(const runtime::AdminHttpRequest& request) const;
  Response error_response(const runtime::AdminHttpRequest& request, int status, const std::string& error) {
    return error_response(request.version, status, error);
  }
  Response error_response(unsigned version, int status, const std::string& error);
  // A parked blocking query is ready: its answer goes out on its socket, given back to the admin server.
  void answer_parked(ServiceWaiters::Parked parked, ServiceWaiters::Woken woken);
  // One query object per service and selector shared by the parked queries that ask the same.
  std::shared_ptr<const core::CatalogQuery> intern(core::CatalogQuery query);
  // The whole HTTP answer for a synced service, serialized once per service, index, selector, freshness and
  // connection semantics: one change answers 10,000 waiters with one render and one serialization.
  std::shared_ptr<const std::string> service_answer(unsigned version, bool keep_alive,
                                                    const runtime::CatalogService& service,
                                                    const core::CatalogQuery& query);
  // The JSON body (cached per service, index and selector).
  const std::string& render(const runtime::CatalogService& service, const core::CatalogQuery& query);
  // Looks the service up, starting its watch when needed.
  asio::awaitable<Unanswerable> look_up(const std::string& name);

  runtime::Catalog& catalog_;
  CatalogHttpOptions options_;
  ServiceWaiters waiters_;
  CatalogHttpStats stats_;
  size_t streams_open_ = 0;
  bool stopping_ = false;
  std::mt19937_64 rng_{std::random_device{}()};
  struct Rendered {
    std::string key;  // service, index and selector text
    std::string body;
  };
  Rendered rendered_;
  // What the cached answer was made for.
  struct AnswerKey {
    std::string service;
    int64_t index = 0;
    bool stale = false;
    int64_t seconds_since_contact = 0;
    unsigned version = 11;
    bool keep_alive = true;
    std::string selector_text;
    bool operator==(const AnswerKey&) const = default;
  };
  AnswerKey answer_key_;
  std::shared_ptr<const std::string> answer_;
  std::shared_ptr<const core::CatalogQuery> interned_;
};

}  // namespace sidecar::frontend
