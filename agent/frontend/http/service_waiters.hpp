// Owns: the requests waiting for a catalog service to change, grouped per service, each group holding the
//       service watched while anyone waits on it: blocking queries parked as records (socket and query, no
//       coroutine), and coroutines that wait (event streams, a blocking query with a pipelined request).
// Thread: io_context thread.
#pragma once

#include <utility>  // before Asio: Boost 1.74's awaitable.hpp uses std::exchange without including it
#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "agent/core/catalog_query.hpp"
#include "agent/runtime/admin_server.hpp"
#include "agent/runtime/catalog.hpp"
#include "agent/runtime/task_scope.hpp"

namespace sidecar::frontend {

namespace asio = boost::asio;

class ServiceWaiters {
 public:
  enum class Woken { kChanged, kTimedOut, kStopping };

  // A blocking query parked without a coroutine: what answering it needs, and nothing else. 10,000 of
  // them share one query object (same service and selector).
  struct Parked {
    runtime::ParkedSocket socket;
    int64_t asked = 0;
    unsigned version = 11;
    bool keep_alive = true;
    std::shared_ptr<const core::CatalogQuery> query;
  };
  // Called once per parked query, when its service changed, its deadline passed, or at stop(). It may
  // not park or wait from inside the call.
  using OnReady = std::function<void(Parked, Woken)>;

  ServiceWaiters(asio::io_context& io, runtime::Catalog& catalog, OnReady on_ready);
  ServiceWaiters(const ServiceWaiters&) = delete;
  ServiceWaiters& operator=(const ServiceWaiters&) = delete;

  // The deadline loop; stop() ends it and join() waits for that.
  void start();
  asio::awaitable<void> join() { return scope_.join(); }

  // Parks `parked` until its service's index differs from parked.asked (core::blocking_ready) or `deadline`.
  // The service must be in the catalog (a lookup found it just before, with no suspension since).
  void park(Parked parked, std::chrono::steady_clock::time_point deadline);
  // Waits the same way from a coroutine: for event streams, which keep writing on their connection.
  asio::awaitable<Woken> wait(const std::string& service, int64_t asked, std::chrono::milliseconds timeout);
  // Answers every parked query and wakes every waiter (kStopping); refuses new ones.
  void stop();

  size_t waiting() const { return waiting_ + deadlines_.size(); }  // every parked query has one deadline
  size_t services() const { return groups_.size(); }
  uint64_t woken_total() const { return woken_total_; }

 private:
  struct Record;
  using Deadlines = std::multimap<std::chrono::steady_clock::time_point, Record*>;
  struct Waiter {
    asio::steady_timer* timer = nullptr;
    int64_t asked = 0;
    bool changed = false;
  };
  class Group;
  struct Record {
    Parked parked;
    Group* group = nullptr;
    size_t slot = 0;  // its place in group->parked
    Deadlines::iterator deadline;
  };
  // One per service someone waits on: the listener of its changes.
  class Group final : public runtime::CatalogListener {
   public:
    void on_catalog_change(const runtime::CatalogService& service, const runtime::CatalogChange& change) override;
    void remove(Waiter* waiter);
    runtime::Catalog::Subscription subscription;
    std::vector<Waiter*> waiters;  // not yet woken; unordered: one leaving swaps the last into its place
    size_t members = 0;            // coroutine waits in progress, woken or not
    std::vector<std::unique_ptr<Record>> parked;
    ServiceWaiters* owner = nullptr;
  };

  Group& group_of(const std::string& service);
  // Takes the record out of its group and of the deadlines; the group stays (see sweep_groups).
  Parked take(Record* record);
  // Groups nobody waits on any more release their service. Not from inside a catalog notification (the
  // catalog forbids unsubscribing there): from the deadline loop, a coroutine wait's end, or stop().
  void sweep_groups();
  asio::awaitable<void> deadline_loop();

  runtime::Catalog& catalog_;
  OnReady on_ready_;
  std::map<std::string, std::unique_ptr<Group>, std::less<>> groups_;
  Deadlines deadlines_;
  asio::steady_timer deadline_timer_;
  size_t waiting_ = 0;
  uint64_t woken_total_ = 0;
  bool stopping_ = false;
  bool sweep_pending_ = false;
  runtime::TaskScope scope_;  // last: the deadline loop uses the members above
};

}  // namespace sidecar::frontend
