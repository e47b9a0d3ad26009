#pragma once
// The admin API's safety checks (SPEC section 5), pure so that they are tested without sockets:
// which requests are refused before routing, with what status, and why (the `reason` label of
// spillway_admin_requests_rejected_total).

#include "http/parser.h"

#include <cstdint>
#include <optional>
#include <string_view>

namespace spillway::admin {

// Why the admin API refused a request.
enum class rejection { host, origin, content_type, token, method, too_large, timeout, bad_request, count_ };
// The label value of a rejection. Any thread.
const char* to_string(rejection r);

// `host` is the Host header; `listen` the admin address as configured ("127.0.0.1:9901").
// True for that address, `localhost` or an IP literal (v4, or v6 in brackets), each with an
// optional port: a DNS-rebinding page sends its own host name, which is none of these.
bool host_allowed(std::string_view host, std::string_view listen);
// True for a body type a plain HTML form can send (application/x-www-form-urlencoded,
// multipart/form-data, text/plain), compared case-insensitively and without parameters.
bool form_content_type(std::string_view content_type);
// True when `authorization` is "Bearer <token>" (scheme case-insensitive). Compares SHA-256 digests
// with CRYPTO_memcmp, so that neither the token's bytes nor its length leak through timing.
bool bearer_matches(std::string_view authorization, std::string_view token);
// True for a probe that needs no token: GET or HEAD of /ready or /live (any query). Kubernetes'
// kubelet and load balancers' health checks cannot send a bearer token, and these answers say only
// "serving", "draining" or "alive". Pure; any thread.
bool probe_request(std::string_view method, std::string_view url);

// What the server is configured to accept.
struct admission_policy {
  std::string_view listen;  // the admin address as configured (for host_allowed)
  std::string_view token;   // empty: no token required
  std::uint64_t max_body = 0;
  bool open_probes = false;  // GET/HEAD /ready and /live need no token (admin.open_probes)
};

// A refused request: the answer to send (text/plain, then the connection is closed: its body is
// never read, and nothing more is owed to such a client) and the reason to count.
struct refusal {
  rejection why;
  int status;
  std::string_view body;
  std::string_view extra_headers;  // whole header lines, CRLF included
};

// Checks a request head before it is routed, in this order: one Host header (none is allowed only
// from HTTP/1.0), an allowed Host, the bearer token when one is set (not for a probe_request), a
// method the API knows (GET, HEAD, POST), for POST neither an Origin header nor a form's content
// type (what a cross-site page can send), and a declared body within max_body. Returns the first
// refusal, or nothing when the request may be routed. Pure; any thread.
std::optional<refusal> admit(const http::message_head& head, const admission_policy& policy);

}  // namespace spillway::admin
