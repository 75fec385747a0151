#include "agent/runtime/task_scope.hpp"

#include <spdlog/spdlog.h>

#include <boost/asio/redirect_error.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <cassert>

namespace sidecar::runtime {

namespace {

TaskScope::FailureHandler& failure_handler() {
  static TaskScope::FailureHandler handler;
  return handler;
}

}  // namespace

TaskScope::TaskScope(asio::io_context& io, std::string name)
    : io_(io), state_(std::make_shared<State>(io, std::move(name))) {}

TaskScope::~TaskScope() {
  if (state_->live > 0 && !io_.stopped()) {
    spdlog::critical("{}: destroyed with {} live task(s)", state_->name, state_->live);
    assert(false && "a TaskScope must be joined before it is destroyed");
  }
}

void TaskScope::set_failure_handler(FailureHandler handler) { failure_handler() = std::move(handler); }

void TaskScope::finished(State& state, const std::string& task, std::exception_ptr e) {
  --state.live;
  if (state.live == 0) state.idle.cancel();
  if (!e) return;
  std::string what = "unknown exception";
  try {
    std::rethrow_exception(e);
  } catch (const std::exception& ex) {
    what = ex.what();
  } catch (...) {
  }
  spdlog::critical("{}: {} loop failed: {}", state.name, task, what);
  if (failure_handler()) failure_handler()(state.name + ": " + task, what);
}

asio::awaitable<void> TaskScope::join() {
  auto state = state_;
  while (state->live > 0) {
    boost::system::error_code ec;
    co_await state->idle.async_wait(asio::redirect_error(asio::use_awaitable, ec));
  }
}

}  // namespace sidecar::runtime
