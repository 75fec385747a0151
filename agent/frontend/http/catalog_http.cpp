#include "agent/frontend/http/catalog_http.hpp"

#include <spdlog/spdlog.h>

#include <nlohmann/json.hpp>

#include "agent/frontend/freshness.hpp"
#include "agent/output/render.hpp"

namespace sidecar::frontend {

namespace http = boost::beast::http;

namespace {

constexpr std::string_view kJsonType = "application/json";
constexpr std::string_view kEventStreamType = "text/event-stream";

bool wants_event_stream(std::string_view accept) { return accept.find(kEventStreamType) != std::string_view::npos; }

}  // namespace

CatalogHttp::CatalogHttp(runtime::Catalog& catalog, CatalogHttpOptions options)
    : catalog_(catalog), options_(std::move(options)), waiters_(catalog) {}

bool CatalogHttp::handles(std::string_view path) const { return path.starts_with("/v1/catalog/"); }

void CatalogHttp::stop() {
  stopping_ = true;
  waiters_.stop();
}

CatalogHttp::Response CatalogHttp::error_response(const runtime::AdminHttpRequest& request, int status,
                                                  const std::string& error) {
  if (status == 503) ++stats_.unavailable_total;
  if (status == 429) ++stats_.waiters_refused_total;
  return runtime::make_admin_response(status, request.version, kJsonType, nlohmann::json({{"error", error}}).dump() + "\n");
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

CatalogHttp::Response CatalogHttp::service_response(const runtime::AdminHttpRequest& request,
                                                    const runtime::CatalogService& service,
                                                    const core::CatalogQuery& query) {
  const Freshness f = freshness(service);
  if (f.stale) ++stats_.stale_answers_total;
  Response res = runtime::make_admin_response(200, request.version, kJsonType, render(service, query));
  res.set("X-Sidecar-Index", std::to_string(service.index()));
  res.set("X-Sidecar-Stale", f.stale ? "true" : "false");
  res.set("X-Sidecar-Last-Contact", std::to_string(f.seconds_since_contact));
  return res;
}

asio::awaitable<bool> CatalogHttp::look_up(const runtime::AdminHttpRequest& request, const std::string& name,
                                           Response& error) {
  if (stopping_) {
    error = error_response(request, 503, "the agent is stopping");
    co_return false;
  }
  const runtime::Catalog::Lookup found = co_await catalog_.lookup(name, options_.lookup_timeout);
  switch (found.status) {
    case runtime::Catalog::Lookup::Status::kOk:
      co_return true;
    case runtime::Catalog::Lookup::Status::kStopping:
      error = error_response(request, 503, "the agent is stopping");
      co_return false;
    case runtime::Catalog::Lookup::Status::kRefused:
    case runtime::Catalog::Lookup::Status::kNotSynced:
      error = error_response(request, 503, found.error);
      co_return false;
  }
  co_return false;
}

asio::awaitable<bool> CatalogHttp::serve(runtime::AdminConnection& connection, runtime::AdminHttpRequest request) {
  ++stats_.requests_total;
  core::CatalogQuery query = core::parse_catalog_query(request.target);
  if (!query.ok()) {
    Response res = error_response(request, query.status, query.error);
    res.keep_alive(request.keep_alive);
    const bool written = co_await connection.write(res);
    co_return written && request.keep_alive;
  }
  if (query.kind == core::CatalogQuery::Kind::kServices) {
    Response res = services_response(request);
    res.keep_alive(request.keep_alive);
    const bool written = co_await connection.write(res);
    co_return written && request.keep_alive;
  }
  if (wants_event_stream(request.accept)) {
    const bool again = co_await stream_service(connection, request, std::move(query));
    co_return again;
  }
  const bool again = co_await answer_service(connection, request, std::move(query));
  co_return again;
}

asio::awaitable<bool> CatalogHttp::answer_service(runtime::AdminConnection& connection,
                                                  const runtime::AdminHttpRequest& request, core::CatalogQuery query) {
  Response res;
  bool found = co_await look_up(request, query.service, res);
  if (found && query.index && !core::blocking_ready(catalog_.find(query.service)->index(), *query.index)) {
    // A blocking query: park the connection (out of the short-request bound) and wait for a change.
    if (!connection.park()) {
      res = error_response(request, 429, "http.max_waiters requests are waiting already; retry later");
      found = false;
    } else {
      ++stats_.blocking_total;
      std::uniform_real_distribution<double> uniform(0.0, 1.0);
      const auto wait = core::blocking_wait_with_jitter(query.wait, uniform(rng_));
      const ServiceWaiters::Woken woken = co_await waiters_.wait(query.service, *query.index, wait);
      connection.unpark();
      if (woken == ServiceWaiters::Woken::kChanged) ++stats_.blocking_changed_total;
      if (woken == ServiceWaiters::Woken::kTimedOut) ++stats_.blocking_timeouts_total;
      if (woken == ServiceWaiters::Woken::kStopping || connection.stopping()) {
        res = error_response(request, 503, "the agent is stopping");
        found = false;
      } else {
        // Again, now: the wait held the service watched, and this marks it used (and restarts its watch in the
        // rare case its idle expiry ran out during a long wait).
        found = co_await look_up(request, query.service, res);
      }
    }
  }
  if (found) res = service_response(request, *catalog_.find(query.service), query);
  res.keep_alive(request.keep_alive);
  const bool written = co_await connection.write(res);
  co_return written && request.keep_alive;
}

}  // namespace sidecar::frontend
