// Owns: when an output file should be (re)written, given `wait: {min, max, holdoff}`, the change stream and
// the writing-time budget (WriteBudget); and when its on_change command may run again (CommandPacer).
// Thread: pure; time is passed in, so it runs on the caller's thread and tests drive it with a fake clock.
#pragma once

#include <chrono>
#include <cstddef>
#include <optional>

#include "agent/core/write_budget.hpp"

namespace sidecar::core {

// Design. Three deadlines, all computed from state, none from timers:
//
//   quiet_at  = last_change + min          quiescence: the stream has been still for `min`
//   spaced_at = when the writing budget allows the next write (or last_flush + holdoff when fixed)
//   cap       = first_unflushed + max      bound: no change waits longer than `max`
//
//   due = min(max(quiet_at, spaced_at), cap)
//
// The spacing is a budget of writing time, not a per-write holdoff. After a write the pace asks for
// kCostFactor times what producing it cost — render + write + fsync + rename, plus check_command when it
// ran (on_cost() adds each) — of not writing, so producing the output takes at most about a tenth of wall
// time (WriteBudget, a token bucket). How much a write may draw ahead of that pace depends on what is
// pending:
//
//   - one change (a client that registers and waits for the file, a rolling deploy one instance at a
//     time): holding it back would merge it with nothing, so it may run up to kStreamAllowance of writing
//     ahead of the pace. A stream of such changes is written change by change, like a watcher that rewrites
//     the file on every event, until it has spent that much beyond the pace; then it is paced.
//   - several changes (a burst: they arrive faster than the file is written): no allowance while they keep
//     coming. The next write waits until writing is back on pace, so a 10,000-instance burst costs tens of
//     writes, not 10,000, and about a tenth of its duration goes into writing.
//   - several changes, and none for kSettle (the burst looks over): up to kSettledAllowance ahead of the
//     pace. The last write of a burst does not wait out ten times the cost of the one before it (with
//     10,000 instances on a busy host, 50-100 ms), only kSettle; a burst with pauses longer than kSettle
//     gains at most kSettledAllowance of writing from them.
//
// So over any window T writing takes at most kStreamAllowance + T / kCostFactor, plus the write in
// progress: an isolated change, or a short stream of them, goes out at once; a sustained stream or burst is
// paced down to a tenth. A fixed `wait.holdoff` replaces the budget with a known spacing after every write.
//
// A lone change after a quiet period: with min == 0 the budget is on pace, so it is due at once — no
// artificial delay. (With min > 0 it waits `min`, as asked.) A burst: the first change is written at once;
// later ones accumulate and go out together when the budget allows — or later if `min` asks for quiescence
// — and never later than `max` after the first of them: `max` wins over the budget, which forgives debt it
// could not collect within `max` (see WriteBudget's `forgive`).
//
// The budget is what makes min == 0 safe under load: "flush at the next loop turn" alone would write once
// per watch response, which under a registration storm is thousands of writes of a growing file.
//
// on_change is charged too (on_command_cost), when it ends: the output as a whole — its file and the
// command that reloads whatever reads it — takes about a tenth of wall time, so a burst does not turn into
// a write, then a reload, then a write. With a 100 ms reload that spaces the writes of a burst about a
// second apart; `max` still bounds how long any change waits. The command's own runs are spaced further by
// CommandPacer (below): never two at once, never sooner than kCostFactor × its last run.
//
// Protocol: call on_change() for every change that may alter the output (with the number of keys it
// changed); call on_flushed() at the moment the content to write is captured (changes after that belong to
// the next write), then on_cost() with what producing it cost. With max == 0 every change is due
// immediately: the user opted out of coalescing.
class Coalescer {
 public:
  using Clock = WriteBudget::Clock;
  using TimePoint = WriteBudget::TimePoint;
  using Duration = WriteBudget::Duration;

  // Writing takes at most about 1/kCostFactor of wall time; a command's runs are spaced kCostFactor × its
  // duration.
  static constexpr int kCostFactor = WriteBudget::kDutyFactor;
  // Writing time a single pending change may spend ahead of the 1/kCostFactor pace. Sized for a stream of
  // a few hundred sequential changes to a 10,000-instance list (about 1-3 ms a write) without holding any
  // back; over a minute it adds under half a percent to the tenth.
  static constexpr Duration kStreamAllowance = std::chrono::milliseconds(250);
  // A burst is taken to be over once no change came for kSettle: longer than the gaps between the watch
  // responses of a burst (a Txn round trip, an etcd fsync), short next to the 100 ms a burst may take to
  // reach the file. Its last write may then run kSettledAllowance ahead of the pace.
  static constexpr Duration kSettle = std::chrono::milliseconds(20);
  static constexpr Duration kSettledAllowance = std::chrono::milliseconds(20);

  // `min` and `max` as in the manifest (min <= max; a larger min is clamped to max). Paced by the budget.
  Coalescer(Duration min, Duration max);
  // A fixed holdoff (`wait.holdoff`), clamped to [0, max].
  Coalescer(Duration min, Duration max, Duration holdoff);

  // `changes`: how many keys this notification changed (a watch response may carry many).
  void on_change(TimePoint now, std::size_t changes = 1);
  // The content was captured for writing at `now`; pending changes are considered written. Starts a new
  // cycle whose cost on_cost() charges.
  void on_flushed(TimePoint now);
  // Producing the output captured at the last on_flushed() cost `spent` (render and write; check_command).
  void on_cost(Duration spent);
  // The output's command (on_change) ran for `spent` and ended at `ended`: charged to the same budget.
  void on_command_cost(TimePoint ended, Duration spent);
  // Forget pending changes (e.g. the set went below min_instances and nothing will be written).
  void clear_pending();

  bool pending() const { return first_unflushed_.has_value(); }
  // When the next write is due, or nullopt when nothing is pending. May be in the past: write now.
  std::optional<TimePoint> due() const;
  bool should_flush(TimePoint now) const;

  Duration min() const { return min_; }
  Duration max() const { return max_; }
  bool holdoff_fixed() const { return fixed_holdoff_.has_value(); }
  // When the change stream will have been still for kSettle (a burst looks over): a command owed for the
  // file (on_change) waits for this rather than running between the writes of a burst that keeps coming.
  TimePoint settled_at() const { return last_change_ + kSettle; }
  // Writing done ahead of the 1/kCostFactor pace at `now` (what the budget still has to recover).
  Duration ahead_of_pace(TimePoint now) const { return budget_.ahead(now); }

 private:
  // When the budget (or the fixed holdoff) lets the pending write start.
  TimePoint spaced_at() const;

  Duration min_;
  Duration max_;
  std::optional<Duration> fixed_holdoff_;
  WriteBudget budget_;
  Duration cycle_spent_{0};  // charged so far for the write captured at last_flush_
  std::size_t pending_changes_ = 0;
  std::optional<TimePoint> first_unflushed_;
  TimePoint last_change_{};
  std::optional<TimePoint> last_flush_;
};

// Pacing of a command (on_change): never two runs at once, and a run starts no sooner than kCostFactor ×
// the previous run's duration after that run started, so a 100 ms reload runs at most about once a second
// and a 5 ms one every 50 ms. The owner decides when a run is owed; this only says when it may start.
class CommandPacer {
 public:
  using TimePoint = Coalescer::TimePoint;
  using Duration = Coalescer::Duration;

  void on_started(TimePoint now);
  void on_finished(TimePoint now);
  bool running() const { return running_; }
  // The earliest start of the next run; nullopt while one runs (its end decides). In the past: now.
  std::optional<TimePoint> next_start() const;
  bool may_start(TimePoint now) const;

 private:
  bool running_ = false;
  TimePoint last_start_{};
  Duration last_took_{0};
};

}  // namespace sidecar::core
