// Owns: handing blocking work (file writes with fsync) to a worker thread and resuming on the io_context.
// Thread: called on the io_context thread; `fn` runs on the pool; the result comes back on the io_context.
#pragma once

#include <utility>  // before Asio: Boost 1.74's awaitable.hpp uses std::exchange without including it
#include <boost/asio/async_result.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <optional>
#include <type_traits>

namespace sidecar::runtime {

// `fn` must not touch agent state: it gets its inputs by value and returns its result by value.
// Not a coroutine itself (it returns the awaitable async_initiate makes): GCC 12 destroys a coroutine's
// by-value lambda parameter twice.
template <class Fn>
boost::asio::awaitable<std::invoke_result_t<Fn>> offload(boost::asio::io_context& io, boost::asio::thread_pool& pool,
                                                         Fn fn) {
  namespace asio = boost::asio;
  using R = std::invoke_result_t<Fn>;
  return asio::async_initiate<const asio::use_awaitable_t<>&, void(R)>(
      [&io, &pool, fn = std::move(fn)](auto handler) mutable {
        asio::post(pool, [&io, fn = std::move(fn), handler = std::move(handler),
                          work = asio::make_work_guard(io)]() mutable {
          // `fn` (and whatever it captured) is destroyed here, before the result is posted: the caller may
          // check on resumption that it holds the only reference to something it shared with the job.
          std::optional<R> result;
          {
            Fn local = std::move(fn);
            result.emplace(local());
          }
          asio::post(io, [handler = std::move(handler), result = std::move(*result)]() mutable {
            std::move(handler)(std::move(result));
          });
        });
      },
      asio::use_awaitable);
}

}  // namespace sidecar::runtime
