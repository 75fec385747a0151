#include "agent/frontend/http/service_waiters.hpp"

#include <boost/asio/redirect_error.hpp>
#include <boost/asio/use_awaitable.hpp>

namespace sidecar::frontend {

using Clock = std::chrono::steady_clock;

ServiceWaiters::ServiceWaiters(asio::io_context& io, runtime::Catalog& catalog, OnReady on_ready)
    : catalog_(catalog), on_ready_(std::move(on_ready)), deadline_timer_(io), scope_(io, "http waiters") {}

void ServiceWaiters::start() { scope_.spawn("deadlines", deadline_loop()); }

void ServiceWaiters::Group::on_catalog_change(const runtime::CatalogService& service, const runtime::CatalogChange&) {
  // Wakes the ready ones and drops them from the lists here, in one pass: 10,000 waiters leaving one by one
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
  std::vector<std::unique_ptr<Record>> ready;
  kept = 0;
  for (auto& r : parked) {
    if (core::blocking_ready(index, r->parked.asked)) {
      ready.push_back(std::move(r));
    } else {
      r->slot = kept;
      parked[kept++] = std::move(r);
    }
  }
  parked.resize(kept);
  for (auto& r : ready) {
    owner->deadlines_.erase(r->deadline);
    ++owner->woken_total_;
    owner->on_ready_(std::move(r->parked), Woken::kChanged);
  }
  if (parked.empty() && members == 0 && !owner->sweep_pending_) {
    owner->sweep_pending_ = true;
    owner->deadline_timer_.cancel();  // the loop sweeps
  }
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

ServiceWaiters::Group& ServiceWaiters::group_of(const std::string& service) {
  auto it = groups_.find(service);
  if (it == groups_.end()) {
    auto group = std::make_unique<Group>();
    group->owner = this;
    group->subscription = catalog_.subscribe(service, *group);
    it = groups_.emplace(service, std::move(group)).first;
  }
  return *it->second;
}

void ServiceWaiters::park(Parked parked, Clock::time_point deadline) {
  if (stopping_) {
    on_ready_(std::move(parked), Woken::kStopping);
    return;
  }
  Group& group = group_of(parked.query->service);
  auto record = std::make_unique<Record>(Record{std::move(parked), &group, group.parked.size(), {}});
  const bool earliest = deadlines_.empty() || deadline < deadlines_.begin()->first;
  record->deadline = deadlines_.emplace(deadline, record.get());
  group.parked.push_back(std::move(record));
  if (earliest) deadline_timer_.cancel();  // the loop re-arms for the new first deadline
}

ServiceWaiters::Parked ServiceWaiters::take(Record* record) {
  Group& group = *record->group;
  deadlines_.erase(record->deadline);
  Parked out = std::move(record->parked);
  const size_t slot = record->slot;
  group.parked[slot] = std::move(group.parked.back());
  group.parked[slot]->slot = slot;
  group.parked.pop_back();  // destroys the record
  return out;
}

void ServiceWaiters::sweep_groups() {
  sweep_pending_ = false;
  std::erase_if(groups_, [](const auto& entry) { return entry.second->members == 0 && entry.second->parked.empty(); });
}

asio::awaitable<void> ServiceWaiters::deadline_loop() {
  while (!stopping_) {
    deadline_timer_.expires_at(deadlines_.empty() ? Clock::time_point::max() : deadlines_.begin()->first);
    boost::system::error_code ec;
    co_await deadline_timer_.async_wait(asio::redirect_error(asio::use_awaitable, ec));
    if (stopping_) break;
    const auto now = Clock::now();
    while (!deadlines_.empty() && deadlines_.begin()->first <= now) {
      Parked parked = take(deadlines_.begin()->second);
      on_ready_(std::move(parked), Woken::kTimedOut);
    }
    sweep_groups();
  }
}

asio::awaitable<ServiceWaiters::Woken> ServiceWaiters::wait(const std::string& service, int64_t asked,
                                                           std::chrono::milliseconds timeout) {
  if (stopping_) co_return Woken::kStopping;
  Group* group = &group_of(service);
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
  // The last one out releases the service: the catalog keeps it only as long as its lookup policy says.
  if (--group->members == 0 && group->parked.empty()) groups_.erase(service);
  if (waiter.changed) co_return Woken::kChanged;
  if (stopping_) co_return Woken::kStopping;
  co_return Woken::kTimedOut;
}

void ServiceWaiters::stop() {
  if (stopping_) return;
  stopping_ = true;
  deadline_timer_.cancel();
  for (auto& [name, group] : groups_) {
    for (Waiter* w : group->waiters) w->timer->cancel();
  }
  while (!deadlines_.empty()) {
    Parked parked = take(deadlines_.begin()->second);
    on_ready_(std::move(parked), Woken::kStopping);
  }
  sweep_groups();
}

}  // namespace sidecar::frontend
