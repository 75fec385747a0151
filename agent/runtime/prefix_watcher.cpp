#include "agent/runtime/prefix_watcher.hpp"

#include <spdlog/spdlog.h>

#include <boost/asio/redirect_error.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <random>

#include "agent/core/watch_retry.hpp"

namespace sidecar::runtime {

using asio::use_awaitable;

std::string prefix_range_end(const std::string& prefix) {
  std::string end = prefix;
  while (!end.empty()) {
    auto& c = reinterpret_cast<unsigned char&>(end.back());
    if (c < 0xff) {
      ++c;
      return end;
    }
    end.pop_back();
  }
  return std::string(1, '\0');  // every key
}

PrefixWatcher::PrefixWatcher(asio::io_context& io, EtcdPort& etcd, std::string prefix, PrefixSink& sink,
                             PrefixWatcherOptions options)
    : io_(io), etcd_(etcd), options_(options), prefix_(std::move(prefix)), range_end_(prefix_range_end(prefix_)),
      sink_(sink), retry_(io), scope_(io, "watch " + prefix_) {}

PrefixWatcher::PrefixWatcher(asio::io_context& io, EtcdPort& etcd, std::string key, std::string range_end,
                             PrefixSink& sink, PrefixWatcherOptions options)
    : io_(io), etcd_(etcd), options_(options), prefix_(std::move(key)), range_end_(std::move(range_end)),
      sink_(sink), retry_(io), scope_(io, "watch " + prefix_) {}

void PrefixWatcher::start() { scope_.spawn("range+watch", run()); }

void PrefixWatcher::stop() {
  stopping_ = true;
  retry_.cancel();
  if (stream_) stream_->cancel();
}

asio::awaitable<PrefixWatcher::Page> PrefixWatcher::read_page(std::string& from, int64_t& at) {
  // Named, not a braced temporary in the co_await: GCC 12 destroys such a temporary twice.
  RangeQuery query{.key = from, .range_end = range_end_, .revision = at, .limit = options_.range_page,
                   .timeout = options_.range_timeout};
  auto r = co_await etcd_.range(std::move(query));
  if (!r.status.ok) {
    const Page failed = r.compacted() ? Page::kCompacted : Page::kFailed;
    if (failed == Page::kFailed && !snapshot_failing_) {
      spdlog::warn("watch {}: cannot read the prefix: {}", prefix_, r.status.message);
    }
    if (failed == Page::kFailed) snapshot_failing_ = true;  // said once per outage, not once per retry
    co_return failed;
  }
  if (at == 0) {
    // The first page fixes the revision every later page is read at: one consistent set.
    at = r.revision;
    cluster_id_ = r.cluster_id;
  }
  const bool more = r.more && !r.kvs.empty();
  if (more) from = r.kvs.back().key + '\0';  // the next key after the last one read
  ++stats_.range_pages;
  sink_.snapshot_page(std::move(r.kvs));
  const Page next = more ? Page::kMore : Page::kDone;
  co_return next;
}

asio::awaitable<bool> PrefixWatcher::snapshot() {
  // A compaction between two pages makes the first page's revision unreadable: start again at the latest.
  // Bounded, so a store compacting faster than we read fails like any other read (and backs off).
  constexpr int kAttempts = 3;
  for (int attempt = 0; attempt < kAttempts && !stopping_; ++attempt) {
    std::string from = prefix_;
    int64_t at = 0;
    Page page = Page::kMore;
    while (page == Page::kMore && !stopping_) page = co_await read_page(from, at);
    if (page == Page::kDone) {
      snapshot_failing_ = false;
      stats_.live = true;
      if (stats_.synced) ++stats_.resyncs;
      stats_.synced = true;
      stats_.revision = at;
      need_snapshot_ = false;
      sink_.snapshot_done(at);
      co_return true;
    }
    sink_.snapshot_abandoned();
    if (page != Page::kCompacted) co_return false;
    spdlog::info("watch {}: revision {} was compacted while reading the prefix in pages; reading again", prefix_,
                 at);
  }
  co_return false;
}

void PrefixWatcher::lost_contact() {
  if (!stats_.live && stats_.down_since != std::chrono::steady_clock::time_point{}) return;
  stats_.live = false;
  stats_.down_since = RuntimeClock::now();
}

asio::awaitable<void> PrefixWatcher::run() {
  // Backoff across restarts; logs once per state change, never once per cycle.
  core::WatchRetry retry(options_.retry);
  std::mt19937_64 rng{std::random_device{}()};
  std::uniform_real_distribution<double> uniform{0.0, 1.0};
  while (!stopping_) {
    const bool read = !need_snapshot_ || co_await snapshot();
    bool healthy = read;
    bool resync_now = false;  // compaction, or etcd wiped or replaced: re-read at once, nothing is failing
    bool canceled = false;
    std::string cancel_reason;
    std::shared_ptr<WatchSession> stream;
    EtcdStatus status;
    if (healthy && !stopping_) {
      stream = etcd_.new_watch();
      // Known to stop() from the start: a stop while the stream is still being opened must cancel it too,
      // or the finish below would wait for a server that never ends the stream (and join() forever).
      stream_ = stream;
      // Resume exactly after the last applied revision: nothing lost, nothing applied twice.
      WatchCreate create{.key = prefix_, .range_end = range_end_, .start_revision = stats_.revision + 1};
      healthy = co_await stream->open(std::move(create));
      if (healthy && !stopping_) {
        ++stats_.watch_starts;
        while (auto resp = co_await stream->read()) {
          stats_.live = true;
          if (resp->canceled) {
            if (resp->compact_revision > 0) {
              spdlog::warn("watch {}: revision {} was compacted (oldest kept {}); re-reading the prefix", prefix_,
                           stats_.revision + 1, resp->compact_revision);
              need_snapshot_ = true;
              resync_now = true;
            } else {
              // Logged below, once per outage: a member that keeps refusing cancels every new watch.
              canceled = true;
              cancel_reason = std::move(resp->cancel_reason);
            }
            stream->cancel();
            break;
          }
          const auto resync = core::needs_resync(cluster_id_, stats_.revision, resp->cluster_id, resp->revision);
          if (resync != core::ResyncReason::kNone) {
            spdlog::warn("watch {}: {} (header revision {}, ours {}); resyncing", prefix_, core::to_string(resync),
                         resp->revision, stats_.revision);
            need_snapshot_ = true;
            resync_now = true;
            stream->cancel();
            break;
          }
          if (resp->created) {
            // Not yet healthy: a refusing member creates and cancels in one breath. Events, progress or
            // staying up are what count (core::WatchRetry).
            retry.on_started(std::chrono::steady_clock::now());
            continue;
          }
          if (retry.on_delivered(std::chrono::steady_clock::now())) {
            spdlog::info("watch {}: resumed at revision {}", prefix_, stats_.revision + 1);
          }
          if (resp->events.empty()) {
            // A progress notification: every event up to the header revision has been delivered.
            stats_.revision = std::max(stats_.revision, resp->revision);
            continue;
          }
          for (const auto& ev : resp->events) stats_.revision = std::max(stats_.revision, ev.kv.mod_revision);
          sink_.on_events(resp->events);
        }
      }
      stream_.reset();
      if (stopping_) stream->cancel();
      status = co_await stream->finish();  // a failure was reported to the client for failover
    }
    if (stopping_) break;
    if (!resync_now) lost_contact();
    // A lost stream may mean etcd was wiped or restored: a wiped single member comes back with the same
    // cluster id and, once it has taken some writes, a revision past ours, so nothing in a header gives it
    // away. Re-read the prefix on every reconnect; an unchanged set costs one Range and no file write.
    need_snapshot_ = true;
    if (resync_now) continue;  // no backoff: the connection is fine, the data moved on
    const auto next = retry.on_ended(canceled ? core::WatchRetry::End::kCanceled : core::WatchRetry::End::kFailed,
                                     std::chrono::steady_clock::now(), uniform(rng));
    if (next.log && canceled) {
      spdlog::warn("watch {}: canceled by etcd: {}; re-reading the prefix with backoff", prefix_, cancel_reason);
    } else if (next.log && read) {  // a failed read said why itself (snapshot())
      spdlog::warn("watch {}: stream ended ({}); re-reading the prefix (last applied revision {})", prefix_,
                   status.ok ? "closed" : status.message, stats_.revision);
    }
    ++stats_.retries;
    stats_.last_retry_delay = next.delay;
    retry_.expires_after(next.delay);
    boost::system::error_code ec;
    co_await retry_.async_wait(asio::redirect_error(use_awaitable, ec));
  }
}

}  // namespace sidecar::runtime
