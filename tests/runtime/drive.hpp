// Owns: how runtime unit tests drive their io_context: run handlers until a condition holds.
// Thread: the test's thread, which is the io_context's thread for the duration of a call.
#pragma once

#include <boost/asio/io_context.hpp>
#include <chrono>
#include <functional>
#include <memory>

#include "agent/runtime/clock.hpp"
#include "agent/runtime/task_scope.hpp"

namespace sidecar::runtime::testing {

// Runs handlers until `done` holds; false if it still does not after `limit`. The limit only turns a hang
// into a failure: a passing test never waits for it.
inline bool run_until(boost::asio::io_context& io, const std::function<bool()>& done,
                      std::chrono::milliseconds limit = std::chrono::seconds(5)) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  while (!done()) {
    if (std::chrono::steady_clock::now() >= deadline) return false;
    if (io.stopped()) io.restart();
    io.run_one_for(std::chrono::milliseconds(10));
  }
  return true;
}

// Moves the RuntimeClock forward and makes the loop look at its timers again. Asio arms a timerfd for the
// nearest deadline when a wait is scheduled, so a timer the advance made due would otherwise fire only when
// that timerfd expires in real time; scheduling a wait that is due before every other re-arms it.
inline void advance_clock(boost::asio::io_context& io, std::chrono::steady_clock::duration by) {
  RuntimeClock::advance(by);
  auto poke = std::make_shared<Timer>(io, RuntimeClock::time_point::min());
  poke->async_wait([poke](const boost::system::error_code&) {});
}

// Runs the loop until `component.join()` has completed, awaited from a scope of the test's own (nothing
// detached); false if it did not within the bound.
template <class Component>
bool join(boost::asio::io_context& io, Component& component) {
  TaskScope scope(io, "test join");
  scope.spawn("join", component.join());
  return run_until(io, [&] { return scope.live() == 0; });
}

template <class Component>
bool stop_and_join(boost::asio::io_context& io, Component& component) {
  component.stop();
  return join(io, component);
}

}  // namespace sidecar::runtime::testing
