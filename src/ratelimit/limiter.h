#pragma once
// One rate limit policy's budgets: a table of keys (a client, a header value, a route, or the
// single global key), each with the generic cell rate algorithm's one number, the theoretical
// arrival time (TAT) of the next request.
//
//   interval = period / count      (the time one request costs)
//   tolerance = interval * burst   (how far ahead of now the TAT may run)
//
//   take(key, now):  tat = max(TAT[key], now) + interval
//                    tat - now > tolerance ?  limited (wait tat - tolerance - now)
//                                          :  admitted, TAT[key] = tat
//
// A key whose TAT is in the past has its whole burst: it is the same as no entry, so the table
// forgets such keys when it needs room; when it is full of keys still in use, it evicts one (its
// client starts again with a full budget) and counts the eviction.
//
// Every worker takes from the same table (exact across workers): the keys are spread over shards,
// each behind its own mutex, held for one hash lookup. Any thread.

#include "config/config.h"

#include <array>
#include <atomic>
#include <cstdint>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>

namespace spillway::ratelimit {

struct params {
  std::int64_t interval_ns = 0;  // period / count
  std::uint64_t burst = 1;
  std::uint64_t max_keys = 100000;

  static params of(const config::rate_limit& rl);
};

struct verdict {
  bool admitted = false;
  std::uint64_t remaining = 0;  // requests that could follow at once
  std::int64_t wait_ns = 0;     // limited: until one request would be admitted
  std::int64_t reset_ns = 0;    // until the whole burst is available again
};

class limiter {
 public:
  explicit limiter(params p);
  limiter(const limiter&) = delete;
  limiter& operator=(const limiter&) = delete;

  // One request (or connection) for `key` at `now_ns` (steady clock). With `dry_run`, the verdict
  // is computed and the budget used only when admitted, exactly as when limiting: a dry run shows
  // what limiting would do.
  verdict take(std::string_view key, std::int64_t now_ns);

  const params& settings() const { return p_; }
  // Keys held now (a scrape walks the shards). Any thread.
  std::size_t keys() const;
  // Keys dropped while their budget was still in use, to make room.
  std::uint64_t evictions() const { return evictions_.load(std::memory_order_relaxed); }

 private:
  struct hash {
    using is_transparent = void;
    std::size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
  };
  struct shard {
    mutable std::mutex m;
    std::unordered_map<std::string, std::int64_t, hash, std::equal_to<>> tat;
    std::int64_t last_sweep = 0;
  };
  static constexpr std::size_t shard_count = 16;

  void make_room(shard& s, std::int64_t now_ns);

  static constexpr std::int64_t max_ahead_ns = std::int64_t{1} << 62;

  params p_;
  std::int64_t tolerance_;  // interval * burst
  std::size_t shard_capacity_;
  std::array<shard, shard_count> shards_;
  std::atomic<std::uint64_t> evictions_{0};
};

}  // namespace spillway::ratelimit
