#include "ratelimit/limiter.h"

#include <algorithm>
#include <chrono>

namespace spillway::ratelimit {

params params::of(const config::rate_limit& rl) {
  params p;
  const auto period_ns = std::chrono::duration_cast<std::chrono::nanoseconds>(rl.period).count();
  p.interval_ns =
      std::max<std::int64_t>(1, period_ns / static_cast<std::int64_t>(std::max<std::uint64_t>(1, rl.count)));
  p.burst = std::max<std::uint64_t>(1, rl.burst);
  p.max_keys = std::max<std::uint64_t>(1, rl.max_keys);
  return p;
}

limiter::limiter(params p)
    : p_(p),
      // Bounded so that TATs cannot overflow (a burst of 10^9 at one an hour is ~114 years ahead).
      tolerance_(p.interval_ns * static_cast<std::int64_t>(std::min<std::uint64_t>(
                                     p.burst, static_cast<std::uint64_t>(max_ahead_ns / p.interval_ns)))),
      shard_capacity_((p.max_keys + shard_count - 1) / shard_count) {}

verdict limiter::take(std::string_view key, std::int64_t now_ns) {
  auto& s = shards_[std::hash<std::string_view>{}(key) % shard_count];
  verdict v;
  std::lock_guard lock(s.m);
  auto it = s.tat.find(key);
  const std::int64_t tat = std::max(it != s.tat.end() ? it->second : now_ns, now_ns) + p_.interval_ns;
  const std::int64_t ahead = tat - now_ns;
  if (ahead > tolerance_) {
    v.wait_ns = ahead - tolerance_;
    v.reset_ns = ahead - p_.interval_ns;
    return v;
  }
  if (it != s.tat.end()) {
    it->second = tat;
  } else {
    if (s.tat.size() >= shard_capacity_) {
      make_room(s, now_ns);
    }
    s.tat.emplace(std::string(key), tat);
  }
  v.admitted = true;
  v.remaining = static_cast<std::uint64_t>((tolerance_ - ahead) / p_.interval_ns);
  v.reset_ns = ahead;
  return v;
}

// Keys whose budget is full again go first (forgetting them changes nothing); a sweep for them
// walks the shard, so it runs at most once per 100 ms (or interval) per shard. When none is found,
// one key in use goes.
void limiter::make_room(shard& s, std::int64_t now_ns) {
  if (now_ns - s.last_sweep >= std::max<std::int64_t>(p_.interval_ns, 100'000'000)) {
    s.last_sweep = now_ns;
    std::erase_if(s.tat, [now_ns](const auto& kv) { return kv.second <= now_ns; });
  }
  if (s.tat.size() >= shard_capacity_) {
    const bool in_use = s.tat.begin()->second > now_ns;
    s.tat.erase(s.tat.begin());
    if (in_use) {
      evictions_.fetch_add(1, std::memory_order_relaxed);
    }
  }
}

std::size_t limiter::keys() const {
  std::size_t n = 0;
  for (const auto& s : shards_) {
    std::lock_guard lock(s.m);
    n += s.tat.size();
  }
  return n;
}

}  // namespace spillway::ratelimit
