#pragma once
// HTTP/1 heads as Spillway forwards them, as pure functions of the parsed head and a few facts
// about the connection: no socket, no session state, so each rule has a unit test
// (tests/unit/proxy/http1_rewrite_test.cpp).
//
// - check_request: what the parser cannot check (Host, Transfer-Encoding, the target's form), and
//   the path to route on and the target to forward (dot segments removed, absolute-form made
//   origin-form with its authority as Host);
// - build_upstream_head: hop-by-hop headers out, X-Forwarded-*, X-Request-Id, Host for HTTP/1.0;
// - build_downstream_head: hop-by-hop out, no length on bodiless statuses, connection handling;
// - build_local_reply: an answer Spillway makes itself (x-spillway-reason, Retry-After).

#include "common/error.h"
#include "http/parser.h"

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace spillway::proxy {

// Buffers the functions below write views into; one per connection, reused per request so that a
// warm connection does not allocate.
struct rewrite_scratch {
  std::string path;
  std::string target;
  std::string authority;
  std::vector<std::string_view> connection_tokens;
  std::string lower;  // h2_request_fields: field names in lower case
  std::string xff;    // h2_request_fields: the X-Forwarded-For value
};

// What check_request learned about a request it accepted (views into the head or the scratch).
struct request_shape {
  std::string_view route_path;      // the path to route on: dot segments removed ("*" for OPTIONS *)
  std::string_view forward_target;  // the request target to send upstream (origin-form)
  std::string_view host_override;   // an absolute-form target's authority, which replaces Host
};

// Checks `req` (from an HTTP/1.0 client when `http10`) and fills `out`. Returns why the request is
// refused (400), or nullptr. Any thread.
const char* check_request(const http::message_head& req, bool http10, request_shape& out, rewrite_scratch& scratch);

// Facts about the connection and request that the upstream head depends on.
struct upstream_head_facts {
  request_shape shape;
  std::string_view client_ip;     // appended to X-Forwarded-For
  bool tls = false;               // X-Forwarded-Proto: https
  bool http10 = false;            // the client spoke HTTP/1.0: so does the upstream request
  bool drop_expect = false;       // Spillway answers the client's Expect: 100-continue itself
  bool upgrade = false;           // the Upgrade is passed on
  std::string_view request_id;    // X-Request-Id to add when the request has none
  std::string_view default_host;  // Host for an HTTP/1.0 request without one (the backend's address)
  std::string_view traceparent;   // tracing: replaces the client's traceparent (this try's span)
  bool drop_tracestate = false;   // tracing: the client's traceparent was not continued
};

// True when `req` carries an X-Request-Id (so none is generated). Any thread.
bool has_request_id(const http::message_head& req);

// Formats a random version-4 UUID from two random numbers. Any thread.
std::array<char, 36> make_request_id(std::uint64_t a, std::uint64_t b);

// Writes the head to send upstream for `req` into `out` (cleared first). Any thread.
void build_upstream_head(const http::message_head& req, const upstream_head_facts& facts, rewrite_scratch& scratch,
                         std::string& out);

// Writes the head to send downstream for `resp` into `out` (cleared first): `close` adds
// `connection: close`; `http10` (the client's version) keeps HTTP/1.0 connections alive
// explicitly. Any thread.
void build_downstream_head(const http::message_head& resp, bool close, bool http10, rewrite_scratch& scratch,
                           std::string& out);

// The fields of `resp` that an HTTP/2 client gets, in `out` (cleared first; views into `resp`):
// what build_downstream_head forwards, without the connection-specific ones HTTP/2 forbids
// (Transfer-Encoding among them, RFC 9113 section 8.2.2). Names in lower case (RFC 9113 8.2.1),
// views into `resp` and `scratch`. Any thread.
void h2_response_fields(const http::message_head& resp, rewrite_scratch& scratch, std::vector<http::header>& out);

// The request head an HTTP/2 backend gets for `req` (from an HTTP/1 or an HTTP/2 client), in `out`
// (cleared first): :method, :scheme `scheme`, :authority `authority`, :path `path`, then what
// build_upstream_head forwards, with the same X-Forwarded-For, X-Forwarded-Proto and X-Request-Id,
// names in lower case (RFC 9113 8.2), without Host (it is :authority), Transfer-Encoding and the
// other connection-specific fields HTTP/2 forbids; TE only as `trailers`. Views into `req`,
// `facts`, the arguments and `scratch`, valid until scratch is used again. Any thread.
void h2_request_fields(const http::message_head& req, const upstream_head_facts& facts, std::string_view scheme,
                       std::string_view authority, std::string_view path, rewrite_scratch& scratch,
                       std::vector<http::header>& out);

// Writes a whole answer Spillway makes itself for `kind` into `out` (cleared first): status,
// x-spillway-reason, `retry-after` (seconds) with a 503, `extra` (whole header lines, as a 429's
// rate limit headers), no body for a HEAD request. Any thread.
void build_local_reply(error_kind kind, bool close, bool http10, bool head_request, std::uint32_t retry_after_seconds,
                       std::string& out, std::string_view extra = {});

}  // namespace spillway::proxy
