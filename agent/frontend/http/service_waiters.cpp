#include "agent/frontend/http/service_waiters.hpp"

#include <boost/asio/redirect_error.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "agent/core/catalog_query.hpp"

namespace sidecar::frontend {

void ServiceWaiters::Group::on_catalog_change(const runtime::CatalogService& service, const runtime::CatalogChange&) {
  // Wakes the ready ones and drops them from the list here, in one pass: 10,000 waiters leaving one by one
  // would each search the list.
  const int64_t index = service.index();
  size_t kept = 0;
  for (Waiter* w : waiters) {
    if (core::blocking_ready(index, w->asked)) {
      w->changed = true;
      w->timer->cancel();
      ++owner->woken_total_;
    } else {
      waiters[kept++] = w;
    }
  }
  waiters.resize(kept);
}

void ServiceWaiters::Group::remove(Waiter* waiter) {
  for (size_t i = 0; i < waiters.size(); ++i) {
    if (waiters[i] == waiter) {
      waiters[i] = waiters.back();
      waiters.pop_back();
      return;
    }
  }
}

asio::awaitable<ServiceWaiters::Woken> ServiceWaiters::wait(const std::string& service, int64_t asked,
                                                           std::chrono::milliseconds timeout) {
  if (stopping_) co_return Woken::kStopping;
  auto it = groups_.find(service);
  if (it == groups_.end()) {
    auto group = std::make_unique<Group>();
    group->owner = this;
    group->subscription = catalog_.subscribe(service, *group);
    it = groups_.emplace(service, std::move(group)).first;
  }
  Group* group = it->second.get();
  asio::steady_timer timer(co_await asio::this_coro::executor);
  timer.expires_after(timeout);
  Waiter waiter{&timer, asked, false};
  group->waiters.push_back(&waiter);
  ++group->members;
  ++waiting_;
  boost::system::error_code ec;
  co_await timer.async_wait(asio::redirect_error(asio::use_awaitable, ec));
  --waiting_;
  if (!waiter.changed) group->remove(&waiter);  // timed out or stopped: still listed
  if (--group->members == 0) {
    // The last one out releases the service: the catalog keeps it only as long as its lookup policy says.
    groups_.erase(service);
  }
  if (waiter.changed) co_return Woken::kChanged;
  if (stopping_) co_return Woken::kStopping;
  co_return Woken::kTimedOut;
}

void ServiceWaiters::stop() {
  stopping_ = true;
  for (auto& [name, group] : groups_) {
    for (Waiter* w : group->waiters) w->timer->cancel();
  }
}

}  // namespace sidecar::frontend
