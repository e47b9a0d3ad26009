#include "ratelimit/keys.h"

#include <fmt/format.h>

#include <functional>

namespace spillway::ratelimit {

namespace {

// A structured-field string (RFC 8941): printable ASCII, with '"' and '\' escaped.
std::string sf_string(std::string_view s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') {
      out.push_back('\\');
    }
    if (c >= 0x20 && c < 0x7f) {
      out.push_back(c);
    }
  }
  out.push_back('"');
  return out;
}

std::uint64_t seconds_up(std::int64_t ns) {
  return ns <= 0 ? 0 : static_cast<std::uint64_t>((ns + 999'999'999) / 1'000'000'000);
}

}  // namespace

void client_key(const boost::asio::ip::address& client, std::string& out) {
  out.clear();
  if (client.is_v4()) {
    const auto b = client.to_v4().to_bytes();
    out.append(reinterpret_cast<const char*>(b.data()), b.size());
    return;
  }
  const auto v6 = client.to_v6();
  if (v6.is_v4_mapped()) {
    client_key(boost::asio::ip::make_address_v4(boost::asio::ip::v4_mapped, v6), out);
    return;
  }
  const auto b = v6.to_bytes();
  out.push_back('6');
  out.append(reinterpret_cast<const char*>(b.data()), 8);
}

void header_key(std::string_view value, std::string& out) {
  out.assign(value.substr(0, max_header_key));
  if (value.size() > max_header_key) {
    const auto h = std::hash<std::string_view>{}(value.substr(max_header_key));
    out.append(reinterpret_cast<const char*>(&h), sizeof h);
  }
}

std::string route_key(std::string_view listener, std::size_t route_index) {
  return fmt::format("{}\n{}", listener, route_index);
}

std::string policy_header(const config::rate_limit& rl) {
  return fmt::format("{};q={};w={}", sf_string(rl.name), rl.count,
                     std::chrono::duration_cast<std::chrono::seconds>(rl.period).count());
}

std::uint64_t retry_after_seconds(const verdict& v) { return std::max<std::uint64_t>(1, seconds_up(v.wait_ns)); }

std::string state_header(const config::rate_limit& rl, const verdict& v) {
  return fmt::format("{};r={};t={}", sf_string(rl.name), v.remaining, seconds_up(v.reset_ns));
}

}  // namespace spillway::ratelimit
