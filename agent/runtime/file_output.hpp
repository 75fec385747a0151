// Owns: one output file — when to write it (coalescing), validating it (check_command), replacing it
// atomically on the writer thread, and telling the application (on_change).
// Thread: io_context thread; the write itself runs on the writer pool.
#pragma once

#include <utility>  // before Asio: Boost 1.74's awaitable.hpp uses std::exchange without including it
#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/thread_pool.hpp>
#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "agent/core/backoff.hpp"
#include "agent/core/coalescer.hpp"
#include "agent/runtime/command.hpp"
#include "agent/runtime/task_scope.hpp"

namespace sidecar::runtime {

namespace asio = boost::asio;

struct FileOutputOptions {
  std::string name;                 // for log lines: "discover order-service"
  std::string path;
  unsigned mode = 0644;
  std::chrono::milliseconds wait_min{0};
  std::chrono::milliseconds wait_max{1000};
  // Fixed spacing between writes; unset: the writing-time budget (a tenth of wall time, core::Coalescer).
  std::optional<std::chrono::milliseconds> wait_holdoff;
  std::string check_command;        // "{{staged}}" is replaced by the staged file's path
  std::string on_change;
  std::chrono::milliseconds command_timeout{30000};
};

struct FileOutputStats {
  uint64_t writes = 0;
  uint64_t write_failures = 0;
  uint64_t unchanged = 0;            // renders that produced the bytes already on disk
  uint64_t check_failures = 0;
  uint64_t on_change_runs = 0;
  uint64_t on_change_failures = 0;
  std::chrono::steady_clock::duration writing{0};  // render + write (+ check_command), summed over attempts
  std::chrono::steady_clock::duration on_change_running{0};  // on_change runs, summed
  std::string last_error;
};

class FileOutput {
 public:
  // `render` fills `out` (a reused buffer: assign or clear it) and returns true, or returns false to keep
  // the current file (a guard said no).
  using Render = std::function<bool(std::string& out)>;

  FileOutput(asio::io_context& io, asio::thread_pool& writer, FileOutputOptions options, Render render);
  void start();
  void stop();
  // Completes once every loop started by start() has ended (after stop()); then this may be destroyed.
  asio::awaitable<void> join() { return scope_.join(); }
  // The content may have changed (`changes` keys of it); the write happens as the coalescer allows.
  void changed(std::size_t changes = 1);
  const FileOutputStats& stats() const { return stats_; }
  const FileOutputOptions& options() const { return options_; }

 private:
  asio::awaitable<void> run();
  asio::awaitable<void> produce();
  enum class Outcome { kWritten, kUnchanged, kRejected, kFailed };
  using Bytes = std::shared_ptr<std::string>;
  asio::awaitable<Outcome> write(const Bytes& bytes);  // by reference: the caller's copy outlives the call
  void report_failure(const std::string& error);
  asio::awaitable<void> run_on_change();
  void maybe_start_on_change(std::chrono::steady_clock::time_point now);
  std::optional<std::chrono::steady_clock::time_point> on_change_at() const;  // nullopt: not owed or running

  asio::io_context& io_;
  asio::thread_pool& writer_;
  FileOutputOptions options_;
  Render render_;
  core::Coalescer coalescer_;
  core::CommandPacer on_change_pacer_;
  asio::steady_timer wake_;
  core::Backoff retry_backoff_{{std::chrono::milliseconds(200), std::chrono::milliseconds(5000), 2.0, 0.2}};
  std::optional<std::chrono::steady_clock::time_point> retry_at_;
  // What a rendered file is remembered by: its length and two 64-bit hashes. Keeping the bytes themselves
  // cost a second copy of every file (15 MB at 100,000 instances); a false "unchanged" needs both hashes
  // of a different file of the same length to collide.
  struct Digest {
    size_t size = 0;
    size_t h1 = 0;
    size_t h2 = 0;
    bool operator==(const Digest&) const = default;
  };
  static Digest digest_of(const std::string& bytes);
  // Buffers up to this size are kept for the next render (warm pages); larger ones are freed after each
  // write, so a 100,000-instance file does not stay resident between writes.
  static constexpr size_t kKeepBufferBytes = 2 * 1024 * 1024;

  Bytes scratch_;                          // the next render goes here
  std::optional<Digest> last_written_;     // the file known to be on disk
  std::optional<Digest> rejected_;         // what check_command refused; not re-checked until it changes
  bool on_change_owed_ = false;
  std::chrono::steady_clock::time_point on_change_owed_since_{};  // the first write it is owed for
  bool failing_ = false;
  bool stopping_ = false;
  FileOutputStats stats_;
  TaskScope scope_;  // last: the loop it joins uses the members above
};

}  // namespace sidecar::runtime
