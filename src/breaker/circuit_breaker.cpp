#include "breaker/circuit_breaker.h"

#include <algorithm>

namespace spillway::breaker {

const char* to_string(state s) {
  switch (s) {
    case state::closed:
      return "closed";
    case state::open:
      return "open";
    case state::half_open:
      return "half_open";
  }
  return "closed";
}

circuit_breaker::circuit_breaker(const config::circuit_breaker& cfg, std::uint64_t seed)
    : cfg_(cfg),
      bucket_len_(std::max<clock::duration>(std::chrono::duration_cast<clock::duration>(cfg.window) / buckets,
                                            std::chrono::milliseconds(1))),
      random_state_(seed | 1) {}

std::int64_t circuit_breaker::epoch_of(clock::time_point now) const { return now.time_since_epoch() / bucket_len_; }

void circuit_breaker::record(outcome o, clock::time_point now) {
  const auto epoch = epoch_of(now);
  auto& b = window_[static_cast<std::size_t>(epoch) % buckets];
  auto seen = b.epoch.load(std::memory_order_relaxed);
  if (seen != epoch && seen < epoch && b.epoch.compare_exchange_strong(seen, epoch, std::memory_order_relaxed)) {
    // This thread turned the bucket over. A call recorded by another thread between the exchange
    // and these stores is lost: at most (workers - 1) calls per bucket turn-over, which only
    // delays a trip by as many calls.
    b.calls.store(0, std::memory_order_relaxed);
    b.failures.store(0, std::memory_order_relaxed);
    b.slow.store(0, std::memory_order_relaxed);
  }
  b.calls.fetch_add(1, std::memory_order_relaxed);
  if (o.failure) {
    b.failures.fetch_add(1, std::memory_order_relaxed);
  }
  if (o.slow) {
    b.slow.fetch_add(1, std::memory_order_relaxed);
  }
}

rates circuit_breaker::window(clock::time_point now) const {
  const auto epoch = epoch_of(now);
  std::uint64_t calls = 0;
  std::uint64_t failures = 0;
  std::uint64_t slow = 0;
  for (const auto& b : window_) {
    auto e = b.epoch.load(std::memory_order_relaxed);
    if (e > epoch - static_cast<std::int64_t>(buckets) && e <= epoch) {
      calls += b.calls.load(std::memory_order_relaxed);
      failures += b.failures.load(std::memory_order_relaxed);
      slow += b.slow.load(std::memory_order_relaxed);
    }
  }
  rates r;
  r.calls = calls;
  if (calls > 0) {
    r.failure_rate = 100.0 * static_cast<double>(failures) / static_cast<double>(calls);
    r.slow_rate = 100.0 * static_cast<double>(slow) / static_cast<double>(calls);
  }
  return r;
}

void circuit_breaker::reset_window() {
  for (auto& b : window_) {
    b.epoch.store(-1, std::memory_order_relaxed);
    b.calls.store(0, std::memory_order_relaxed);
    b.failures.store(0, std::memory_order_relaxed);
    b.slow.store(0, std::memory_order_relaxed);
  }
}

circuit_breaker::token circuit_breaker::try_acquire(clock::time_point /*now*/) {
  const auto s = state_.load(std::memory_order_relaxed);
  if (s == state::closed) {
    return token{generation_.load(std::memory_order_relaxed), true, false};
  }
  std::lock_guard lock(mu_);
  // Open stays open until poll() moves it on (the control thread's timer does, at open_until), so
  // that every transition is reported by exactly one call.
  if (state_.load(std::memory_order_relaxed) == state::open) {
    return {};
  }
  if (state_.load(std::memory_order_relaxed) == state::closed) {
    return token{generation_.load(std::memory_order_relaxed), true, false};
  }
  if (trials_left_ == 0) {
    return {};
  }
  --trials_left_;
  return token{generation_.load(std::memory_order_relaxed), true, true};
}

transition circuit_breaker::open_locked(state from, rates r, clock::time_point now) {
  ++trips_;
  const unsigned multiplier = std::min(1U << std::min(trips_ - 1, 8U), max_open_multiplier);
  // Jitter of +-10% spreads the half-open trials of backends that tripped together.
  std::uint64_t z = (random_state_ += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  z ^= z >> 31;
  const double jitter = 0.9 + 0.2 * static_cast<double>(z % 10001) / 10000.0;
  const auto base = std::chrono::duration_cast<clock::duration>(cfg_.open_duration) * multiplier;
  const auto open_for = std::chrono::duration_cast<clock::duration>(base * jitter);
  open_until_ = now + open_for;
  state_.store(state::open, std::memory_order_relaxed);
  generation_.fetch_add(1, std::memory_order_relaxed);
  trials_left_ = 0;
  trial_successes_ = 0;
  return transition{from, state::open, r, open_for};
}

std::optional<transition> circuit_breaker::on_result(const token& t, outcome o, clock::time_point now) {
  if (!t.admitted) {
    return std::nullopt;
  }
  if (!t.trial) {
    if (t.generation != generation_.load(std::memory_order_relaxed) ||
        state_.load(std::memory_order_relaxed) != state::closed) {
      return std::nullopt;  // admitted before a transition: says nothing about the new state
    }
    record(o, now);
    if (!o.failure && !o.slow) {
      return std::nullopt;  // a good call cannot raise a rate
    }
    auto r = window(now);
    if (r.calls < cfg_.minimum_requests || (r.failure_rate < cfg_.failure_rate && r.slow_rate < cfg_.slow_call_rate)) {
      return std::nullopt;
    }
    std::lock_guard lock(mu_);
    if (t.generation != generation_.load(std::memory_order_relaxed) ||
        state_.load(std::memory_order_relaxed) != state::closed) {
      return std::nullopt;  // another thread tripped it first
    }
    return open_locked(state::closed, r, now);
  }
  std::lock_guard lock(mu_);
  if (t.generation != generation_.load(std::memory_order_relaxed) ||
      state_.load(std::memory_order_relaxed) != state::half_open) {
    return std::nullopt;
  }
  if (o.failure || o.slow) {
    return open_locked(state::half_open, rates{}, now);
  }
  if (++trial_successes_ < cfg_.half_open_requests) {
    return std::nullopt;
  }
  trips_ = 0;
  reset_window();
  state_.store(state::closed, std::memory_order_relaxed);
  generation_.fetch_add(1, std::memory_order_relaxed);
  return transition{state::half_open, state::closed, rates{}, {}};
}

void circuit_breaker::release(const token& t) {
  if (!t.admitted || !t.trial) {
    return;
  }
  std::lock_guard lock(mu_);
  if (t.generation == generation_.load(std::memory_order_relaxed) &&
      state_.load(std::memory_order_relaxed) == state::half_open) {
    ++trials_left_;
  }
}

std::optional<transition> circuit_breaker::poll(clock::time_point now) {
  if (state_.load(std::memory_order_relaxed) != state::open) {
    return std::nullopt;
  }
  std::lock_guard lock(mu_);
  if (state_.load(std::memory_order_relaxed) != state::open || now < open_until_) {
    return std::nullopt;
  }
  state_.store(state::half_open, std::memory_order_relaxed);
  generation_.fetch_add(1, std::memory_order_relaxed);
  trials_left_ = cfg_.half_open_requests;
  trial_successes_ = 0;
  return transition{state::open, state::half_open, rates{}, {}};
}

clock::time_point circuit_breaker::open_until() const {
  std::lock_guard lock(mu_);
  return open_until_;
}

}  // namespace spillway::breaker
