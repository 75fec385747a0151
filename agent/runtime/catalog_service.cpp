#include "agent/runtime/catalog_service.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/use_awaitable.hpp>

namespace sidecar::runtime {

CatalogService::CatalogService(asio::io_context& io, EtcdPort& etcd, std::string name,
                               const std::string& etcd_prefix, PrefixWatcherOptions options)
    : io_(io),
      name_(std::move(name)),
      set_(etcd_prefix + "/" + name_ + "/"),
      watcher_(io, etcd, set_.key_prefix(), *this, options) {}

void CatalogService::stop() {
  stopping_ = true;
  watcher_.stop();
  wake_sync_waiters();
}

void CatalogService::add_listener(CatalogListener* listener) { listeners_.push_back(listener); }

void CatalogService::remove_listener(CatalogListener* listener) { std::erase(listeners_, listener); }

void CatalogService::notify(const CatalogChange& change) {
  ++stats_.changes_total;
  // A copy: a listener may not (un)subscribe from inside, but the vector must not be walked while it could.
  const auto listeners = listeners_;
  for (auto* l : listeners) l->on_catalog_change(*this, change);
}

void CatalogService::wake_sync_waiters() {
  for (auto* t : sync_->waiters) t->cancel();
  sync_->waiters.clear();
}

asio::awaitable<bool> CatalogService::wait_synced(std::chrono::milliseconds timeout) {
  auto state = sync_;  // the frame's own reference: `this` may be gone when the timer completes
  if (state->synced) co_return true;
  if (stopping_) co_return false;
  asio::steady_timer timer(io_, timeout);
  state->waiters.push_back(&timer);
  boost::system::error_code ec;
  co_await timer.async_wait(asio::redirect_error(asio::use_awaitable, ec));
  std::erase(state->waiters, &timer);  // the timeout fired: still listed
  const bool ok = state->synced;
  co_return ok;
}

void CatalogService::note_invalid(const std::string& id, const std::string& reason) {
  ++stats_.invalid_values_total;
  auto [it, inserted] = warned_invalid_.try_emplace(id, reason);
  if (!inserted && it->second == reason) return;  // said already
  it->second = reason;
  spdlog::warn("catalog {}: ignoring {}{}: {}", name_, set_.key_prefix(), id, reason);
}

void CatalogService::snapshot_done(int64_t revision) {
  const bool first = index_ == 0;
  auto result = set_.finish_reset(revision);
  for (const auto& [id, reason] : result.invalid) note_invalid(id, reason);
  // Forget warnings for ids that are gone or valid now, so a later bad value is reported again.
  std::erase_if(warned_invalid_, [this](const auto& entry) {
    const auto* inst = set_.find(entry.first);
    return inst == nullptr || inst->valid();
  });
  // After a wiped etcd the store's revisions may be lower than ours: the index follows them down, and a
  // reader holding a larger index is answered at once (as Consul's blocking queries treat an index reset).
  if (first) {
    index_ = snapshot_last_change_ > 0 ? snapshot_last_change_ : revision;
  } else if (result.changed) {
    index_ = revision;
  }
  snapshot_last_change_ = 0;
  spdlog::info("catalog {}: synced {} instance(s) at revision {}", name_, set_.size(), revision);
  sync_->synced = true;
  wake_sync_waiters();
  CatalogChange change{.snapshot = true, .changed = result.changed ? 1u : 0u, .ids = nullptr};
  notify(change);
}

void CatalogService::on_events(const std::vector<core::EventInput>& events) {
  size_t changed = 0;
  batch_ids_.clear();
  for (const auto& ev : events) {
    auto r = set_.apply(ev);
    if (r.foreign || r.duplicate) continue;
    if (r.invalid) {
      note_invalid(r.id, r.reason);
    } else {
      warned_invalid_.erase(r.id);
    }
    if (r.changed) {
      ++changed;
      index_ = std::max(index_, ev.kv.mod_revision);
    }
    batch_ids_.push_back(std::move(r.id));
  }
  if (changed == 0) return;
  CatalogChange change{.snapshot = false, .changed = changed, .ids = &batch_ids_};
  notify(change);
}

}  // namespace sidecar::runtime
