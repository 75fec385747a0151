// Owns: small helpers for spawning owned coroutines on the io_context.
// Thread: io_context thread.
#pragma once

#include <utility>  // before Asio: Boost 1.74's awaitable.hpp uses std::exchange without including it
#include <spdlog/spdlog.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <exception>
#include <string>

namespace sidecar::runtime {

// Spawns a long-lived loop. An exception escaping it is a bug, never silently detached: it is logged with the
// loop's name. Expected failures inside the loops are values and never get here.
template <class Awaitable>
void spawn_owned(boost::asio::io_context& io, std::string name, Awaitable&& awaitable) {
  boost::asio::co_spawn(io, std::forward<Awaitable>(awaitable), [name = std::move(name)](std::exception_ptr e) {
    if (!e) return;
    try {
      std::rethrow_exception(e);
    } catch (const std::exception& ex) {
      spdlog::critical("{} loop failed: {}", name, ex.what());
    } catch (...) {
      spdlog::critical("{} loop failed with an unknown exception", name);
    }
  });
}

}  // namespace sidecar::runtime
