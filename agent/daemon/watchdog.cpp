#include "agent/daemon/watchdog.hpp"

#include <unistd.h>

#include <spdlog/spdlog.h>

#include <cstdlib>
#include <string>

#include "agent/core/systemd_env.hpp"
#include "agent/daemon/sd_notify.hpp"

namespace sidecar::daemon {

namespace {

std::optional<std::string> env(const char* name) {
  const char* value = std::getenv(name);
  if (value == nullptr) return std::nullopt;
  return std::string(value);
}

}  // namespace

Watchdog::Watchdog(boost::asio::io_context& io, std::chrono::microseconds interval) : timer_(io), interval_(interval) {}

std::optional<std::chrono::microseconds> Watchdog::interval_from_env() {
  return core::watchdog_ping_interval(env("WATCHDOG_USEC"), env("WATCHDOG_PID"), ::getpid());
}

void Watchdog::start() {
  spdlog::info("systemd watchdog: WATCHDOG=1 every {} ms",
               std::chrono::duration_cast<std::chrono::milliseconds>(interval_).count());
  sd_notify("WATCHDOG=1");
  arm();
}

void Watchdog::stop() {
  stopped_ = true;
  timer_.cancel();
}

void Watchdog::arm() {
  if (stopped_) return;
  timer_.expires_after(interval_);
  timer_.async_wait([this](const boost::system::error_code& ec) {
    if (ec || stopped_) return;
    sd_notify("WATCHDOG=1");
    arm();
  });
}

}  // namespace sidecar::daemon
