// Owns: the runtime's clock and timer type: steady_clock, plus an offset that only tests move, so that a
//       unit test makes a lease's TTL/3 or a backoff pass without waiting for it.
// Thread: any (the offset is atomic); a Timer runs on its io_context's thread like any Asio timer.
#pragma once

#include <boost/asio/basic_waitable_timer.hpp>
#include <atomic>
#include <chrono>

namespace sidecar::runtime {

// A steady clock whose readings a test can move forward. Its time_point is steady_clock's, so values mix
// freely with core::TimePoint. Asio recomputes a timer's remaining wait from now() whenever the loop looks
// at its timers, so an advance() makes due timers fire at the next turn of a loop run with a bounded wait
// (run_one_for); the daemon never advances it and pays one relaxed atomic load per reading.
struct RuntimeClock {
  using duration = std::chrono::steady_clock::duration;
  using rep = duration::rep;
  using period = duration::period;
  using time_point = std::chrono::steady_clock::time_point;
  static constexpr bool is_steady = true;

  static time_point now() noexcept {
    return std::chrono::steady_clock::now() + duration(offset_.load(std::memory_order_relaxed));
  }
  // Tests only.
  static void advance(duration by) { offset_.fetch_add(by.count(), std::memory_order_relaxed); }
  static void reset() { offset_.store(0, std::memory_order_relaxed); }

 private:
  static inline std::atomic<rep> offset_{0};
};

using Timer = boost::asio::basic_waitable_timer<RuntimeClock>;

}  // namespace sidecar::runtime
