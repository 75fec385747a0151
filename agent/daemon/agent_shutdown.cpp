#include <string.h>

#include <spdlog/spdlog.h>

#include <boost/asio/post.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <csignal>
#include <cstdlib>

#include "agent/core/registration.hpp"
#include "agent/daemon/agent_internal.hpp"
#include "agent/daemon/sd_notify.hpp"
#include "agent/runtime/command.hpp"

// Signals and the ways out: SIGTERM/SIGINT deregister (after drain_delay), SIGQUIT hands the lease over,
// a failed loop deregisters and exits kExitSoftware. Every one of them has one hard deadline (begin_exit).
namespace sidecar::daemon {

namespace {

// SIGTERM must end the process within 1 s of the drain delay even with etcd gone: the revoke gets most of
// it, the rest is joining the loops, which does not wait on the network.
constexpr std::chrono::milliseconds kRevokeBudget{600};
constexpr std::chrono::milliseconds kHardStop{900};
// With a drain delay, how long to wait for etcd to confirm the deletes (never longer than the delay).
constexpr std::chrono::milliseconds kWithdrawBudget{1000};

}  // namespace

void Agent::on_signal(const boost::system::error_code& ec, int signo) {
  if (ec) return;
  auto again = [this] { signals_.async_wait([this](const boost::system::error_code& e, int s) { on_signal(e, s); }); };
  if (signo == SIGHUP) {
    if (shutting_down_) {
      spdlog::info("SIGHUP: ignored, the agent is shutting down");
    } else {
      reload("SIGHUP");
    }
    again();
    return;
  }
  if (signo == SIGUSR1 || signo == SIGUSR2) {
    const bool drain = signo == SIGUSR1;
    const std::string reason = drain ? "SIGUSR1" : "SIGUSR2";
    if (registrar_) {
      registrar_->set_drained(drain, reason);
    } else {
      spdlog::info("{}: nothing to {}, no services are registered", reason, drain ? "drain" : "undrain");
    }
    again();
    return;
  }
  if (shutting_down_) {
    spdlog::warn("second signal ({}): exiting at once", strsignal(signo));
    if (options_.before_hard_exit) options_.before_hard_exit();
    std::_Exit(kExitFailure);
  }
  again();  // listen for the second one
  sd_notify("STOPPING=1");
  if (signo == SIGQUIT) {
    // Half a TTL: the successor then still finds the lease alive with at least half its TTL left.
    const auto budget = std::chrono::duration_cast<std::chrono::milliseconds>(manifest_.lease_ttl) / 2;
    exit_code_ = kExitHandover;
    begin_exit(Exit::kHandover, budget);
    spdlog::info("SIGQUIT received: stopping watches and checks, keeping the lease alive until the handover "
                 "(at most {} ms)", budget.count());
    scope_.spawn("handover", handover_sequence());
    return;
  }
  if (registrar_ && manifest_.drain_delay.count() > 0) {
    spdlog::info("{} received: withdrawing keys, then deregistering after drain_delay {} ms (send it again to exit at once)",
                 strsignal(signo), manifest_.drain_delay.count());
    begin_exit(Exit::kDeregister, manifest_.drain_delay + kHardStop);
    scope_.spawn("drain before shutdown", drain_then(manifest_.drain_delay));
    return;
  }
  spdlog::info("{} received: deregistering", strsignal(signo));
  begin_exit(Exit::kDeregister, kHardStop);
  deregister();
}

// The one deadline of an exit, armed when it begins. Whatever still runs then (an on_change that hangs, a
// check's command, a join waiting on a dead etcd) is killed or abandoned: the exit never outlives it.
void Agent::begin_exit(Exit how, std::chrono::milliseconds deadline) {
  shutting_down_ = true;
  exit_how_ = how;
  exit_budget_ = deadline;
  release_pages_.cancel();
  exit_deadline_.expires_after(deadline);
  exit_deadline_.async_wait([this](const boost::system::error_code& e) {
    if (!e) on_exit_deadline();
  });
}

void Agent::on_exit_deadline() {
  const size_t killed = runtime::kill_running_commands();
  const std::string what = exit_how_ == Exit::kHandover ? "handover" : "shutdown";
  spdlog::warn("{} not finished within {} ms: killed {} running command(s) (their process groups); exiting now", what,
               exit_budget_.count(), killed);
  if (exit_how_ == Exit::kHandover) finish_handover();
  io_.stop();
}

void Agent::deregister() { scope_.spawn("shutdown", shutdown_sequence()); }

void Agent::stop_health() {
  for (auto& s : services_) s.health->stop();
}

// Everything that reads from etcd or runs checks; the registrar (the keys and their lease) is not one of them.
void Agent::stop_consumers() {
  if (manifest_watch_) manifest_watch_->stop();
  stop_health();
  for (auto& d : discoveries_) d->stop();
  for (auto& m : mirrors_) m->stop();
  // Blocking queries and event streams answer now (503) and end: they would otherwise hold the loop.
  if (catalog_http_) catalog_http_->stop();
  if (dns_) dns_->stop();
  if (xds_) xds_->stop();
  if (catalog_) catalog_->stop();
}

// No reload runs while shutting down, so these vectors stay as they are while this waits.
asio::awaitable<void> Agent::join_consumers() {
  if (manifest_watch_) co_await manifest_watch_->join();
  for (auto& s : services_) co_await s.health->join();
  for (auto& d : discoveries_) co_await d->join();
  for (auto& m : mirrors_) co_await m->join();
  if (catalog_http_) co_await catalog_http_->join();
  if (dns_) co_await dns_->join();
  if (xds_) co_await xds_->join();
  if (catalog_) co_await catalog_->join();
}

// A plain member, not a lambda: a coroutine lambda's captures die with the temporary closure object.
asio::awaitable<void> Agent::shutdown_sequence() {
  stop_consumers();
  if (registrar_) co_await registrar_->stop(kRevokeBudget);
  // An output still writing or running its on_change finishes, within the deadline.
  co_await join_consumers();
  // The admin endpoint answers (readyz 503) until deregistration is done, then goes with the loop.
  if (admin_) admin_->stop();
  if (watchdog_) watchdog_->stop();
  if (client_) client_->shutdown();
  exit_deadline_.cancel();
  signals_.cancel();
}

// SIGTERM with a drain delay: take the keys out first (the lease stays, so nothing else moves), give the
// app `delay` (counted from the signal) to finish in-flight requests while clients notice, then deregister.
asio::awaitable<void> Agent::drain_then(std::chrono::milliseconds delay) {
  stop_health();  // no check result may publish a key again
  const auto started = std::chrono::steady_clock::now();
  const bool withdrawn = co_await registrar_->withdraw_for_shutdown(std::min(kWithdrawBudget, delay));
  const auto took = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - started);
  if (withdrawn) {
    spdlog::info("keys deleted in {} ms; waiting drain_delay {} ms before revoking the lease", took.count(),
                 delay.count());
  } else {
    spdlog::warn("not every key could be deleted within {} ms; waiting drain_delay {} ms anyway", took.count(),
                 delay.count());
  }
  drain_delay_.expires_at(started + delay);
  boost::system::error_code ec;
  co_await drain_delay_.async_wait(asio::redirect_error(asio::use_awaitable, ec));
  co_await shutdown_sequence();
}

// A lease record still queued on the writer thread is written (and has reported back to this thread) once
// this completes.
asio::awaitable<void> Agent::flush_writer() {
  asio::steady_timer flushed(io_, asio::steady_timer::time_point::max());
  asio::post(writer_, [this, &flushed] { asio::post(io_, [&flushed] { flushed.cancel(); }); });
  boost::system::error_code ec;
  co_await flushed.async_wait(asio::redirect_error(asio::use_awaitable, ec));
}

// SIGQUIT: exit for an upgrade. Nothing is deregistered: the lease (recorded in the state file) and its keys
// stay in etcd and the next process adopts them. The keepalives go on until the consumers have stopped, so
// the lease is handed over with its whole TTL left, not whatever a slow on_change left of it.
asio::awaitable<void> Agent::handover_sequence() {
  stop_consumers();
  co_await join_consumers();
  co_await flush_writer();
  finish_handover();
  exit_deadline_.cancel();
}

void Agent::finish_handover() {
  if (handed_over_) return;
  handed_over_ = true;
  if (registrar_) {
    const int64_t lease = registrar_->abandon();
    if (lease != 0 && lease_recorded_) {
      spdlog::info("SIGQUIT: leaving lease {} and {} key(s) in etcd for the next process", core::lease_to_hex(lease),
                   registrar_->state().live_key_count());
    } else if (lease != 0) {
      spdlog::warn("SIGQUIT: lease {} is not recorded in a state file; the next process registers on a new "
                   "lease and these keys expire with this one", core::lease_to_hex(lease));
    }
  }
  if (admin_) admin_->stop();
  if (watchdog_) watchdog_->stop();
  if (client_) client_->shutdown();
  drain_delay_.cancel();
  signals_.cancel();
}

void Agent::on_loop_failure(const std::string& task) {
  if (shutting_down_) return;  // already on the way out; the deadline bounds it
  exit_code_ = kExitSoftware;
  spdlog::critical("{} ended unexpectedly: deregistering and exiting with code {} so that the service manager "
                   "starts the agent afresh", task, kExitSoftware);
  sd_notify("STOPPING=1");
  begin_exit(Exit::kDeregister, kHardStop);
  deregister();
}

}  // namespace sidecar::daemon
