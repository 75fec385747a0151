// Owns: the writing-time budget of one output — how much of the wall clock producing the file may take —
// as a token bucket kept in one time point (GCRA). Thread: pure; time is passed in, tests use a fake clock.
#pragma once

#include <chrono>

namespace sidecar::core {

// The pace: after a write, kDutyFactor times its cost of not writing, so writing takes at most
// 1 / (kDutyFactor + 1) — about a tenth — of wall time. Each write is charged when it ends: `paid_until`
// moves kDutyFactor × its cost past the later of itself and the write's end, and is when the wall clock
// will have caught up with everything written so far. While it lies in the past the output is on pace (a
// full bucket: idle time is not banked beyond that); the further it lies in the future, the further ahead
// of the pace writing has run.
//
// A write may start once `paid_until - allowance × kDutyFactor <= now`: with allowance 0 only when the
// output is back on pace (a burst: each write followed by ten times its cost), with allowance A it may run
// up to A of writing ahead (a bucket of capacity A). Over any window T a caller that always asks with
// allowance A writes at most A + T / kDutyFactor (T / (kDutyFactor + 1) with allowance 0), plus the write
// in progress.
//
// Why GCRA and not a balance: a single time point needs no refill step, so the state changes only when a
// write is charged, and "when may the next write start" is a subtraction.
class WriteBudget {
 public:
  using Clock = std::chrono::steady_clock;
  using TimePoint = Clock::time_point;
  using Duration = Clock::duration;

  static constexpr int kDutyFactor = 10;

  // `forgive`: how far past a write's end paid_until may run; debt beyond it is dropped. The caller bounds
  // every wait anyway (wait.max), so remembering more would only keep the output behind pace long after a
  // burst whose writes were forced out by that bound.
  explicit WriteBudget(Duration forgive);

  // A write (or part of one: a check_command) that ended at `ended` took `spent`.
  void charge(TimePoint ended, Duration spent);
  // The earliest start of a write that may run `allowance` of writing ahead of the pace; may be in the past.
  TimePoint next_start(Duration allowance) const;
  // Writing done ahead of the pace at `now` (0 when on pace).
  Duration ahead(TimePoint now) const;

 private:
  Duration forgive_;
  TimePoint paid_until_{};
};

}  // namespace sidecar::core
