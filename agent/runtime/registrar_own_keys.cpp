#include <spdlog/spdlog.h>

#include <boost/asio/redirect_error.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "agent/runtime/registrar.hpp"

// The registrar's view of its own keys in etcd: the chunked read and the own-key watch that notice a key
// deleted or overwritten by someone else. The lease, writes and deletes are in registrar.cpp.
namespace sidecar::runtime {

using asio::use_awaitable;
using core::TimePoint;

namespace {

// etcd's default --max-txn-ops: a Txn with more operations in a branch is refused outright ("too many
// operations in txn request"), so a multi-key Txn goes out in chunks of at most this many. (Writes and
// deletes are one Txn per key, and revoking is one call per lease, so only the own-key read is multi-key.)
constexpr size_t kMaxTxnOps = 128;
// Own-key watch creates sent before waiting for etcd's "created" answers.
constexpr size_t kWatchCreatesInFlight = 128;

}  // namespace

asio::awaitable<int64_t> Registrar::read_own_keys(size_t n, EtcdStatus* failure) {
  // Reading (rather than resuming an old watch) is what copes with an etcd whose revisions went back. The
  // read goes out in Txns of at most kMaxTxnOps Ranges, each at the then current revision, and each key is
  // judged at its own chunk's revision: as fresh as one Txn was. Reading the later chunks at the first
  // chunk's revision instead would judge keys we registered meanwhile by an older state, where they are
  // still absent ("deleted by another client": a needless rewrite). The watch starts after the first
  // chunk's revision, the oldest: it replays what a later chunk already saw, which Registration drops as
  // known, so nothing between a read and the watch is missed.
  // Per-key Ranges rather than one Range over the agent's key span: the keys are spread over service names
  // (/services/<name>/<id>), so that span is most of the registry, every other agent's keys included.
  int64_t first_revision = 0;
  size_t begin = 0;
  do {
    const size_t end = std::min(n, begin + kMaxTxnOps);
    std::vector<std::string> keys;
    keys.reserve(end - begin);
    for (size_t i = begin; i < end; ++i) keys.push_back(machine_.desired(i).key);
    const uint64_t issued = results_applied_;
    KeysRead r = co_await etcd_.read_keys(std::move(keys));
    if (stopping_) co_return 0;
    if (!r.status.ok) {
      *failure = std::move(r.status);
      co_return 0;
    }
    if (begin == 0) first_revision = r.revision;
    for (size_t i = begin; i < end && i - begin < r.values.size(); ++i) {
      // A write or delete of this key completed while the read was in flight: etcd may have answered the
      // read (a linearizable Range waits for a read index) at a revision before it, and taking that as
      // current would undo our own write ("deleted by another client"). Skip it: the watch starts after
      // this read's revision, so whatever happened to the key since is replayed to us anyway.
      if (auto it = last_result_at_.find(i); it != last_result_at_.end() && it->second > issued) continue;
      apply(machine_.on_observed(i, std::move(r.values[i - begin]), r.revision, core::ObservationSource::kRange,
                                 now(), random01()));
    }
    begin = end;
  } while (begin < n);
  co_return first_revision;
}

asio::awaitable<void> Registrar::watch_loop() {
  while (!stopping_) {
    rewatch_ = false;
    const size_t n = machine_.key_count();
    if (n == 0) {
      // Nothing to watch until a reload adds a key (add_key wakes this).
      if (!co_await retry_wait(std::chrono::hours(24))) break;
      continue;
    }
    // 1. Read every key; `revision` is the oldest revision a key was judged at.
    EtcdStatus read_failure;
    const int64_t revision = co_await read_own_keys(n, &read_failure);
    if (stopping_) break;
    if (!read_failure.ok) {
      const auto retry = watch_retry_.on_ended(core::WatchRetry::End::kFailed, now(), random01());
      if (retry.log) spdlog::warn("cannot read own keys from etcd: {}; retrying", read_failure.message);
      if (!co_await retry_wait(retry.delay)) break;
      continue;
    }

    // 2. Watch each key from just after that read, so nothing between the read and the watch is missed.
    std::string cancel_reason;
    bool canceled = false;
    bool compacted = false;
    size_t created = 0;
    // False when the watch is over: etcd cancelled it (compaction, no leader, permission denied, ...).
    auto handle = [&](WatchMessage& resp) {
      if (resp.canceled) {
        canceled = true;
        compacted = resp.compact_revision > 0;
        cancel_reason = std::move(resp.cancel_reason);
        return false;
      }
      if (resp.created) ++created;
      if (!resp.events.empty() && watch_retry_.on_delivered(now())) {
        spdlog::info("own-key watch on {} is back", watch_stream_ ? watch_stream_->endpoint() : std::string("etcd"));
      }
      for (auto& ev : resp.events) {
        auto it = key_index_.find(ev.kv.key);
        if (it == key_index_.end()) continue;
        std::optional<core::Observed> current;
        if (ev.type == core::EventInput::Type::kPut) {
          current = core::Observed{std::move(ev.kv.value), ev.kv.lease, ev.kv.mod_revision};
        }
        apply(machine_.on_observed(it->second, std::move(current), ev.kv.mod_revision, core::ObservationSource::kWatch,
                                   now(), random01()));
      }
      return true;
    };
    auto stream = etcd_.new_watch();
    watch_stream_ = stream;  // from creation: a stop while it opens must cancel it too
    // Creates go out in batches, each answered ("created") before the next: etcd answers every create on
    // this stream, and a client that only writes thousands of them would stall both directions on flow
    // control. The first create opens the stream.
    bool healthy = true;
    for (size_t begin = 0; healthy && begin < n; begin += kWatchCreatesInFlight) {
      const size_t end = std::min(n, begin + kWatchCreatesInFlight);
      for (size_t i = begin; healthy && i < end; ++i) {
        WatchCreate create{.key = machine_.desired(i).key, .start_revision = revision + 1, .progress_notify = false};
        if (i == 0) {
          healthy = co_await stream->open(std::move(create));
        } else {
          healthy = co_await stream->watch(std::move(create));
        }
      }
      while (healthy && created < end) {
        auto resp = co_await stream->read();
        healthy = resp && handle(*resp);
      }
    }
    if (healthy && rewatch_) stream->cancel();  // a key was added while this watch was being set up
    if (healthy && !stopping_) {
      watch_retry_.on_started(now());
      wake_.cancel();  // the tick loop re-reads when a recovery is due
      while (auto resp = co_await stream->read()) {
        if (!handle(*resp)) break;
      }
    }
    if (canceled || stopping_) stream->cancel();
    watch_stream_.reset();
    const EtcdStatus status = co_await stream->finish();
    if (stopping_) break;
    if (rewatch_) {
      spdlog::debug("own-key watch restarted for {} key(s)", machine_.key_count());
      continue;  // cancelled by add_key, not a failure: no backoff, no endpoint switch
    }
    if (compacted) {
      // Our start revision is gone: read again at a fresh one and re-watch, at once (nothing is failing).
      spdlog::info("own-key watch: revision {} was compacted; re-reading keys", revision + 1);
      continue;
    }
    const auto retry = watch_retry_.on_ended(canceled ? core::WatchRetry::End::kCanceled : core::WatchRetry::End::kFailed,
                                             now(), random01());
    if (retry.log) {
      if (canceled) {
        spdlog::warn("own-key watch on {} canceled by etcd ({}); re-reading and re-watching with backoff",
                     stream->endpoint(), cancel_reason);
      } else {
        spdlog::warn("own-key watch on {} ended: {}; re-reading and re-watching", stream->endpoint(),
                     status.ok ? "closed by server" : status.message);
      }
    }
    if (!co_await retry_wait(retry.delay)) break;
  }
}

asio::awaitable<bool> Registrar::retry_wait(std::chrono::milliseconds delay) {
  watch_retry_timer_.expires_after(delay);
  boost::system::error_code ec;
  co_await watch_retry_timer_.async_wait(asio::redirect_error(use_awaitable, ec));
  co_return !stopping_;
}

}  // namespace sidecar::runtime
