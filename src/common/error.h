#pragma once
// The one table of proxy errors: every reason Spillway answers a request itself, or ends an L4
// connection for, with everything each user of a reason needs (after Pingora's `pingora-error`):
//
//   name     the x-spillway-reason value, the access log's `reason`, the metrics label
//   status   the HTTP status Spillway answers with (0: none, the reason only ends an L4 connection)
//   flag     Envoy's response flag for access logs (NR, UH, UF, UO, UT, UC, UPE, DPE, DT)
//   source   which side caused it: downstream (the client), upstream (a backend) or internal
//   retry    whether a try that ended with it may go to another backend at all (`retries.on` and
//            the retry policy decide whether it does)
//
// The HTTP session, the TCP session, the access log and the metrics all read this table; a new
// reason is one new row. Any thread (constant data).

#include <array>
#include <cstddef>
#include <cstdint>
#include <string_view>

namespace spillway {

enum class error_kind : std::uint8_t {
  // Answered with an HTTP status (the first local_reply_count kinds, in metrics label order).
  malformed_request,
  no_route,
  header_timeout,
  body_too_large,
  headers_too_large,
  upstream_reset,
  upstream_protocol_error,
  no_healthy_upstream,
  upstream_connect_failure,
  upstream_overloaded,
  upstream_timeout,
  method_not_allowed,
  rate_limited,
  // L4 only: how a relayed connection ended other than by an EOF.
  idle_timeout,
};

enum class error_source : std::uint8_t { downstream, upstream, internal };

struct error_info {
  std::string_view name;
  int status;
  const char* flag;
  error_source source;
  bool retryable;
};

inline constexpr std::array<error_info, 14> error_table = {{
    {"malformed_request", 400, "DPE", error_source::downstream, false},
    {"no_route", 404, "NR", error_source::internal, false},
    {"header_timeout", 408, "DT", error_source::downstream, false},
    {"body_too_large", 413, "DPE", error_source::downstream, false},
    {"headers_too_large", 431, "DPE", error_source::downstream, false},
    {"upstream_reset", 502, "UC", error_source::upstream, true},
    {"upstream_protocol_error", 502, "UPE", error_source::upstream, false},
    {"no_healthy_upstream", 503, "UH", error_source::internal, false},
    {"upstream_connect_failure", 503, "UF", error_source::upstream, true},
    {"upstream_overloaded", 503, "UO", error_source::internal, false},
    {"upstream_timeout", 504, "UT", error_source::upstream, true},
    {"method_not_allowed", 405, "DPE", error_source::downstream, false},
    {"rate_limited", 429, "RL", error_source::downstream, false},
    {"idle_timeout", 0, nullptr, error_source::internal, false},
}};

// The kinds an HTTP client can get as an answer: they come first in the table.
inline constexpr std::size_t local_reply_count = 13;

constexpr const error_info& info(error_kind k) { return error_table[static_cast<std::size_t>(k)]; }
constexpr std::string_view to_string(error_kind k) { return info(k).name; }
constexpr int status_of(error_kind k) { return info(k).status; }

// The row named `name`, or nullptr.
constexpr const error_info* find_error(std::string_view name) {
  for (const auto& e : error_table) {
    if (e.name == name) {
      return &e;
    }
  }
  return nullptr;
}

static_assert(error_table.size() == static_cast<std::size_t>(error_kind::idle_timeout) + 1);
static_assert(error_table[local_reply_count - 1].status != 0 && error_table[local_reply_count].status == 0);

}  // namespace spillway
