#include "proxy/rate_check.h"

#include <fmt/format.h>

#include <chrono>

namespace spillway::proxy {

rate_outcome check_rate_limit(const snapshot& snap, int policy, unsigned worker, const boost::asio::ip::address& client,
                              const http::message_head* head, const std::string& route_key, std::string& key) {
  rate_outcome out;
  if (policy < 0 || static_cast<std::size_t>(policy) >= snap.rate_limits.size()) {
    return out;
  }
  const auto& p = snap.rate_limits[static_cast<std::size_t>(policy)];
  out.policy = &p;
  using kind = config::rate_limit::key_kind;
  switch (p.cfg->key) {
    case kind::client_ip:
      ratelimit::client_key(client, key);
      break;
    case kind::header:
      ratelimit::header_key(head != nullptr ? head->find(p.cfg->header) : std::string_view(), key);
      break;
    case kind::route:
      key = route_key;
      break;
    case kind::global:
      key.clear();
      break;
  }
  const auto now =
      std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch()).count();
  out.verdict = p.table->take(key, now);
  auto& counts = p.counts->local(worker);
  if (out.verdict.admitted) {
    counts.admitted.add();
  } else if (p.cfg->dry_run) {
    counts.dry_run_limited.add();
  } else {
    counts.limited.add();
    out.limited = true;
  }
  return out;
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
