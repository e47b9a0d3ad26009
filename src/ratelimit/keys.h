#pragma once
// What a rate limit counts by, and what its answers say.
//
// Keys (one policy has one kind, so kinds need not be told apart):
//   client_ip   the IPv4 address, or the /64 of an IPv6 one (a host that owns a /64 has every
//               address in it; an IPv4-mapped IPv6 address is its IPv4 one)
//   header      the header's value (a request without it shares one key with the others without)
//   route       the listener's name and the route's position
//   global      one key
//
// Answers (draft-ietf-httpapi-ratelimit-headers): a 429 carries
//   Retry-After: SECONDS
//   RateLimit-Policy: "NAME";q=COUNT;w=WINDOW_SECONDS
//   RateLimit: "NAME";r=REMAINING;t=SECONDS_UNTIL_THE_BUDGET_IS_FULL
// Pure functions; any thread.

#include "config/config.h"
#include "ratelimit/limiter.h"

#include <boost/asio/ip/address.hpp>

#include <string>
#include <string_view>

namespace spillway::ratelimit {

void client_key(const boost::asio::ip::address& client, std::string& out);
// Header values longer than this are keyed by a hash of the rest (the table's memory stays bounded).
inline constexpr std::size_t max_header_key = 128;
void header_key(std::string_view value, std::string& out);
std::string route_key(std::string_view listener, std::size_t route_index);

std::string policy_header(const config::rate_limit& rl);
// Seconds, rounded up, at least 1.
std::uint64_t retry_after_seconds(const verdict& v);
std::string state_header(const config::rate_limit& rl, const verdict& v);

}  // namespace spillway::ratelimit
