#include "tests/runtime/fake_etcd.hpp"

#include <algorithm>
#include <boost/asio/post.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/use_awaitable.hpp>

namespace sidecar::runtime::testing {

namespace {

constexpr int kCancelled = 1;    // grpc::StatusCode::CANCELLED
constexpr int kUnavailable = 14;  // grpc::StatusCode::UNAVAILABLE

// Answers come a turn later, as from a real server: a component that assumed an inline answer would
// behave differently here than against etcd.
asio::awaitable<void> next_turn(asio::io_context& io) { co_await asio::post(io, asio::use_awaitable); }

}  // namespace

asio::awaitable<void> Signal::wait() {
  // No expires_at here: it would cancel the other waiters, which would wait again and cancel this one.
  boost::system::error_code ec;
  co_await timer_.async_wait(asio::redirect_error(asio::use_awaitable, ec));
}

FakeWatch::FakeWatch(FakeEtcd& etcd, asio::io_context& io) : etcd_(etcd), signal_(io) {}

asio::awaitable<bool> FakeWatch::open(WatchCreate create) {
  ++etcd_.opening_;
  co_await next_turn(etcd_.io_);
  while ((etcd_.hold_opens_ || etcd_.silent_) && !cancelled_) co_await signal_.wait();
  --etcd_.opening_;
  if (cancelled_) co_return false;
  opened_ = true;
  add(std::move(create));
  co_return true;
}

asio::awaitable<bool> FakeWatch::watch(WatchCreate create) {
  co_await next_turn(etcd_.io_);
  if (cancelled_ || end_ || !opened_) co_return false;
  add(std::move(create));
  co_return true;
}

void FakeWatch::add(WatchCreate create) {
  creates_.push_back(std::move(create));
  const WatchCreate& c = creates_.back();
  auto created = etcd_.header();
  created.created = true;
  queue_.push_back(created);
  if (etcd_.refuse_) {
    auto refused = etcd_.header();
    refused.canceled = true;
    refused.cancel_reason = *etcd_.refuse_;
    queue_.push_back(refused);
  } else if (c.start_revision > 0 && c.start_revision < etcd_.compacted_) {
    auto compacted = etcd_.header();
    compacted.canceled = true;
    compacted.compact_revision = etcd_.compacted_;
    queue_.push_back(compacted);
  } else {
    // Catch up from the start revision, one response per event, as a new etcd watch does.
    for (const auto& ev : etcd_.history_) {
      if (ev.kv.mod_revision < c.start_revision || !FakeEtcd::in_range(ev.kv.key, c)) continue;
      auto m = etcd_.header();
      m.events.push_back(ev);
      queue_.push_back(std::move(m));
    }
  }
  wake();
}

bool FakeWatch::covers(const std::string& key) const {
  return std::any_of(creates_.begin(), creates_.end(), [&](const WatchCreate& c) { return FakeEtcd::in_range(key, c); });
}

asio::awaitable<std::optional<WatchMessage>> FakeWatch::read() {
  co_await next_turn(etcd_.io_);
  while (queue_.empty() && !end_ && !cancelled_) co_await signal_.wait();
  if (cancelled_ || queue_.empty()) co_return std::nullopt;
  WatchMessage m = std::move(queue_.front());
  queue_.pop_front();
  co_return m;
}

void FakeWatch::cancel() {
  cancelled_ = true;
  wake();
}

asio::awaitable<EtcdStatus> FakeWatch::finish() {
  co_await next_turn(etcd_.io_);
  // As gRPC's Finish: the status comes once the server ended the stream or the client cancelled it.
  while (!end_ && !cancelled_) co_await signal_.wait();
  if (end_) co_return *end_;
  co_return EtcdStatus::failure(kCancelled, "cancelled");
}

void FakeWatch::push(WatchMessage m) {
  queue_.push_back(std::move(m));
  wake();
}

void FakeWatch::end(EtcdStatus status) {
  end_ = std::move(status);
  wake();
}

asio::awaitable<RangeResult> FakeEtcd::range(RangeQuery query) {
  ++ranges_;
  RangeResult out;
  if (!co_await answer(out.status, query.timeout)) co_return out;
  if (failing_ranges_ > 0) {
    --failing_ranges_;
    out.status = EtcdStatus::failure(kUnavailable, "fake etcd: unavailable");
    co_return out;
  }
  if (before_range) before_range(ranges_);
  if (query.revision > 0 && query.revision < compacted_) {
    out.status = EtcdStatus::failure(11 /* OUT_OF_RANGE */, "etcdserver: mvcc: required revision has been compacted");
    co_return out;
  }
  // A read at a past revision sees the store as it was then: replayed from the history.
  std::map<std::string, core::KvInput> past;
  if (query.revision > 0 && query.revision < revision_) {
    for (const auto& ev : history_) {
      if (ev.kv.mod_revision > query.revision) break;
      if (ev.type == core::EventInput::Type::kDelete) {
        past.erase(ev.kv.key);
      } else {
        past[ev.kv.key] = ev.kv;
      }
    }
  }
  const auto& store = query.revision > 0 && query.revision < revision_ ? past : kvs_;
  const WatchCreate range{.key = query.key, .range_end = query.range_end};
  for (auto it = store.lower_bound(query.key); it != store.end(); ++it) {
    if (!in_range(it->first, range)) break;  // from lower_bound(key) on, the first key outside ends the range
    if (query.limit > 0 && static_cast<int64_t>(out.kvs.size()) == query.limit) {
      out.more = true;
      break;
    }
    out.kvs.push_back(it->second);
  }
  ++range_pages_;
  out.revision = revision_;
  out.cluster_id = cluster_id_;
  co_return out;
}

asio::awaitable<KeysRead> FakeEtcd::read_keys(std::vector<std::string> keys) {
  KeysRead out;
  if (!co_await answer(out.status)) co_return out;
  if (keys.size() > 128) {  // etcd's default --max-txn-ops
    out.status = EtcdStatus::failure(3 /* INVALID_ARGUMENT */, "etcdserver: too many operations in txn request");
    co_return out;
  }
  out.revision = revision_;
  for (const auto& key : keys) {
    const auto kv = get(key);
    out.values.push_back(kv ? std::optional<core::Observed>(core::Observed{kv->value, kv->lease, kv->mod_revision})
                            : std::nullopt);
  }
  ++reads_;
  while (hold_reads_) co_await read_release_.wait();
  co_return out;
}

std::shared_ptr<WatchSession> FakeEtcd::new_watch() {
  watches_.push_back(std::make_shared<FakeWatch>(*this, io_));
  return watches_.back();
}

int64_t FakeEtcd::put(const std::string& key, const std::string& value, int64_t lease) {
  ++revision_;
  auto it = kvs_.find(key);
  const int64_t created = it == kvs_.end() ? revision_ : it->second.create_revision;
  core::KvInput kv{key, value, revision_, created, lease};
  kvs_[key] = kv;
  record({core::EventInput::Type::kPut, std::move(kv)});
  return revision_;
}

int64_t FakeEtcd::erase(const std::string& key) {
  if (kvs_.erase(key) == 0) return revision_;  // etcd: deleting nothing is no revision
  ++revision_;
  record({core::EventInput::Type::kDelete, core::KvInput{key, "", revision_, 0, 0}});
  return revision_;
}

void FakeEtcd::record(core::EventInput ev) {
  history_.push_back(ev);
  for (auto& w : watches_) {
    if (!w->opened_ || w->cancelled_ || w->end_ || !w->covers(ev.kv.key)) continue;
    auto m = header();
    m.events.push_back(ev);
    w->push(std::move(m));
  }
}

bool FakeEtcd::in_range(const std::string& key, const WatchCreate& c) {
  if (c.range_end.empty()) return key == c.key;
  if (key < c.key) return false;
  return c.range_end == std::string(1, '\0') || key < c.range_end;
}

void FakeEtcd::end_watches(EtcdStatus status) {
  for (auto& w : watches_) {
    if (w->opened_ && !w->cancelled_ && !w->end_) w->end(status);
  }
}

void FakeEtcd::cancel_watches_compacted(int64_t compact_revision) {
  compacted_ = std::max(compacted_, compact_revision);
  for (auto& w : watches_) {
    if (!w->opened_ || w->cancelled_ || w->end_) continue;
    auto m = header();
    m.canceled = true;
    m.compact_revision = compact_revision;
    w->push(std::move(m));
  }
}

std::optional<core::KvInput> FakeEtcd::get(const std::string& key) const {
  auto it = kvs_.find(key);
  if (it == kvs_.end()) return std::nullopt;
  return it->second;
}

void FakeEtcd::hold_reads(bool hold) {
  hold_reads_ = hold;
  read_release_.wake();
}

void FakeEtcd::hold_opens(bool hold) {
  hold_opens_ = hold;
  for (auto& w : watches_) w->wake();
}

size_t FakeEtcd::opening() const { return opening_; }

size_t FakeEtcd::open_watches() const {
  size_t n = 0;
  for (const auto& w : watches_) n += w->opened_ && !w->cancelled_ && !w->end_ ? 1 : 0;
  return n;
}

}  // namespace sidecar::runtime::testing
