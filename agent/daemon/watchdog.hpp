// Owns: the systemd watchdog keep-alive: WATCHDOG=1 every half WATCHDOG_USEC, from a timer on the event loop.
// Thread: io_context thread. Because the ping is a loop timer, a stuck loop stops pinging and systemd
// restarts the agent; that is the whole point of doing it here rather than on a thread of its own.
#pragma once

#include <utility>  // before Asio: Boost 1.74's awaitable.hpp uses std::exchange without including it
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <optional>

namespace sidecar::daemon {

class Watchdog {
 public:
  Watchdog(boost::asio::io_context& io, std::chrono::microseconds interval);
  // Pings once now, then every interval.
  void start();
  void stop();
  // From WATCHDOG_USEC/WATCHDOG_PID in this process's environment; nullopt when systemd asked for none.
  static std::optional<std::chrono::microseconds> interval_from_env();

 private:
  void arm();

  boost::asio::steady_timer timer_;
  std::chrono::microseconds interval_;
  bool stopped_ = false;
};

}  // namespace sidecar::daemon
