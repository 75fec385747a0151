// Owns: when a discovered set's file should be (re)written, given `wait: {min, max}` and the change stream.
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
// A lone change after a quiet period: with min == 0, quiet_at is the change itself and the last flush is
// long past, so it is due at once — no artificial delay. (With min > 0 it waits `min`, as asked.)
// A burst: the first change is written at once; every later change lands inside the holdoff after that
// write, so they accumulate and go out together at last_flush + holdoff — or later if `min` asks for
// quiescence — and never later than `max` after the first of them. A 10,000-change burst over 100 ms
// with the default holdoff (max/10, at most 100 ms) therefore costs a handful of writes, not 10,000, and
// a continuous stream costs one write per holdoff. Because holdoff <= max and the first unflushed change
// comes after the last flush, the cap never undercuts the spacing: `max` is always honoured.
//
// The holdoff is what makes min == 0 safe under load: "flush at the next loop turn" alone would write once
// per watch response (or once per fsync latency), which under a registration storm is thousands of writes.
//
// Protocol: call on_change() for every change that may alter the output; call on_flushed() at the moment
// the content to write is captured (changes after that belong to the next write). With max == 0, holdoff
// is 0 and every change is due immediately: the user opted out of coalescing.
class Coalescer {
 public:
  using Clock = std::chrono::steady_clock;
  using TimePoint = Clock::time_point;
  using Duration = Clock::duration;

  // `min` and `max` as in the manifest (min <= max; a larger min is clamped to max).
  Coalescer(Duration min, Duration max);
  Coalescer(Duration min, Duration max, Duration holdoff);

  static Duration default_holdoff(Duration max);

  void on_change(TimePoint now);
  // The content was captured for writing at `now`; pending changes are considered written.
  void on_flushed(TimePoint now);
  // Forget pending changes (e.g. the set went below min_instances and nothing will be written).
  void clear_pending();

  bool pending() const { return first_unflushed_.has_value(); }
  // When the next write is due, or nullopt when nothing is pending. May be in the past: write now.
  std::optional<TimePoint> due() const;
  bool should_flush(TimePoint now) const;

  Duration min() const { return min_; }
  Duration max() const { return max_; }
  Duration holdoff() const { return holdoff_; }

 private:
  Duration min_;
  Duration max_;
  Duration holdoff_;
  std::optional<TimePoint> first_unflushed_;
  TimePoint last_change_{};
  std::optional<TimePoint> last_flush_;
};

}  // namespace sidecar::core
