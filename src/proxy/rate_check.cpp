#include "proxy/rate_check.h"

#include <fmt/format.h>

#include <chrono>

namespace spillway::proxy {

namespace {

// The request's key: in `scratch`, or the route's own (no copy per request).
std::string_view make_key(const config::rate_limit& cfg, const boost::asio::ip::address& client,
                          const http::message_head* head, const std::string& route_key, std::string& scratch) {
  using kind = config::rate_limit::key_kind;
  switch (cfg.key) {
    case kind::client_ip:
      ratelimit::client_key(client, scratch);
      return scratch;
    case kind::header:
      ratelimit::header_key(head != nullptr ? head->find(cfg.header) : std::string_view(), scratch);
      return scratch;
    case kind::route:
      return route_key;
    case kind::global:
      break;
  }
  return {};
}

std::int64_t steady_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

// What a shared policy does without an answer from Redis.
ratelimit::verdict when_unavailable(const rate_limit_view& p, std::string_view key) {
  using u = config::rate_limit::unavailable;
  switch (p.cfg->on_unavailable) {
    case u::local:
      return p.table->take(key, steady_ns());  // this instance enforces the rate alone
    case u::allow: {
      ratelimit::verdict v;
      v.admitted = true;
      return v;
    }
    case u::deny:
      break;
  }
  ratelimit::verdict v;
  v.wait_ns = 1'000'000'000;
  return v;
}

}  // namespace

boost::asio::awaitable<rate_outcome> check_rate_limit(const snapshot& snap, int policy, worker& w,
                                                      const boost::asio::ip::address& client,
                                                      const http::message_head* head, const std::string& route_key,
                                                      std::string& key) {
  rate_outcome out;
  if (policy < 0 || static_cast<std::size_t>(policy) >= snap.rate_limits.size()) {
    co_return out;
  }
  const auto& p = snap.rate_limits[static_cast<std::size_t>(policy)];
  out.policy = &p;
  const auto k = make_key(*p.cfg, client, head, route_key, key);
  auto& counts = p.counts->local(w.index());
  if (p.cfg->shared) {
    // One key space per policy name in Redis: "spillway:rl:NAME:" and the key's bytes.
    std::string redis_key = "spillway:rl:" + p.cfg->name + ":";
    redis_key.append(k);
    auto r = co_await w.redis(*p.cfg->shared)
                 .take(redis_key, p.table->settings(),
                       std::chrono::duration_cast<std::chrono::microseconds>(p.cfg->shared_timeout));
    using o = ratelimit::redis_client::outcome;
    switch (r.status) {
      case o::ok:
        counts.redis_ok.add();
        break;
      case o::timeout:
        counts.redis_timeout.add();
        break;
      case o::unavailable:
        counts.redis_unavailable.add();
        break;
      case o::error:
        counts.redis_error.add();
        break;
    }
    out.verdict = r.status == o::ok ? r.v : when_unavailable(p, k);
  } else {
    out.verdict = p.table->take(k, steady_ns());
  }
  if (out.verdict.admitted) {
    counts.admitted.add();
  } else if (p.cfg->dry_run) {
    counts.dry_run_limited.add();
  } else {
    counts.limited.add();
    out.limited = true;
  }
  co_return out;
}

rate_limit_answer answer_of(const rate_outcome& r) {
  rate_limit_answer a;
  a.retry_after = std::to_string(ratelimit::retry_after_seconds(r.verdict));
  a.state = ratelimit::state_header(*r.policy->cfg, r.verdict);
  a.policy = &r.policy->policy_header;
  return a;
}

std::string header_lines(const rate_limit_answer& a) {
  return fmt::format("retry-after: {}\r\nratelimit-policy: {}\r\nratelimit: {}\r\n", a.retry_after, *a.policy, a.state);
}

}  // namespace spillway::proxy
