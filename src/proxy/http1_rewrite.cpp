#include "proxy/http1_rewrite.h"

#include "http/status.h"
#include "http/target.h"

#include <fmt/format.h>

#include <algorithm>
#include <charconv>

namespace spillway::proxy {

namespace {

// Headers that describe one connection, not the message: never forwarded (RFC 9110 section 7.6.1).
// Transfer-Encoding stays: bodies are forwarded with the framing they arrived with.
bool is_hop_by_hop(std::string_view name) {
  static constexpr std::string_view names[] = {"connection", "keep-alive", "proxy-connection",   "te",
                                               "trailer",    "upgrade",    "proxy-authenticate", "proxy-authorization"};
  for (auto n : names) {
    if (http::iequals(name, n)) {
      return true;
    }
  }
  return false;
}

// ASCII case-insensitive ordering of tokens.
bool iless(std::string_view a, std::string_view b) {
  const auto n = std::min(a.size(), b.size());
  for (std::size_t i = 0; i < n; ++i) {
    auto x = static_cast<unsigned char>(a[i]);
    auto y = static_cast<unsigned char>(b[i]);
    x = (x >= 'A' && x <= 'Z') ? x - 'A' + 'a' : x;
    y = (y >= 'A' && y <= 'Z') ? y - 'A' + 'a' : y;
    if (x != y) {
      return x < y;
    }
  }
  return a.size() < b.size();
}

// Collects the tokens of every Connection header of `m` (not just the first), sorted, so that each
// header of the message is then looked up in log time: a head of thousands of tokens and fields
// costs O(n log n), never O(n^2).
void collect_connection_tokens(const http::message_head& m, std::vector<std::string_view>& out) {
  out.clear();
  for (const auto& h : m.headers) {
    if (!http::iequals(h.name, "connection")) {
      continue;
    }
    std::string_view list = h.value;
    while (!list.empty()) {
      const auto comma = list.find(',');
      const auto item = http::trim_ows(list.substr(0, comma));
      if (!item.empty()) {
        out.push_back(item);
      }
      if (comma == std::string_view::npos) {
        break;
      }
      list.remove_prefix(comma + 1);
    }
  }
  std::sort(out.begin(), out.end(), iless);
}

// A header named in a Connection header is hop-by-hop too; but the framing headers are never
// dropped that way, or a client could make Spillway strip Content-Length from a body it forwards.
bool listed_in_connection(std::string_view name, const std::vector<std::string_view>& tokens) {
  if (tokens.empty() || http::iequals(name, "content-length") || http::iequals(name, "transfer-encoding") ||
      http::iequals(name, "host")) {
    return false;
  }
  return std::binary_search(tokens.begin(), tokens.end(), name, iless);
}

// Tracing forwards its own traceparent, and the client's tracestate only with the client's trace.
bool replaced_by_trace(std::string_view name, const upstream_head_facts& facts) {
  return (!facts.traceparent.empty() && http::iequals(name, "traceparent")) ||
         (facts.drop_tracestate && http::iequals(name, "tracestate"));
}

// Appends `name` in lower case to `buf` and returns a view of it there: `buf` is reserved by the
// caller for every name, so that the views stay valid.
std::string_view lowered(std::string_view name, std::string& buf) {
  const auto at = buf.size();
  buf.append(name);  // then in place: no capacity check per byte
  for (auto it = buf.begin() + static_cast<std::ptrdiff_t>(at); it != buf.end(); ++it) {
    if (*it >= 'A' && *it <= 'Z') {
      *it = static_cast<char>(*it - 'A' + 'a');
    }
  }
  return std::string_view(buf).substr(at, name.size());
}

std::size_t name_bytes(const http::message_head& m) {
  std::size_t n = 0;
  for (const auto& h : m.headers) {
    n += h.name.size();
  }
  return n;
}

void append_header(std::string& out, std::string_view name, std::string_view value) {
  out.append(name);
  out.append(": ");
  out.append(value);
  out.append("\r\n");
}

}  // namespace

const char* check_request(const http::message_head& req, bool http10, request_shape& out, rewrite_scratch& scratch) {
  // Host: exactly one on HTTP/1.1 (HTTP/1.0 may omit it), and a single valid host[:port], never a
  // list or anything a backend could split differently.
  out = request_shape{};
  const auto hosts = req.count("host");
  if (hosts > 1) {
    return "more than one Host";
  }
  if (hosts == 0 && !http10) {
    return "no Host";
  }
  if (hosts == 1 && !http::valid_host(req.find("host"))) {
    return "invalid Host";
  }
  // Transfer-Encoding: only "chunked" alone (the parser refused other lists' framing already), and
  // never from HTTP/1.0, which has no transfer codings (RFC 9112 section 6.1).
  if (const auto te = req.count("transfer-encoding"); te > 0) {
    if (http10) {
      return "Transfer-Encoding in an HTTP/1.0 request";
    }
    if (te > 1 || !http::iequals(http::trim_ows(req.find("transfer-encoding")), "chunked")) {
      return "Transfer-Encoding other than chunked";
    }
  }
  http::request_target target;
  if (!http::parse_target(req.url, target)) {
    return "malformed request target";
  }
  if (target.form == http::target_form::authority) {
    return "authority-form target without CONNECT";
  }
  if (target.form == http::target_form::asterisk && req.method != "OPTIONS") {
    return "asterisk-form target without OPTIONS";
  }
  if (target.form == http::target_form::asterisk) {
    out.route_path = "*";
    out.forward_target = req.url;
    return nullptr;
  }
  // Dot segments are removed before routing, and the path routed on is the path forwarded, so
  // "/api/../admin" can neither escape a path_prefix route nor reach a backend that would resolve it.
  std::string_view path = target.path.empty() ? std::string_view("/") : target.path;
  if (http::remove_dot_segments(path, scratch.path)) {
    path = scratch.path;
  }
  out.route_path = path;
  if (target.form == http::target_form::origin && path.size() == target.path.size()) {
    out.forward_target = req.url;
  } else {
    // Absolute-form goes on in origin form, its authority replacing Host (RFC 9112 3.2.2).
    scratch.target.assign(path);
    scratch.target.append(target.query);
    out.forward_target = scratch.target;
    if (target.form == http::target_form::absolute) {
      scratch.authority.assign(target.authority);
      out.host_override = scratch.authority;
    }
  }
  return nullptr;
}

bool has_request_id(const http::message_head& req) {
  if (req.count("x-request-id") == 0) {
    return false;
  }
  // One named in a Connection header is dropped as hop-by-hop: then the request has none.
  for (const auto& h : req.headers) {
    if (http::iequals(h.name, "connection") && http::has_token(h.value, "x-request-id")) {
      return false;
    }
  }
  return true;
}

std::array<char, 36> make_request_id(std::uint64_t a, std::uint64_t b) {
  a = (a & 0xffffffffffff0fffULL) | 0x0000000000004000ULL;  // version 4
  b = (b & 0x3fffffffffffffffULL) | 0x8000000000000000ULL;  // variant 1
  // 8-4-4-4-12 lowercase hex digits, most significant first. By hand: fmt's format-string parse
  // cost ~2,700 instructions per request here, a tenth of a whole proxied request.
  static constexpr char hex[] = "0123456789abcdef";
  std::array<char, 36> id{};
  std::size_t at = 0;
  auto digits = [&](std::uint64_t v, int count) {
    for (int shift = (count - 1) * 4; shift >= 0; shift -= 4) {
      id[at++] = hex[(v >> shift) & 0xf];
    }
  };
  digits(a >> 32, 8);
  id[at++] = '-';
  digits(a >> 16, 4);
  id[at++] = '-';
  digits(a, 4);
  id[at++] = '-';
  digits(b >> 48, 4);
  id[at++] = '-';
  digits(b, 12);
  return id;
}

void build_upstream_head(const http::message_head& req, const upstream_head_facts& facts, rewrite_scratch& scratch,
                         std::string& out) {
  out.clear();
  out.append(req.method);
  out.push_back(' ');
  out.append(facts.shape.forward_target);
  // HTTP/1.0 clients are forwarded as HTTP/1.0 so that the backend never answers them chunked.
  out.append(facts.http10 ? " HTTP/1.0\r\n" : " HTTP/1.1\r\n");
  collect_connection_tokens(req, scratch.connection_tokens);
  const auto& host_override = facts.shape.host_override;
  bool have_request_id = false;
  bool have_xff = false;
  for (const auto& h : req.headers) {
    if (is_hop_by_hop(h.name) || listed_in_connection(h.name, scratch.connection_tokens)) {
      continue;
    }
    if (!host_override.empty() && http::iequals(h.name, "host")) {
      append_header(out, h.name, host_override);  // RFC 9112 section 3.2.2
      continue;
    }
    if (http::iequals(h.name, "x-forwarded-for")) {
      have_xff = true;  // merged into one header below, with the client's address last
      continue;
    }
    if (http::iequals(h.name, "x-forwarded-proto")) {
      continue;  // set by us: a client cannot claim https
    }
    if (facts.drop_expect && http::iequals(h.name, "expect")) {
      continue;
    }
    if (http::iequals(h.name, "x-request-id")) {
      have_request_id = true;
    }
    if (replaced_by_trace(h.name, facts)) {
      continue;
    }
    append_header(out, h.name, h.value);
  }
  if (!facts.traceparent.empty()) {
    append_header(out, "traceparent", facts.traceparent);
  }
  out.append("x-forwarded-for: ");
  if (have_xff) {
    for (const auto& h : req.headers) {
      if (http::iequals(h.name, "x-forwarded-for") && !h.value.empty()) {
        out.append(h.value);
        out.append(", ");
      }
    }
  }
  out.append(facts.client_ip);
  out.append(facts.tls ? "\r\nx-forwarded-proto: https\r\n" : "\r\nx-forwarded-proto: http\r\n");
  if (!have_request_id && !facts.request_id.empty()) {
    append_header(out, "x-request-id", facts.request_id);
  }
  if (req.count("host") == 0) {
    // HTTP/1.0 clients may omit Host; backends expect one.
    append_header(out, "host", host_override.empty() ? facts.default_host : host_override);
  }
  if (facts.upgrade) {
    // Connection and Upgrade are hop-by-hop, so they were dropped above; an upgrade asks the next
    // hop again for the same protocol.
    append_header(out, "upgrade", req.find("upgrade"));
    out.append("connection: upgrade\r\n");
  } else if (facts.http10) {
    out.append("connection: keep-alive\r\n");
  }
  out.append("\r\n");
}

void build_downstream_head(const http::message_head& resp, bool close, bool http10, rewrite_scratch& scratch,
                           std::string& out) {
  out.clear();
  out.append("HTTP/1.1 ");
  char digits[12];
  const auto written = std::to_chars(digits, digits + sizeof digits, resp.status);  // not fmt: per response
  out.append(digits, written.ptr);
  out.push_back(' ');
  out.append(resp.reason);
  out.append("\r\n");
  collect_connection_tokens(resp, scratch.connection_tokens);
  // 1xx and 204 answers have no body and may not claim one; a 304 may carry the length the full
  // answer would have, never a transfer coding (RFC 9110 8.6, RFC 9112 6.1). A length left on them
  // would make a client wait for bytes that never come.
  const bool no_length = resp.status < 200 || resp.status == 204;
  const bool no_coding = no_length || resp.status == 304;
  for (const auto& h : resp.headers) {
    if (is_hop_by_hop(h.name) || listed_in_connection(h.name, scratch.connection_tokens)) {
      continue;
    }
    if ((no_length && http::iequals(h.name, "content-length")) ||
        (no_coding && http::iequals(h.name, "transfer-encoding"))) {
      continue;
    }
    append_header(out, h.name, h.value);
  }
  if (resp.status == 101) {
    append_header(out, "upgrade", resp.find("upgrade"));
    out.append("connection: upgrade\r\n");
  } else if (close) {
    out.append("connection: close\r\n");
  } else if (http10) {
    out.append("connection: keep-alive\r\n");
  }
  out.append("\r\n");
}

void h2_response_fields(const http::message_head& resp, rewrite_scratch& scratch, std::vector<http::header>& out) {
  out.clear();
  collect_connection_tokens(resp, scratch.connection_tokens);
  scratch.lower.clear();
  scratch.lower.reserve(name_bytes(resp));
  const bool no_length = resp.status < 200 || resp.status == 204;
  for (const auto& h : resp.headers) {
    if (is_hop_by_hop(h.name) || listed_in_connection(h.name, scratch.connection_tokens) ||
        http::iequals(h.name, "transfer-encoding") || (no_length && http::iequals(h.name, "content-length"))) {
      continue;
    }
    // A chunked answer's length is its chunks': a Content-Length beside it is not forwarded.
    if (resp.chunked && http::iequals(h.name, "content-length")) {
      continue;
    }
    out.push_back({lowered(h.name, scratch.lower), h.value});
  }
}

void h2_request_fields(const http::message_head& req, const upstream_head_facts& facts, std::string_view scheme,
                       std::string_view authority, std::string_view path, rewrite_scratch& scratch,
                       std::vector<http::header>& out) {
  out.clear();
  out.push_back({":method", req.method});
  out.push_back({":scheme", scheme});
  out.push_back({":authority", authority});
  out.push_back({":path", path});
  collect_connection_tokens(req, scratch.connection_tokens);
  scratch.lower.clear();
  scratch.lower.reserve(name_bytes(req));
  scratch.xff.clear();
  bool have_request_id = false;
  bool te_trailers = false;
  for (const auto& h : req.headers) {
    if (http::iequals(h.name, "te")) {
      te_trailers = te_trailers || http::has_token(h.value, "trailers");
      continue;
    }
    if (is_hop_by_hop(h.name) || listed_in_connection(h.name, scratch.connection_tokens) ||
        http::iequals(h.name, "host") || http::iequals(h.name, "transfer-encoding") ||
        http::iequals(h.name, "x-forwarded-proto") || (facts.drop_expect && http::iequals(h.name, "expect"))) {
      continue;
    }
    if (http::iequals(h.name, "x-forwarded-for")) {
      if (!h.value.empty()) {
        scratch.xff.append(h.value);
        scratch.xff.append(", ");
      }
      continue;
    }
    have_request_id = have_request_id || http::iequals(h.name, "x-request-id");
    if (replaced_by_trace(h.name, facts)) {
      continue;
    }
    out.push_back({lowered(h.name, scratch.lower), h.value});
  }
  if (!facts.traceparent.empty()) {
    out.push_back({"traceparent", facts.traceparent});
  }
  if (te_trailers) {
    out.push_back({"te", "trailers"});
  }
  scratch.xff.append(facts.client_ip);
  out.push_back({"x-forwarded-for", scratch.xff});
  out.push_back({"x-forwarded-proto", facts.tls ? "https" : "http"});
  if (!have_request_id && !facts.request_id.empty()) {
    out.push_back({"x-request-id", facts.request_id});
  }
}

void build_local_reply(error_kind kind, bool close, bool http10, bool head_request, std::uint32_t retry_after_seconds,
                       std::string& out, std::string_view extra) {
  const int status = status_of(kind);
  const auto name = to_string(kind);
  out.clear();
  fmt::format_to(std::back_inserter(out),
                 "HTTP/1.1 {} {}\r\ncontent-type: text/plain\r\ncontent-length: {}\r\nx-spillway-reason: {}\r\n",
                 status, http::reason_phrase(status), name.size() + 1, name);
  if (status == 503) {
    fmt::format_to(std::back_inserter(out), "retry-after: {}\r\n", retry_after_seconds);
  }
  out.append(extra);
  if (close) {
    out.append("connection: close\r\n");
  } else if (http10) {
    out.append("connection: keep-alive\r\n");
  }
  out.append("\r\n");
  if (!head_request) {
    out.append(name);
    out.push_back('\n');
  }
}

}  // namespace spillway::proxy
