#pragma once
// A rate limit policy applied to one request (a route's `rate_limit`) or one new connection (a tcp
// listener's): the key is made, the budget taken, the outcome counted on the policy.

#include "http/parser.h"
#include "proxy/snapshot.h"
#include "proxy/worker.h"

#include <boost/asio/awaitable.hpp>

#include <boost/asio/ip/address.hpp>

#include <string>

namespace spillway::proxy {

struct rate_outcome {
  bool limited = false;  // answer 429 (never with dry_run)
  const rate_limit_view* policy = nullptr;
  ratelimit::verdict verdict;
};

// A 429's headers (keys.h): Retry-After, RateLimit-Policy, RateLimit, as (name, value) pairs.
struct rate_limit_answer {
  std::string retry_after;
  std::string state;
  const std::string* policy = nullptr;
};
rate_limit_answer answer_of(const rate_outcome& r);
// The same as HTTP/1 header lines.
std::string header_lines(const rate_limit_answer& a);

// `head` is null for a connection; `route_key` empty for one. `key` is scratch space. A shared
// policy asks Redis (waiting at most its shared_timeout); the others decide at once. Worker thread.
boost::asio::awaitable<rate_outcome> check_rate_limit(const snapshot& snap, int policy, worker& w,
                                                      const boost::asio::ip::address& client,
                                                      const http::message_head* head, const std::string& route_key,
                                                      std::string& key);

}  // namespace spillway::proxy
