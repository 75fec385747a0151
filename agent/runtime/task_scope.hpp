// Owns: the coroutines of one component (its long-lived loops): spawns them, counts the live ones, joins
//       them, and applies one policy to a loop that ends with an exception.
// Thread: io_context thread only.
#pragma once

#include <utility>  // before Asio: Boost 1.74's awaitable.hpp uses std::exchange without including it
#include <boost/asio/awaitable.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <exception>
#include <functional>
#include <map>
#include <memory>
#include <string>

namespace sidecar::runtime {

namespace asio = boost::asio;

// Structured concurrency on Asio 1.18, which has no per-operation cancellation: a component stops its loops
// the way it always has (a stopping flag, then cancel its timers and streams), and its scope is how the
// owner knows they are gone. The owner calls stop() and then `co_await join()`; only then is the component
// destroyed. Nothing is detached and nothing is kept alive "retired": a component that was stopped and
// joined is freed.
//
// A loop that ends with an exception is a bug (expected failures are values inside the loops). The scope
// logs it with the loop's name and calls the failure handler, which the agent uses to stop with a distinct
// exit code (systemd's Restart=on-failure then starts it afresh), so a dead loop is never silently gone.
class TaskScope {
 public:
  using FailureHandler = std::function<void(const std::string& task, const std::string& what)>;

  TaskScope(asio::io_context& io, std::string name);
  TaskScope(const TaskScope&) = delete;
  TaskScope& operator=(const TaskScope&) = delete;
  // A scope destroyed with live tasks is a bug, except when the loop itself has been stopped (a forced
  // exit): then the frames die with the io_context and never resume.
  ~TaskScope();

  // The process-wide policy for a loop that failed; default: log only. Set once by the daemon.
  static void set_failure_handler(FailureHandler handler);

  template <class Awaitable>
  void spawn(std::string task, Awaitable&& awaitable) {
    auto state = state_;
    ++state->live;
    asio::co_spawn(io_, std::forward<Awaitable>(awaitable),
                   [state, task = std::move(task)](std::exception_ptr e) { finished(*state, task, e); });
  }

  size_t live() const { return state_->live; }
  // Completes once no task of this scope is live; at once when none is.
  asio::awaitable<void> join();
  const std::string& name() const { return state_->name; }

 private:
  struct State {
    State(asio::io_context& io, std::string n) : name(std::move(n)), idle(io, asio::steady_timer::time_point::max()) {}
    std::string name;
    size_t live = 0;
    asio::steady_timer idle;  // never expires; cancelled to wake the joiners when `live` drops to zero
  };
  static void finished(State& state, const std::string& task, std::exception_ptr e);

  asio::io_context& io_;
  // Shared with the completion handlers, so the count stays valid whatever the destruction order at exit.
  std::shared_ptr<State> state_;
};

// Stops `component` and destroys it once its loops have ended: for the owner of components that come and go
// (a reload). The owner's own scope runs this, so it is joined with the owner.
template <class Component>
asio::awaitable<void> join_and_destroy(std::unique_ptr<Component> component) {
  co_await component->join();
}

}  // namespace sidecar::runtime
