// Owns: the writing-time budget of one output — how much of the wall clock producing the file may take —
// as a token bucket kept in one time point (GCRA). Thread: pure; time is passed in, tests use a fake clock.
#pragma once

#include <chrono>

namespace sidecar::core {

// Writing may take 1/kDutyFactor of wall time. Each write's cost is charged as kDutyFactor × its cost of
// pace: `paid_until` is when the wall clock will have caught up with everything written so far. While it
// lies in the past the output is within its budget (the bucket is full: a full bucket does not bank idle
// time beyond that); the further it lies in the future, the further ahead of the pace writing has run.
//
// A write may start once `paid_until - allowance × kDutyFactor <= now`: with allowance 0 only when the
// output is back on pace (a burst: writes spaced ten times their cost from the start of each), with
// allowance A it may run up to A of writing ahead (a bucket of capacity A). Over any window T a caller
// that always asks with allowance A writes at most A + T / kDutyFactor (plus the one write in progress).
//
// Why GCRA and not a balance: a single time point needs no refill step, so the state changes only when a
// write is charged, and "when may the next write start" is a subtraction.
class WriteBudget {
 public:
  using Clock = std::chrono::steady_clock;
  using TimePoint = Clock::time_point;
  using Duration = Clock::duration;

  static constexpr int kDutyFactor = 10;

  // `forgive`: how far ahead of `now` paid_until may run; debt beyond it is dropped. The caller bounds every
  // wait anyway (wait.max), so remembering more would only keep the output behind pace long after a burst
  // whose writes were forced out by that bound.
  explicit WriteBudget(Duration forgive);

  // A write (or part of one: a check_command) that started at `started` took `spent`.
  void charge(TimePoint started, Duration spent);
  // The earliest start of a write that may run `allowance` of writing ahead of the pace; may be in the past.
  TimePoint next_start(Duration allowance) const;
  // Writing done ahead of the pace at `now` (0 when on pace).
  Duration ahead(TimePoint now) const;

 private:
  Duration forgive_;
  TimePoint paid_until_{};
};

}  // namespace sidecar::core
