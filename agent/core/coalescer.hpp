// Owns: when an output file should be (re)written, given `wait: {min, max, holdoff}`, the change stream and
// what the last write cost; and when its on_change command may run again (CommandPacer).
// Thread: pure; time is passed in, so it runs on the caller's thread and tests drive it with a fake clock.
#pragma once

#include <chrono>
#include <optional>

namespace sidecar::core {

// Design. Three deadlines, all computed from state, none from timers:
//
//   quiet_at  = last_change + min          quiescence: the stream has been still for `min`
//   spaced_at = last_flush  + holdoff      spacing: no two writes closer together than `holdoff`
//   cap       = first_unflushed + max      bound: no change waits longer than `max`
//
//   due = min(max(quiet_at, spaced_at), cap)
//
// The holdoff is paced by cost, not fixed: after a write it is kCostFactor times what producing that output
// cost — render + write + fsync + rename, plus check_command and on_change when they ran (on_cost() adds
// each) — clamped to [0, max]. So the agent spends at most about a tenth of its time producing one output,
// whatever that costs: a 0.3 ms write of a small list is followed by a 3 ms holdoff, a 40 ms write of a
// large templated file with a check by 400 ms. A fixed `wait.holdoff` replaces the rule for users who want
// a known spacing.
//
// A lone change after a quiet period: with min == 0, quiet_at is the change itself and the last flush is
// long past, so it is due at once — no artificial delay. (With min > 0 it waits `min`, as asked.)
// A stream of changes a few ms apart: each meets a holdoff of ten times a cheap write, so each is written
// within a few ms, like a watcher that rewrites the file on every event.
// A burst: the first change is written at once; later changes land inside the holdoff after that write,
// accumulate, and go out together at last_flush + holdoff — or later if `min` asks for quiescence — and
// never later than `max` after the first of them. As the list grows each write costs more and the holdoff
// grows with it, so a 10,000-change burst costs tens of writes, not 10,000. Because holdoff <= max and the
// first unflushed change comes after the last flush, the cap never undercuts the spacing: `max` is always
// honoured.
//
// The holdoff is what makes min == 0 safe under load: "flush at the next loop turn" alone would write once
// per watch response, which under a registration storm is thousands of writes of a growing file.
//
// Protocol: call on_change() for every change that may alter the output; call on_flushed() at the moment
// the content to write is captured (changes after that belong to the next write), then on_cost() with what
// producing it cost (and again for any command that ran for it). With max == 0, holdoff is 0 and every
// change is due immediately: the user opted out of coalescing.
class Coalescer {
 public:
  using Clock = std::chrono::steady_clock;
  using TimePoint = Clock::time_point;
  using Duration = Clock::duration;

  // The pacing rule: spacing after a write = kCostFactor × its cost.
  static constexpr int kCostFactor = 10;

  // `min` and `max` as in the manifest (min <= max; a larger min is clamped to max). Holdoff paced by cost.
  Coalescer(Duration min, Duration max);
  // A fixed holdoff (`wait.holdoff`), clamped to [0, max].
  Coalescer(Duration min, Duration max, Duration holdoff);

  void on_change(TimePoint now);
  // The content was captured for writing at `now`; pending changes are considered written. Starts a new
  // cycle whose cost on_cost() accumulates.
  void on_flushed(TimePoint now);
  // Producing the output captured at the last on_flushed() cost `spent` (render and write; a command).
  void on_cost(Duration spent);
  // Forget pending changes (e.g. the set went below min_instances and nothing will be written).
  void clear_pending();

  bool pending() const { return first_unflushed_.has_value(); }
  // When the next write is due, or nullopt when nothing is pending. May be in the past: write now.
  std::optional<TimePoint> due() const;
  bool should_flush(TimePoint now) const;

  Duration min() const { return min_; }
  Duration max() const { return max_; }
  // The spacing after the last write: fixed, or kCostFactor × its cost so far, within [0, max].
  Duration holdoff() const;
  bool holdoff_fixed() const { return fixed_holdoff_.has_value(); }

 private:
  Duration min_;
  Duration max_;
  std::optional<Duration> fixed_holdoff_;
  Duration cycle_cost_{0};
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
