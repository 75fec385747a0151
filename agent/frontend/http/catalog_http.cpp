#include "agent/frontend/http/catalog_http.hpp"

#include <spdlog/spdlog.h>

#include <boost/beast/http/write.hpp>
#include <nlohmann/json.hpp>
#include <sstream>

#include "agent/frontend/freshness.hpp"
#include "agent/output/render.hpp"

namespace sidecar::frontend {

namespace http = boost::beast::http;

namespace {

constexpr std::string_view kJsonType = "application/json";
constexpr std::string_view kEventStreamType = "text/event-stream";

bool wants_event_stream(std::string_view accept) { return accept.find(kEventStreamType) != std::string_view::npos; }

// A response as the bytes on the wire, for answers written to many connections or from outside a coroutine.
std::shared_ptr<const std::string> serialized(const boost::beast::http::response<boost::beast::http::string_body>& res) {
  std::ostringstream wire;
  wire << res;
  return std::make_shared<const std::string>(std::move(wire).str());
}

}  // namespace

CatalogHttp::CatalogHttp(asio::io_context& io, runtime::Catalog& catalog, CatalogHttpOptions options)
    : catalog_(catalog),
      options_(std::move(options)),
      waiters_(io, catalog,
               [this](ServiceWaiters::Parked parked, ServiceWaiters::Woken woken) {
                 answer_parked(std::move(parked), woken);
               }) {}

bool CatalogHttp::handles(std::string_view path) const { return path.starts_with("/v1/catalog/"); }

void CatalogHttp::stop() {
  stopping_ = true;
  waiters_.stop();
}

CatalogHttp::Response CatalogHttp::error_response(unsigned version, int status, const std::string& error) {
  if (status == 503) ++stats_.unavailable_total;
  if (status == 429) ++stats_.waiters_refused_total;
  return runtime::make_admin_response(status, version, kJsonType, nlohmann::json({{"error", error}}).dump() + "\n");
}

CatalogHttp::Response CatalogHttp::services_response(const runtime::AdminHttpRequest& request) const {
  nlohmann::json list = nlohmann::json::array();
  for (const auto& [name, service] : catalog_.services()) {
    const Freshness f = freshness(*service);
    list.push_back({{"service", name},
                    {"index", service->index()},
                    {"instances", service->set().sorted().size()},
                    {"synced", service->synced()},
                    {"stale", f.stale}});
  }
  return runtime::make_admin_response(200, request.version, kJsonType, nlohmann::json({{"services", list}}).dump() + "\n");
}

const std::string& CatalogHttp::render(const runtime::CatalogService& service, const core::CatalogQuery& query) {
  std::string key = service.name();
  key += '\n';
  key += std::to_string(service.index());
  key += '\n';
  key += query.selector_text;
  if (key == rendered_.key) return rendered_.body;
  core::DiscoverSpec spec;
  spec.service = service.name();
  spec.format = core::OutputFormat::kJson;
  spec.select = query.selector;
  spec.sort = query.sort;
  const auto instances = core::select_instances(service.set().sorted(), query.selector, options_.local_zone,
                                                query.sort, options_.seed);
  if (auto error = output::render_into(rendered_.body, spec, service.name(), service.index(), instances, "")) {
    // JSON rendering has no template to fail on; keep the invariant visible if it ever does.
    spdlog::error("catalog http {}: {}", service.name(), *error);
    rendered_.body = "{}\n";
  }
  rendered_.key = std::move(key);
  return rendered_.body;
}

std::shared_ptr<const std::string> CatalogHttp::service_answer(unsigned version, bool keep_alive,
                                                              const runtime::CatalogService& service,
                                                              const core::CatalogQuery& query) {
  const Freshness f = freshness(service);
  if (f.stale) ++stats_.stale_answers_total;
  // Compared field by field: this runs once per woken waiter, 10,000 times for one change.
  AnswerKey key{service.name(), service.index(), f.stale, f.seconds_since_contact, version, keep_alive,
                query.selector_text};
  if (answer_ && key == answer_key_) return answer_;
  Response res = runtime::make_admin_response(200, version, kJsonType, render(service, query));
  res.set("X-Sidecar-Index", std::to_string(service.index()));
  res.set("X-Sidecar-Stale", f.stale ? "true" : "false");
  res.set("X-Sidecar-Last-Contact", std::to_string(f.seconds_since_contact));
  res.keep_alive(keep_alive);
  answer_ = serialized(res);
  answer_key_ = std::move(key);
  return answer_;
}

asio::awaitable<CatalogHttp::Unanswerable> CatalogHttp::look_up(const std::string& name) {
  Unanswerable why;
  if (stopping_) {
    why.status = 503;
    why.error = "the agent is stopping";
    co_return why;
  }
  const runtime::Catalog::Lookup found = co_await catalog_.lookup(name, options_.lookup_timeout);
  switch (found.status) {
    case runtime::Catalog::Lookup::Status::kOk:
      break;
    case runtime::Catalog::Lookup::Status::kStopping:
      why.status = 503;
      why.error = "the agent is stopping";
      break;
    case runtime::Catalog::Lookup::Status::kRefused:
    case runtime::Catalog::Lookup::Status::kNotSynced:
      why.status = 503;
      why.error = found.error;
      break;
  }
  co_return why;
}

asio::awaitable<bool> CatalogHttp::respond(runtime::AdminConnection& connection, Response res, bool keep_alive) {
  res.keep_alive(keep_alive);
  const bool written = co_await connection.write(res);
  co_return written && keep_alive;
}

asio::awaitable<bool> CatalogHttp::respond_error(runtime::AdminConnection& connection,
                                                 const runtime::AdminHttpRequest& request, const Unanswerable& why) {
  return respond(connection, error_response(request, why.status, why.error), request.keep_alive);
}

void CatalogHttp::count_woken(ServiceWaiters::Woken woken) {
  if (woken == ServiceWaiters::Woken::kChanged) ++stats_.blocking_changed_total;
  if (woken == ServiceWaiters::Woken::kTimedOut) ++stats_.blocking_timeouts_total;
}

// Not a coroutine: it picks the coroutine that answers, so no frame of its own stays suspended with them.
asio::awaitable<bool> CatalogHttp::serve(runtime::AdminConnection& connection, runtime::AdminHttpRequest request) {
  ++stats_.requests_total;
  core::CatalogQuery query = core::parse_catalog_query(request.target);
  if (!query.ok()) return respond(connection, error_response(request, query.status, query.error), request.keep_alive);
  if (query.kind == core::CatalogQuery::Kind::kServices) {
    return respond(connection, services_response(request), request.keep_alive);
  }
  if (wants_event_stream(request.accept)) return stream_service(connection, std::move(request), std::move(query));
  return answer_service(connection, std::move(request), std::move(query));
}

asio::awaitable<bool> CatalogHttp::answer_service(runtime::AdminConnection& connection,
                                                  runtime::AdminHttpRequest request, core::CatalogQuery query) {
  Unanswerable why = co_await look_up(query.service);
  if (why.status == 200 && query.index && !core::blocking_ready(catalog_.find(query.service)->index(), *query.index)) {
    // A blocking query: park the connection (out of the short-request bound) and wait for a change.
    if (!connection.park()) {
      why.status = 429;
      why.error = "http.max_waiters requests are waiting already; retry later";
    } else {
      ++stats_.blocking_total;
      std::uniform_real_distribution<double> uniform(0.0, 1.0);
      const auto wait = core::blocking_wait_with_jitter(query.wait, uniform(rng_));
      if (connection.can_detach()) {
        // The usual case: the query waits as a record and this coroutine (and the connection's) ends.
        const int64_t asked = *query.index;
        waiters_.park(ServiceWaiters::Parked{connection.detach(), asked, request.version, request.keep_alive,
                                             intern(std::move(query))},
                      std::chrono::steady_clock::now() + wait);
        co_return false;
      }
      // A request pipelined behind this one is in the connection's buffer: wait here, in the coroutine.
      const ServiceWaiters::Woken woken = co_await waiters_.wait(query.service, *query.index, wait);
      connection.unpark();
      count_woken(woken);
      const runtime::CatalogService* service = catalog_.find(query.service);
      if (woken == ServiceWaiters::Woken::kStopping || connection.stopping()) {
        why.status = 503;
        why.error = "the agent is stopping";
      } else if (service == nullptr || !service->synced()) {
        // The wait held the service watched; only a resync in progress (or a watch restarted after a very long
        // wait) leaves it unsynced here.
        why = co_await look_up(query.service);
      }
    }
  }
  if (why.status != 200) {
    const bool again = co_await respond_error(connection, request, why);
    co_return again;
  }
  const std::shared_ptr<const std::string> answer =
      service_answer(request.version, request.keep_alive, *catalog_.find(query.service), query);
  const bool written = co_await connection.write_bytes(*answer);
  co_return written && request.keep_alive;
}

std::shared_ptr<const core::CatalogQuery> CatalogHttp::intern(core::CatalogQuery query) {
  if (!interned_ || interned_->service != query.service || interned_->selector_text != query.selector_text) {
    interned_ = std::make_shared<const core::CatalogQuery>(std::move(query));
  }
  return interned_;
}

void CatalogHttp::answer_parked(ServiceWaiters::Parked parked, ServiceWaiters::Woken woken) {
  count_woken(woken);
  const runtime::CatalogService* service = catalog_.find(parked.query->service);
  if (woken != ServiceWaiters::Woken::kStopping && !stopping_ && service != nullptr && service->synced()) {
    auto answer = service_answer(parked.version, parked.keep_alive, *service, *parked.query);
    std::move(parked.socket).resume(std::move(answer), parked.keep_alive);
    return;
  }
  // Stopping, or (rarely) a service being read again after its wait: 503, and the client asks again.
  const bool stopping = woken == ServiceWaiters::Woken::kStopping || stopping_;
  Response res = error_response(parked.version, 503,
                                stopping ? "the agent is stopping" : "the service is being read again from etcd");
  res.keep_alive(false);
  std::move(parked.socket).resume(serialized(res), false);
}

}  // namespace sidecar::frontend
