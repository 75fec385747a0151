// Owns: the requests waiting for a catalog service to change (blocking queries, event streams), grouped
//       per service, each group holding the service watched while anyone waits on it.
// Thread: io_context thread.
#pragma once

#include <utility>  // before Asio: Boost 1.74's awaitable.hpp uses std::exchange without including it
#include <boost/asio/awaitable.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "agent/runtime/catalog.hpp"

namespace sidecar::frontend {

namespace asio = boost::asio;

class ServiceWaiters {
 public:
  enum class Woken { kChanged, kTimedOut, kStopping };

  explicit ServiceWaiters(runtime::Catalog& catalog) : catalog_(catalog) {}
  ServiceWaiters(const ServiceWaiters&) = delete;
  ServiceWaiters& operator=(const ServiceWaiters&) = delete;

  // Waits until `service`'s index differs from `asked` (core::blocking_ready), `timeout` passes, or
  // stop(). The service must be in the catalog (a lookup found it just before, with no suspension since);
  // the wait keeps it watched. Only the waiters of that service are woken by its changes.
  asio::awaitable<Woken> wait(const std::string& service, int64_t asked, std::chrono::milliseconds timeout);
  // Wakes every waiter (kStopping) and refuses new waits.
  void stop();

  size_t waiting() const { return waiting_; }
  size_t services() const { return groups_.size(); }
  uint64_t woken_total() const { return woken_total_; }

 private:
  struct Waiter {
    asio::steady_timer* timer = nullptr;
    int64_t asked = 0;
    bool changed = false;
  };
  // One per service someone waits on: the listener of its changes.
  class Group final : public runtime::CatalogListener {
   public:
    void on_catalog_change(const runtime::CatalogService& service, const runtime::CatalogChange& change) override;
    void remove(Waiter* waiter);
    runtime::Catalog::Subscription subscription;
    std::vector<Waiter*> waiters;  // not yet woken; unordered: one leaving swaps the last into its place
    size_t members = 0;            // waits in progress, woken or not: the group lives while any runs
    ServiceWaiters* owner = nullptr;
  };

  runtime::Catalog& catalog_;
  std::map<std::string, std::unique_ptr<Group>, std::less<>> groups_;
  size_t waiting_ = 0;
  uint64_t woken_total_ = 0;
  bool stopping_ = false;
};

}  // namespace sidecar::frontend
