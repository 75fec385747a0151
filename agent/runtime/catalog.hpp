// Owns: every watched service (one CatalogService each, shared by all its consumers), the on-demand
//       watches lookups start and their idle expiry, and the bound on how many there are.
// Thread: io_context thread.
#pragma once

#include <utility>  // before Asio: Boost 1.74's awaitable.hpp uses std::exchange without including it
#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>
#include <chrono>
#include <map>
#include <memory>
#include <string>
#include <string_view>

#include "agent/core/catalog_policy.hpp"
#include "agent/runtime/catalog_service.hpp"
#include "agent/runtime/clock.hpp"
#include "agent/runtime/task_scope.hpp"

namespace sidecar::runtime {

struct CatalogOptions {
  std::string etcd_prefix = "/services";
  core::CatalogLimits limits{};
  PrefixWatcherOptions watch{};
};

struct CatalogStats {
  uint64_t started_total = 0;  // watches started (subscriptions and lookups)
  uint64_t expired_total = 0;  // on-demand watches stopped after the idle timeout
  // Lookups refused by max_services: core::CatalogPolicy::refused_total() counts them.
};

class Catalog {
 public:
  // Keeps one service watched and its listener called, until destroyed or reset(). Move-only.
  class Subscription {
   public:
    Subscription() = default;
    Subscription(Subscription&& other) noexcept { *this = std::move(other); }
    Subscription& operator=(Subscription&& other) noexcept;
    ~Subscription() { reset(); }
    void reset();
    explicit operator bool() const { return service_ != nullptr; }
    const CatalogService& service() const { return *service_; }

   private:
    friend class Catalog;
    Subscription(Catalog* catalog, CatalogService* service, CatalogListener* listener)
        : catalog_(catalog), service_(service), listener_(listener) {}
    Catalog* catalog_ = nullptr;
    CatalogService* service_ = nullptr;
    CatalogListener* listener_ = nullptr;
  };

  struct Lookup {
    enum class Status { kOk, kRefused, kNotSynced, kStopping };
    Status status = Status::kOk;
    // kOk: valid until the caller next suspends (a later expiry may destroy it); read it, do not keep it.
    const CatalogService* service = nullptr;
    std::string error;  // kRefused / kNotSynced: why, for the answer to the caller
  };

  Catalog(asio::io_context& io, EtcdPort& etcd, CatalogOptions options);
  Catalog(const Catalog&) = delete;
  Catalog& operator=(const Catalog&) = delete;
  ~Catalog();

  void start();
  // Stops every watch; subscriptions may outlive this (they then release nothing) but not the Catalog.
  void stop();
  asio::awaitable<void> join();

  // A long-lived consumer (a discover entry's file): never refused by max_services. The listener is called
  // for every change from now on; a service that is already synced is not replayed (read service()).
  Subscription subscribe(const std::string& service, CatalogListener& listener);
  // A lookup: starts the service's watch when needed (within max_services), waits up to `timeout` for its
  // first sync, and keeps it watched until idle_timeout passes without another lookup.
  asio::awaitable<Lookup> lookup(std::string service, std::chrono::milliseconds timeout);

  const CatalogService* find(std::string_view service) const;
  const std::map<std::string, std::unique_ptr<CatalogService>, std::less<>>& services() const { return services_; }
  void set_limits(core::CatalogLimits limits);
  const core::CatalogPolicy& policy() const { return policy_; }
  const CatalogStats& stats() const { return stats_; }

 private:
  CatalogService& start_service(const std::string& name);
  void unsubscribe(CatalogService* service, CatalogListener* listener);
  void stop_service(std::string_view name);
  asio::awaitable<void> expire_loop();

  asio::io_context& io_;
  EtcdPort& etcd_;
  CatalogOptions options_;
  core::CatalogPolicy policy_;
  std::map<std::string, std::unique_ptr<CatalogService>, std::less<>> services_;
  Timer expiry_;  // the next idle expiry; re-armed whenever a lookup or release changes it
  CatalogStats stats_;
  bool started_ = false;
  bool stopping_ = false;
  TaskScope scope_;  // last: the expiry loop and the disposal of stopped services use the members above
};

}  // namespace sidecar::runtime
