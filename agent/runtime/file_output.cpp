#include "agent/runtime/file_output.hpp"

#include <bits/hash_bytes.h>  // std::_Hash_bytes: libstdc++'s exported byte hash, seedable

#include <spdlog/spdlog.h>

#include <boost/asio/redirect_error.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "agent/output/atomic_file.hpp"
#include "agent/runtime/command.hpp"
#include "agent/runtime/offload.hpp"

namespace sidecar::runtime {

using asio::use_awaitable;
using Clock = std::chrono::steady_clock;

namespace {

std::string replace_all(std::string text, const std::string& from, const std::string& to) {
  for (size_t pos = text.find(from); pos != std::string::npos; pos = text.find(from, pos + to.size())) {
    text.replace(pos, from.size(), to);
  }
  return text;
}

std::string first_line(const std::string& text) {
  auto end = text.find('\n');
  std::string line = text.substr(0, end);
  return line.size() > 200 ? line.substr(0, 200) + "..." : line;
}

}  // namespace

FileOutput::FileOutput(asio::io_context& io, asio::thread_pool& writer, FileOutputOptions options, Render render)
    : io_(io),
      writer_(writer),
      options_(std::move(options)),
      render_(std::move(render)),
      coalescer_(options_.wait_holdoff ? core::Coalescer(options_.wait_min, options_.wait_max, *options_.wait_holdoff)
                                       : core::Coalescer(options_.wait_min, options_.wait_max)),
      wake_(io),
      scope_(io, "output " + options_.path) {}

void FileOutput::start() { scope_.spawn("write loop", run()); }

void FileOutput::stop() {
  stopping_ = true;
  wake_.cancel();
}

void FileOutput::changed(std::size_t changes) {
  coalescer_.on_change(Clock::now(), changes);
  wake_.cancel();
}

void FileOutput::report_failure(const std::string& error) {
  ++stats_.write_failures;
  stats_.last_error = error;
  if (!failing_) {
    spdlog::error("{}: cannot write {}: {}; keeping the previous file, retrying", options_.name, options_.path, error);
    failing_ = true;
  }
}

asio::awaitable<FileOutput::Outcome> FileOutput::write(const Bytes& bytes) {
  const std::string path = options_.path;
  const unsigned mode = options_.mode;
  if (options_.check_command.empty()) {
    const bool compare_disk = !last_written_.has_value();  // first write after start: maybe already there
    // Jobs are named locals, not temporaries inside co_await: GCC 12 destroys such temporaries twice.
    // The job shares the rendered bytes instead of copying them: at 10,000 instances that is a megabyte,
    // and a fresh megabyte costs page faults on every write.
    auto job = [path, bytes = Bytes(bytes), mode, compare_disk] {
      return output::write_file_atomic(path, *bytes, mode, compare_disk);
    };
    auto r = co_await offload(io_, writer_, std::move(job));
    if (!r.ok()) {
      report_failure(r.error);
      co_return Outcome::kFailed;
    }
    if (!r.warning.empty()) spdlog::warn("{}: {}", options_.name, r.warning);
    co_return r.status == output::WriteResult::Status::kUnchanged ? Outcome::kUnchanged : Outcome::kWritten;
  }

  auto stage_job = [path, bytes, mode] { return output::stage_file(path, *bytes, mode); };
  auto staged = co_await offload(io_, writer_, std::move(stage_job));
  if (!staged.ok()) {
    report_failure(staged.error);
    co_return Outcome::kFailed;
  }
  const std::string staged_path = *staged.staged_path;
  std::string check_command = replace_all(options_.check_command, "{{staged}}", staged_path);
  auto check = co_await run_shell(std::move(check_command), options_.command_timeout);
  if (!check.ok()) {
    ++stats_.check_failures;
    spdlog::error("{}: check_command refused the new {} ({}): {}; keeping the previous file", options_.name,
                  options_.path, check.describe(), first_line(check.output));
    auto discard_job = [staged_path] {
      output::discard_staged(staged_path);
      return true;
    };
    co_await offload(io_, writer_, std::move(discard_job));
    co_return Outcome::kRejected;
  }
  auto commit_job = [staged_path, path] { return output::commit_staged(staged_path, path); };
  auto r = co_await offload(io_, writer_, std::move(commit_job));
  if (!r.ok()) {
    report_failure(r.error);
    co_return Outcome::kFailed;
  }
  co_return Outcome::kWritten;
}

// on_change runs beside the write loop, not in it: a 100 ms reload must not hold back the next file. The
// pacer keeps it to one run at a time, and to at most one per kCostFactor times its last duration. It waits
// for the file to settle — nothing pending and no change for Coalescer::kSettle, since the budget now
// writes a sequential stream change by change and "nothing pending" alone holds between two puts of a
// burst — so a burst runs it about once, but no longer than wait.max: an endless stream must not starve
// the application of every new file.
std::optional<Clock::time_point> FileOutput::on_change_at() const {
  if (!on_change_owed_) return std::nullopt;
  const auto paced = on_change_pacer_.next_start();
  if (!paced) return std::nullopt;  // running; its end wakes the loop
  const auto bound = on_change_owed_since_ + options_.wait_max;
  if (coalescer_.pending()) return std::max(*paced, bound);
  return std::max(*paced, std::min(coalescer_.settled_at(), bound));
}

void FileOutput::maybe_start_on_change(Clock::time_point now) {
  const auto at = on_change_at();
  if (stopping_ || !at || now < *at) return;
  on_change_owed_ = false;
  on_change_pacer_.on_started(now);
  scope_.spawn("on_change", run_on_change());
}

asio::awaitable<void> FileOutput::run_on_change() {
  ++stats_.on_change_runs;
  const auto started = Clock::now();
  auto r = co_await run_shell(options_.on_change, options_.command_timeout);
  const auto finished = Clock::now();
  on_change_pacer_.on_finished(finished);
  // Charged to the output's budget as well (see Coalescer): the file and its reload together take about a
  // tenth of the time.
  coalescer_.on_command_cost(finished, finished - started);
  stats_.on_change_running += finished - started;
  wake_.cancel();  // the loop re-reads the deadlines: a run may be owed again
  if (r.ok()) {
    spdlog::info("{}: on_change ran in {} ms", options_.name, r.took.count());
    if (!r.output.empty()) spdlog::debug("{}: on_change output: {}", options_.name, r.output);
  } else {
    ++stats_.on_change_failures;
    spdlog::warn("{}: on_change '{}' failed ({}): {}", options_.name, options_.on_change, r.describe(),
                 first_line(r.output));
  }
}

asio::awaitable<void> FileOutput::run() {
  while (!stopping_) {
    // on_change is owed after a write; owed runs collapse into one (see on_change_at for when it starts).
    maybe_start_on_change(Clock::now());
    auto due = coalescer_.due();
    if (due && retry_at_ && *retry_at_ > *due) due = retry_at_;
    if (auto at = on_change_at(); at && (!due || *at < *due)) due = at;
    wake_.expires_at(due ? *due : Clock::time_point::max());
    boost::system::error_code ec;
    co_await wake_.async_wait(asio::redirect_error(use_awaitable, ec));
    if (stopping_) break;
    const auto now = Clock::now();
    if (!coalescer_.should_flush(now) || (retry_at_ && now < *retry_at_)) continue;
    coalescer_.on_flushed(now);
    co_await produce();
    // What this write cost (render, write, fsync, rename, check_command) is charged to the writing budget,
    // which paces the next one. Charged here, not by a destructor in the frame: a frame destroyed with the
    // io_context at a forced exit must not touch this output, which is gone by then.
    const auto spent = Clock::now() - now;
    coalescer_.on_cost(spent);
    stats_.writing += spent;
  }
}

FileOutput::Digest FileOutput::digest_of(const std::string& bytes) {
  // libstdc++'s Murmur-based byte hash with two seeds: a few GB/s, so hashing a 7 MB file costs ~2 ms.
  return Digest{bytes.size(), std::_Hash_bytes(bytes.data(), bytes.size(), 0x9e3779b97f4a7c15ULL),
                std::_Hash_bytes(bytes.data(), bytes.size(), 0xc2b2ae3d27d4eb4fULL)};
}

// Renders the captured state and writes it unless it is unchanged or was rejected before.
asio::awaitable<void> FileOutput::produce() {
  // A buffer still shared with a finished write job (its last reference is dropped on the writer thread
  // a moment after the result is posted) is left to it; otherwise the old one is reused.
  if (!scratch_ || scratch_.use_count() > 1) scratch_ = std::make_shared<std::string>();
  if (!render_(*scratch_)) co_return;  // a guard (min_instances, render error) keeps the file; it logged why
  const Digest digest = digest_of(*scratch_);
  if (digest == last_written_ || digest == rejected_) {
    ++stats_.unchanged;
    co_return;
  }
  Bytes bytes = scratch_;
  const Outcome outcome = co_await write(bytes);
  if (bytes->capacity() > kKeepBufferBytes) scratch_.reset();  // freed with the job's copy, not kept resident
  switch (outcome) {
    case Outcome::kFailed:
      coalescer_.on_change(Clock::now());  // still owed: retry with backoff until the disk takes it
      retry_at_ = Clock::now() + retry_backoff_.next(0.5);
      break;
    case Outcome::kRejected:
      rejected_ = digest;
      break;
    case Outcome::kUnchanged:
    case Outcome::kWritten:
      if (failing_) spdlog::info("{}: {} written again after failures", options_.name, options_.path);
      failing_ = false;
      retry_at_.reset();
      retry_backoff_.reset();
      rejected_.reset();
      if (outcome == Outcome::kWritten) {
        ++stats_.writes;
        spdlog::debug("{}: wrote {} ({} bytes)", options_.name, options_.path, bytes->size());
        if (!options_.on_change.empty() && !on_change_owed_) {
          on_change_owed_ = true;
          on_change_owed_since_ = Clock::now();
        }
      } else {
        ++stats_.unchanged;
      }
      last_written_ = digest;
      break;
  }
}

}  // namespace sidecar::runtime
