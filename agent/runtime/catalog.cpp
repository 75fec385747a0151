#include "agent/runtime/catalog.hpp"

#include <spdlog/spdlog.h>

#include <boost/asio/redirect_error.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <cassert>

namespace sidecar::runtime {

Catalog::Subscription& Catalog::Subscription::operator=(Subscription&& other) noexcept {
  if (this != &other) {
    reset();
    catalog_ = std::exchange(other.catalog_, nullptr);
    service_ = std::exchange(other.service_, nullptr);
    listener_ = std::exchange(other.listener_, nullptr);
  }
  return *this;
}

void Catalog::Subscription::reset() {
  if (service_ == nullptr) return;
  catalog_->unsubscribe(service_, listener_);
  catalog_ = nullptr;
  service_ = nullptr;
  listener_ = nullptr;
}

Catalog::Catalog(asio::io_context& io, EtcdPort& etcd, CatalogOptions options)
    : io_(io),
      etcd_(etcd),
      options_(std::move(options)),
      policy_(options_.limits),
      expiry_(io, RuntimeClock::time_point::max()),
      scope_(io, "catalog") {}

Catalog::~Catalog() {
  // Every subscriber is gone before the catalog (the owner destroys consumers first).
  for ([[maybe_unused]] const auto& [name, service] : services_) assert(service->listeners() == 0);
}

void Catalog::start() {
  if (started_) return;
  started_ = true;
  scope_.spawn("catalog expiry", expire_loop());
}

void Catalog::stop() {
  stopping_ = true;
  expiry_.cancel();
  for (auto& [name, service] : services_) service->stop();
}

asio::awaitable<void> Catalog::join() {
  // After stop() the map no longer changes (releases and expiries leave it alone), so it can be walked
  // across the suspensions below; the services are freed with the catalog.
  std::vector<CatalogService*> all;
  for (auto& [name, service] : services_) all.push_back(service.get());
  for (auto* service : all) co_await service->join();
  co_await scope_.join();
}

CatalogService& Catalog::start_service(const std::string& name) {
  auto service = std::make_unique<CatalogService>(io_, etcd_, name, options_.etcd_prefix, options_.watch);
  auto& ref = *service;
  services_.emplace(name, std::move(service));
  ++stats_.started_total;
  if (!stopping_) ref.start();
  return ref;
}

Catalog::Subscription Catalog::subscribe(const std::string& service, CatalogListener& listener) {
  policy_.subscribe(service, RuntimeClock::now());
  auto it = services_.find(service);
  CatalogService& s = it != services_.end() ? *it->second : start_service(service);
  s.add_listener(&listener);
  return Subscription(this, &s, &listener);
}

void Catalog::unsubscribe(CatalogService* service, CatalogListener* listener) {
  service->remove_listener(listener);
  if (stopping_) return;  // everything is stopping already; the map stays as join() walks it
  if (policy_.unsubscribe(service->name(), RuntimeClock::now())) {
    stop_service(service->name());
  } else {
    expiry_.cancel();  // a recent lookup keeps it: the expiry loop re-arms for it
  }
}

void Catalog::stop_service(std::string_view name) {
  auto it = services_.find(name);
  if (it == services_.end()) return;
  std::unique_ptr<CatalogService> service = std::move(it->second);
  services_.erase(it);
  service->stop();
  // Joined by the catalog's scope, so the catalog's join() waits for it too.
  scope_.spawn("catalog dispose", join_and_destroy(std::move(service)));
}

asio::awaitable<Catalog::Lookup> Catalog::lookup(std::string service, std::chrono::milliseconds timeout) {
  Lookup out;
  if (stopping_) {
    out.status = Lookup::Status::kStopping;
    co_return out;
  }
  const auto admit = policy_.lookup(service, RuntimeClock::now());
  if (admit == core::CatalogPolicy::Admit::kRefused) {
    out.status = Lookup::Status::kRefused;
    out.error = "the catalog already watches " + std::to_string(policy_.size()) +
                " services (catalog.max_services); not starting a watch for " + service;
    co_return out;
  }
  if (admit == core::CatalogPolicy::Admit::kStart) {
    spdlog::info("catalog {}: watching on demand (until {} s without a lookup)", service,
                 std::chrono::duration_cast<std::chrono::seconds>(policy_.limits().idle_timeout).count());
    start_service(service);
  }
  expiry_.cancel();  // the next expiry may have moved
  auto it = services_.find(service);
  assert(it != services_.end());
  if (!it->second->synced()) {
    CatalogService* s = it->second.get();
    const bool synced = co_await s->wait_synced(timeout);
    it = services_.find(service);  // an expiry or a stop may have removed it meanwhile
    if (!synced || it == services_.end() || stopping_) {
      out.status = stopping_ ? Lookup::Status::kStopping : Lookup::Status::kNotSynced;
      out.error = "no answer from etcd for " + service + " within " + std::to_string(timeout.count()) + " ms";
      co_return out;
    }
  }
  out.service = it->second.get();
  co_return out;
}

const CatalogService* Catalog::find(std::string_view service) const {
  auto it = services_.find(service);
  return it == services_.end() ? nullptr : it->second.get();
}

void Catalog::set_limits(core::CatalogLimits limits) {
  policy_.set_limits(limits);
  expiry_.cancel();
}

asio::awaitable<void> Catalog::expire_loop() {
  while (!stopping_) {
    for (const auto& name : policy_.expire(RuntimeClock::now())) {
      spdlog::info("catalog {}: no lookup for {} s; stopping its watch", name,
                   std::chrono::duration_cast<std::chrono::seconds>(policy_.limits().idle_timeout).count());
      ++stats_.expired_total;
      stop_service(name);
    }
    const auto next = policy_.next_expiry();
    expiry_.expires_at(next ? *next : RuntimeClock::time_point::max());
    boost::system::error_code ec;
    co_await expiry_.async_wait(asio::redirect_error(asio::use_awaitable, ec));
  }
}

}  // namespace sidecar::runtime
