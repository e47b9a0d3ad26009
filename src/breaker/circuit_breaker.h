#pragma once
// A per-backend circuit breaker: closed -> open -> half_open -> closed (resilience4j's model).
//
// Closed: outcomes go into a time-based sliding window of `buckets` buckets; once the window holds
// `minimum_requests` calls, a failure rate >= failure_rate or a slow-call rate >= slow_call_rate
// opens the breaker. Open: no calls for open_duration (doubling on repeated trips, capped, with
// jitter). Half-open: exactly half_open_requests trial calls, never more at once; all succeed ->
// closed, one fails -> open again.
//
// One breaker per backend, shared by all workers. The closed state's hot path (try_acquire and
// on_result) takes no lock: a relaxed load, and relaxed increments into the current bucket.
// Transitions and the half-open accounting take a mutex; they are rare. Time is passed in, never
// read, so every transition can be tested by moving a fake clock.

#include "config/config.h"

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <mutex>
#include <optional>

namespace spillway::breaker {

using clock = std::chrono::steady_clock;

enum class state : std::uint8_t { closed = 0, open = 1, half_open = 2 };
const char* to_string(state s);

struct outcome {
  bool failure = false;  // connect error, reset, timeout, or a failure status
  bool slow = false;     // took longer than slow_call_duration
};

struct rates {
  std::uint64_t calls = 0;
  double failure_rate = 0;  // percent of calls in the window
  double slow_rate = 0;     // percent of calls in the window
};

struct transition {
  state from = state::closed;
  state to = state::closed;
  rates window;                // the window's rates when it opened from closed
  clock::duration open_for{};  // how long it stays open (to == open)
};

class circuit_breaker {
 public:
  static constexpr std::size_t buckets = 10;
  // Open durations grow 1x, 2x, 4x, 8x, then stay at this many times open_duration.
  static constexpr unsigned max_open_multiplier = 10;

  struct token {
    std::uint64_t generation = 0;
    bool admitted = false;
    bool trial = false;  // a half-open trial call
    explicit operator bool() const { return admitted; }
  };

  // `seed` feeds the jitter of open durations.
  circuit_breaker(const config::circuit_breaker& cfg, std::uint64_t seed);

  // Asks to send one call at `now`. Returns a token that is false when the breaker is open, or
  // half-open with every trial slot taken. Any thread.
  token try_acquire(clock::time_point now);

  // Records the outcome of a call admitted with `t`. Outcomes from before the last transition
  // (older generation) are ignored. Returns the transition this caused, if any. Any thread.
  std::optional<transition> on_result(const token& t, outcome o, clock::time_point now);

  // Gives back the trial slot of a call that ended without an outcome worth counting (the client
  // went away). Any thread.
  void release(const token& t);

  // Moves open -> half_open once the open time is over. Returns the transition, if any. Any thread.
  std::optional<transition> poll(clock::time_point now);

  state current() const { return state_.load(std::memory_order_relaxed); }
  // When an open breaker may go half-open (meaningful while open).
  clock::time_point open_until() const;
  // The closed window's rates at `now`.
  rates window(clock::time_point now) const;

 private:
  struct bucket {
    std::atomic<std::int64_t> epoch{-1};  // which bucket-length interval it counts
    std::atomic<std::uint32_t> calls{0};
    std::atomic<std::uint32_t> failures{0};
    std::atomic<std::uint32_t> slow{0};
  };

  std::int64_t epoch_of(clock::time_point now) const;
  void record(outcome o, clock::time_point now);
  void reset_window();
  // Under mu_: switches to open and returns the transition.
  transition open_locked(state from, rates r, clock::time_point now);

  config::circuit_breaker cfg_;
  clock::duration bucket_len_;
  std::array<bucket, buckets> window_;
  std::atomic<state> state_{state::closed};
  std::atomic<std::uint64_t> generation_{1};

  mutable std::mutex mu_;
  clock::time_point open_until_{};
  unsigned trips_ = 0;             // consecutive trips without closing in between
  std::uint32_t trials_left_ = 0;  // half-open slots not handed out
  std::uint32_t trial_successes_ = 0;
  std::uint64_t random_state_;
};

}  // namespace spillway::breaker
