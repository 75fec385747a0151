// Owns: the agent's lease, its registered keys in etcd, and the keepalive and own-key watch streams.
// Thread: io_context thread only; drives core::Registration and executes the actions it returns.
#pragma once

#include <utility>  // before Asio: Boost 1.74's awaitable.hpp uses std::exchange without including it
#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <unordered_map>
#include <vector>

#include "agent/core/health.hpp"
#include "agent/core/instance_state.hpp"
#include "agent/core/keepalive_gate.hpp"
#include "agent/core/metrics.hpp"
#include "agent/core/publication.hpp"
#include "agent/core/registration.hpp"
#include "agent/core/watch_retry.hpp"
#include "agent/runtime/clock.hpp"
#include "agent/runtime/etcd_port.hpp"
#include "agent/runtime/task_scope.hpp"

namespace sidecar::runtime {

namespace asio = boost::asio;

struct RegistrarHooks {
  std::function<void()> on_ready;  // every key registered for the first time (sd_notify READY=1)
  // The agent holds a new lease (granted or adopted): the daemon records it for a successor process.
  std::function<void(int64_t lease)> on_lease;
};

class Registrar {
 public:
  Registrar(asio::io_context& io, EtcdPort& etcd, std::vector<core::DesiredKey> keys,
            core::RegistrationOptions options, RegistrarHooks hooks = {});
  Registrar(const Registrar&) = delete;
  Registrar& operator=(const Registrar&) = delete;

  // Spawns the tick, keepalive and watch loops. `previous_lease`: the lease a previous process of this
  // agent left (state file); adopted if etcd still holds it, so its keys never disappear.
  void start(std::optional<int64_t> previous_lease = std::nullopt);
  // Deregisters: stops the loops and revokes the lease (which deletes every key attached to it) within
  // `budget`, even when etcd is unreachable. Keys held by another agent's lease are never touched.
  asio::awaitable<void> stop(std::chrono::milliseconds budget);
  // Handover (SIGQUIT): stops every loop and leaves the lease and its keys in etcd for a successor, which
  // adopts them. Returns the lease left behind (0: none).
  int64_t abandon();
  // Completes once every loop has ended (after stop() or abandon()).
  asio::awaitable<void> join() { return scope_.join(); }

  const core::Registration& state() const { return machine_; }
  // Seconds from sending a keepalive to its answer (for /metrics).
  const core::Histogram& keepalive_rtt() const { return keepalive_rtt_; }
  std::chrono::seconds ttl() const { return ttl_; }
  // Whether a keepalive write is in flight or owed (for tests and status).
  const core::KeepaliveGate& keepalive_gate() const { return keepalive_gate_; }

  // A key is published iff its service is healthy (or in maintenance) and the agent is not drained (see
  // core::Publication). Withdrawing deletes only that key (if still on our lease); the lease and the other
  // keys stay. All are idempotent. set_service_healthy(true) is passing, (false) critical.
  void set_service_healthy(size_t index, bool healthy, const std::string& reason);
  // passing, warning (published, its value says so) or critical (withdrawn unless in maintenance).
  void set_service_health(size_t index, core::HealthStatus health, const std::string& reason);
  // Maintenance keeps the key published with state "maintenance", whatever its health; drain still withdraws.
  void set_maintenance(size_t index, bool maintenance, const std::string& reason);
  core::InstanceState instance_state(size_t index) const { return publication_.state(index); }
  bool maintenance(size_t index) const { return publication_.maintenance(index); }
  // The value of key `index` in each state (core::encode_registration of its service). Set: the key is
  // rewritten in place (same lease, same create revision) whenever its state changes, and now if its value
  // in the current state differs. Unset (tests): the key's value never follows its state.
  using ValueOf = std::function<std::string(core::InstanceState)>;
  void set_value_source(size_t index, ValueOf value_of);
  // Drain: withdraw every key while the agent keeps running (SIGUSR1, the admin endpoint); undrain
  // publishes the healthy ones again (SIGUSR2). Ignored once shutdown has begun.
  void set_drained(bool drained, const std::string& reason);
  // Drained by an operator, or withdrawn for a shutdown.
  bool drained() const { return publication_.drained() || publication_.shutting_down(); }
  // Shutdown with a drain delay: withdraw every key for good and wait (at most `budget`) until etcd has
  // confirmed the deletes. The lease stays until stop(). True when every delete went through.
  asio::awaitable<bool> withdraw_for_shutdown(std::chrono::milliseconds budget);

  // Live reload. add_key registers one more key on the current lease (`key.published` is the service's
  // health; drain still applies) and returns its index; remove_key deletes one key (only while on our
  // lease) and forgets it, the lease and the other keys untouched; update_value rewrites one key in place.
  // Indices stay stable: a removed key's index is a tombstone, revived if the same key comes back.
  size_t add_key(core::DesiredKey key, bool maintenance = false);
  void remove_key(size_t index);
  void update_value(size_t index, std::string value);

 private:
  asio::awaitable<void> adopt_or_grant(int64_t lease);
  asio::awaitable<void> adopt_then_watch(int64_t lease);
  void halt_loops();
  asio::awaitable<void> tick_loop();
  asio::awaitable<void> keepalive_loop();
  asio::awaitable<void> watch_loop();
  // Reads the first `n` own keys and feeds them to the machine; the revision to watch after (the oldest
  // read), or 0 with `*failure` set.
  asio::awaitable<int64_t> read_own_keys(size_t n, EtcdStatus* failure);
  asio::awaitable<bool> retry_wait(std::chrono::milliseconds delay);  // on watch_retry_timer_
  asio::awaitable<bool> backoff_wait(Timer& timer, core::Backoff& backoff);

  void apply(core::Actions actions);
  // Each RPC is a coroutine of scope_, so join() also waits for the calls in flight (each bounded by the
  // client's request deadline, or cancelled at once by its shutdown).
  asio::awaitable<void> grant_lease();
  asio::awaitable<void> write_key(core::WriteKey write, GuardedPut put);
  asio::awaitable<void> delete_key(core::DeleteKey del, std::string key);
  // Hands the keys whose publication changed to the registration state machine.
  void update_published(const std::vector<size_t>& changed, const std::string& reason);
  // One key's state and/or publication changed: its value first (so a key published now is written with
  // its state), then its publication.
  void apply_change(size_t index, core::Publication::KeyChange change, const std::string& reason);
  void send_keepalive(int64_t lease);
  void write_keepalive(int64_t lease);
  asio::awaitable<void> keepalive_write(std::shared_ptr<KeepaliveSession> stream, int64_t lease);
  asio::awaitable<void> revoke(int64_t lease, std::chrono::milliseconds timeout);
  double random01() { return uniform_(rng_); }
  static core::TimePoint now() { return RuntimeClock::now(); }

  asio::io_context& io_;
  EtcdPort& etcd_;
  core::Registration machine_;
  RegistrarHooks hooks_;
  std::unordered_map<std::string, size_t> key_index_;
  std::chrono::seconds ttl_;

  Timer wake_;
  Timer keepalive_retry_;
  Timer watch_retry_timer_;
  core::WatchRetry watch_retry_;  // own-key watch: backoff across restarts, and one log line per state change
  Timer adopt_retry_;
  std::shared_ptr<KeepaliveSession> keepalive_stream_;
  std::deque<core::TimePoint> keepalive_sent_;  // send times of unanswered keepalives, oldest first
  core::KeepaliveGate keepalive_gate_;  // one write at a time; a keepalive that could not go out is owed
  std::shared_ptr<WatchSession> watch_stream_;
  bool rewatch_ = false;  // the key set grew: the own-key watch re-reads and re-watches every key
  // Write and delete results applied so far, and per key the count when its last one was: an own-key read
  // that was in flight while a key's result came in may predate it (see read_own_keys).
  uint64_t results_applied_ = 0;
  std::unordered_map<size_t, uint64_t> last_result_at_;
  bool stopping_ = false;
  int64_t reported_lease_ = 0;
  core::Histogram keepalive_rtt_{core::latency_buckets_seconds()};
  core::Publication publication_;
  std::unordered_map<size_t, ValueOf> value_of_;  // per key index, see set_value_source
  Timer settle_;  // woken whenever an action was applied, for withdraw_for_shutdown

  std::mt19937_64 rng_{std::random_device{}()};
  std::uniform_real_distribution<double> uniform_{0.0, 1.0};
  TaskScope scope_;  // last: the loops use the members above
};

}  // namespace sidecar::runtime
