#include "proxy/http1_rewrite.h"

#include "http/status.h"

#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace spillway::proxy {
namespace {

// Parses the head `text` with the real parser; the parser owns the head's storage, so it is
// returned whole. Fails the test when the parser does not stop at the end of the head.
std::unique_ptr<http::parser> parse(const std::string& text, http::parser::kind k = http::parser::kind::request,
                                    std::size_t max_fields = 100) {
  auto p = std::make_unique<http::parser>(k);
  p->set_limits(std::size_t{1} << 24, max_fields);
  const auto r = p->feed(text.data(), text.size());
  EXPECT_TRUE(r.what == http::parser::event::headers_complete || r.what == http::parser::event::message_complete)
      << (p->error_reason() != nullptr ? p->error_reason() : "need more");
  return p;
}

std::unique_ptr<http::parser> parse_response(const std::string& text) {
  return parse(text, http::parser::kind::response);
}

// A written head split into its start line, fields and whatever follows the blank line.
struct written {
  std::string start;
  std::vector<std::pair<std::string, std::string>> fields;
  std::string body;
  bool terminated = false;  // ended with an empty line

  // Every value of the fields named `name` (case-insensitive), in order.
  std::vector<std::string> all(std::string_view name) const {
    std::vector<std::string> out;
    for (const auto& [n, v] : fields) {
      if (http::iequals(n, name)) {
        out.push_back(v);
      }
    }
    return out;
  }
  std::size_t count(std::string_view name) const { return all(name).size(); }
  // The only value of `name`, or "<absent>" / "<repeated>".
  std::string one(std::string_view name) const {
    const auto v = all(name);
    if (v.empty()) {
      return "<absent>";
    }
    return v.size() == 1 ? v[0] : "<repeated>";
  }
};

written split(const std::string& out) {
  written w;
  std::size_t pos = 0;
  bool first = true;
  while (pos < out.size()) {
    const auto eol = out.find("\r\n", pos);
    if (eol == std::string::npos) {
      ADD_FAILURE() << "unterminated line in: " << out;
      break;
    }
    const auto line = out.substr(pos, eol - pos);
    pos = eol + 2;
    if (first) {
      w.start = line;
      first = false;
      continue;
    }
    if (line.empty()) {
      w.terminated = true;
      w.body = out.substr(pos);
      break;
    }
    const auto colon = line.find(": ");
    if (colon == std::string::npos) {
      ADD_FAILURE() << "bad field line: " << line;
      continue;
    }
    w.fields.emplace_back(line.substr(0, colon), line.substr(colon + 2));
  }
  EXPECT_TRUE(w.terminated) << out;
  return w;
}

// check_request on a parsed head; returns the refusal or "" for an accepted request.
struct checked {
  std::string refusal;
  std::string route_path;
  std::string forward_target;
  std::string host_override;
};

checked check(const std::string& text, bool http10 = false) {
  auto p = parse(text);
  request_shape shape;
  rewrite_scratch scratch;
  const char* why = check_request(p->head(), http10, shape, scratch);
  checked c;
  c.refusal = why != nullptr ? why : "";
  c.route_path = shape.route_path;
  c.forward_target = shape.forward_target;
  c.host_override = shape.host_override;
  return c;
}

// build_upstream_head for `text` with `facts` (shape filled by check_request, which must accept).
written upstream(const std::string& text, upstream_head_facts facts = {}) {
  auto p = parse(text);
  rewrite_scratch scratch;
  const char* why = check_request(p->head(), facts.http10, facts.shape, scratch);
  EXPECT_EQ(why, nullptr) << why;
  if (facts.client_ip.empty()) {
    facts.client_ip = "192.0.2.7";
  }
  std::string out;
  build_upstream_head(p->head(), facts, scratch, out);
  return split(out);
}

written downstream(const std::string& text, bool close = false, bool http10 = false) {
  auto p = parse_response(text);
  rewrite_scratch scratch;
  std::string out;
  build_downstream_head(p->head(), close, http10, scratch, out);
  return split(out);
}

// ---- check_request ------------------------------------------------------------------------------

TEST(http1_rewrite, host_required_on_http11_optional_on_http10) {
  EXPECT_EQ(check("GET / HTTP/1.1\r\n\r\n").refusal, "no Host");
  EXPECT_EQ(check("GET / HTTP/1.0\r\n\r\n", true).refusal, "");
  EXPECT_EQ(check("GET / HTTP/1.1\r\nHost: a.example\r\n\r\n").refusal, "");
  EXPECT_EQ(check("GET / HTTP/1.0\r\nHost: a.example:8080\r\n\r\n", true).refusal, "");
}

TEST(http1_rewrite, two_hosts_refused) {
  EXPECT_EQ(check("GET / HTTP/1.1\r\nHost: a.example\r\nHost: a.example\r\n\r\n").refusal, "more than one Host");
  EXPECT_EQ(check("GET / HTTP/1.0\r\nHost: a.example\r\nhost: b.example\r\n\r\n", true).refusal, "more than one Host");
}

TEST(http1_rewrite, invalid_host_refused) {
  for (const char* host : {"a.example, b.example", "user@a.example", "a%2eexample", "a example", "a.example:99999x"}) {
    EXPECT_EQ(check(std::string("GET / HTTP/1.1\r\nHost: ") + host + "\r\n\r\n").refusal, "invalid Host") << host;
  }
  EXPECT_EQ(check("GET / HTTP/1.1\r\nHost: [::1]:8080\r\n\r\n").refusal, "");
  EXPECT_EQ(check("GET / HTTP/1.1\r\nHost: 10.0.0.1\r\n\r\n").refusal, "");
}

TEST(http1_rewrite, transfer_encoding_other_than_chunked_refused) {
  EXPECT_EQ(check("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n").refusal, "");
  EXPECT_EQ(check("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n").refusal,
            "Transfer-Encoding other than chunked");
  EXPECT_EQ(
      check("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n").refusal,
      "Transfer-Encoding other than chunked");
}

TEST(http1_rewrite, transfer_encoding_on_http10_refused) {
  EXPECT_EQ(check("POST / HTTP/1.0\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n", true).refusal,
            "Transfer-Encoding in an HTTP/1.0 request");
}

TEST(http1_rewrite, authority_form_needs_connect) {
  // llhttp already refuses an authority-form target on any method but CONNECT, and the session
  // answers CONNECT itself (405) before check_request, so this head is built by hand.
  http::parser p(http::parser::kind::request);
  const std::string text = "GET a.example:443 HTTP/1.1\r\nHost: a.example\r\n\r\n";
  EXPECT_EQ(p.feed(text.data(), text.size()).what, http::parser::event::error);

  http::message_head req;
  req.method = "GET";
  req.url = "a.example:443";
  req.headers = {{"Host", "a.example"}};
  request_shape shape;
  rewrite_scratch scratch;
  const char* why = check_request(req, false, shape, scratch);
  ASSERT_NE(why, nullptr);
  EXPECT_STREQ(why, "authority-form target without CONNECT");
}

TEST(http1_rewrite, asterisk_form_only_with_options) {
  const auto ok = check("OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n");
  EXPECT_EQ(ok.refusal, "");
  EXPECT_EQ(ok.route_path, "*");
  EXPECT_EQ(ok.forward_target, "*");
  EXPECT_EQ(ok.host_override, "");
  EXPECT_EQ(check("GET * HTTP/1.1\r\nHost: a\r\n\r\n").refusal, "asterisk-form target without OPTIONS");
}

// Accepted targets: the path routed on, the target forwarded and the Host that replaces the client's.
TEST(http1_rewrite, targets_routed_and_forwarded) {
  struct row {
    const char* target;
    const char* route_path;
    const char* forward_target;
    const char* host_override;
  };
  const row rows[] = {
      // Origin-form without dot segments goes on as sent; the query is not a path.
      {"/a/b?x=1&y=/../z", "/a/b", "/a/b?x=1&y=/../z", ""},
      // Dot segments are removed from both, also when percent-encoded, never above the root.
      {"/a/../b", "/b", "/b", ""},
      {"/api/%2e%2e/admin?q=1", "/admin", "/admin?q=1", ""},
      {"/x/%2E%2E/%2E/y", "/y", "/y", ""},
      {"/../../etc", "/etc", "/etc", ""},
      // Absolute-form goes on in origin form, query kept, its authority replacing Host.
      {"http://b.example:8080/p/./q?z=1", "/p/q", "/p/q?z=1", "b.example:8080"},
      {"http://b.example", "/", "/", "b.example"},
      {"http://b.example?k=v", "/", "/?k=v", "b.example"},
  };
  for (const auto& r : rows) {
    const auto c = check(std::string("GET ") + r.target + " HTTP/1.1\r\nHost: ignored.example\r\n\r\n");
    EXPECT_EQ(c.refusal, "") << r.target;
    EXPECT_EQ(c.route_path, r.route_path) << r.target;
    EXPECT_EQ(c.forward_target, r.forward_target) << r.target;
    EXPECT_EQ(c.host_override, r.host_override) << r.target;
  }
}

TEST(http1_rewrite, scratch_reused_across_requests) {
  rewrite_scratch scratch;
  request_shape shape;
  auto a = parse("GET http://b.example/x/../y HTTP/1.1\r\nHost: b.example\r\n\r\n");
  ASSERT_EQ(check_request(a->head(), false, shape, scratch), nullptr);
  EXPECT_EQ(shape.host_override, "b.example");
  auto b = parse("GET /plain HTTP/1.1\r\nHost: c.example\r\n\r\n");
  ASSERT_EQ(check_request(b->head(), false, shape, scratch), nullptr);
  EXPECT_EQ(shape.route_path, "/plain");
  EXPECT_EQ(shape.forward_target, "/plain");
  EXPECT_EQ(shape.host_override, "");  // nothing left over from the last request
}

// ---- build_upstream_head ------------------------------------------------------------------------

TEST(http1_rewrite, upstream_start_line_and_forwarded_headers) {
  upstream_head_facts f;
  f.client_ip = "198.51.100.4";
  f.request_id = "11111111-2222-4333-8444-555555555555";
  const auto w = upstream("GET /a/../b?q HTTP/1.1\r\nHost: a.example\r\nAccept: */*\r\n\r\n", f);
  EXPECT_EQ(w.start, "GET /b?q HTTP/1.1");
  EXPECT_EQ(w.one("host"), "a.example");
  EXPECT_EQ(w.one("accept"), "*/*");
  EXPECT_EQ(w.one("x-forwarded-for"), "198.51.100.4");
  EXPECT_EQ(w.one("x-forwarded-proto"), "http");
  EXPECT_EQ(w.one("x-request-id"), "11111111-2222-4333-8444-555555555555");
  EXPECT_EQ(w.count("connection"), 0u);
  EXPECT_EQ(w.body, "");
}

TEST(http1_rewrite, upstream_drops_hop_by_hop) {
  const auto w = upstream(
      "GET / HTTP/1.1\r\nHost: a\r\nConnection: keep-alive\r\nKeep-Alive: timeout=5\r\nTE: trailers\r\n"
      "Trailer: x-sum\r\nProxy-Connection: keep-alive\r\nProxy-Authorization: Basic eA==\r\n"
      "Proxy-Authenticate: Basic\r\nX-Kept: 1\r\n\r\n");
  for (const char* name : {"connection", "keep-alive", "te", "trailer", "upgrade", "proxy-connection",
                           "proxy-authorization", "proxy-authenticate"}) {
    EXPECT_EQ(w.count(name), 0u) << name;
  }
  EXPECT_EQ(w.one("x-kept"), "1");
}

TEST(http1_rewrite, upstream_upgrade_not_passed_on_dropped) {
  const auto w = upstream("GET /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n");
  EXPECT_EQ(w.count("upgrade"), 0u);
  EXPECT_EQ(w.count("connection"), 0u);
}

TEST(http1_rewrite, upstream_drops_headers_named_in_connection_but_not_framing_or_host) {
  const auto w = upstream(
      "POST / HTTP/1.1\r\nHost: a\r\nConnection: X-Secret, content-length, HOST\r\n"
      "Connection: x-other,,transfer-encoding\r\nX-Secret: s\r\nx-other: o\r\nX-Kept: k\r\n"
      "Content-Length: 3\r\n\r\n");
  EXPECT_EQ(w.count("x-secret"), 0u);
  EXPECT_EQ(w.count("x-other"), 0u);
  EXPECT_EQ(w.one("x-kept"), "k");
  EXPECT_EQ(w.one("content-length"), "3");
  EXPECT_EQ(w.one("host"), "a");

  const auto chunked =
      upstream("POST / HTTP/1.1\r\nHost: a\r\nConnection: Transfer-Encoding\r\nTransfer-Encoding: chunked\r\n\r\n");
  EXPECT_EQ(chunked.one("transfer-encoding"), "chunked");
}

TEST(http1_rewrite, upstream_x_forwarded_for_appended) {
  upstream_head_facts f;
  f.client_ip = "203.0.113.9";
  const auto one = upstream("GET / HTTP/1.1\r\nHost: a\r\nX-Forwarded-For: 10.0.0.1\r\n\r\n", f);
  EXPECT_EQ(one.one("x-forwarded-for"), "10.0.0.1, 203.0.113.9");

  const auto merged = upstream(
      "GET / HTTP/1.1\r\nHost: a\r\nX-Forwarded-For: 10.0.0.1, 10.0.0.2\r\nAccept: */*\r\n"
      "x-forwarded-for: 10.0.0.3\r\nX-Forwarded-For:\r\n\r\n",
      f);
  EXPECT_EQ(merged.one("x-forwarded-for"), "10.0.0.1, 10.0.0.2, 10.0.0.3, 203.0.113.9");
}

TEST(http1_rewrite, upstream_x_forwarded_proto_from_tls_only) {
  upstream_head_facts tls;
  tls.tls = true;
  const auto w = upstream("GET / HTTP/1.1\r\nHost: a\r\nX-Forwarded-Proto: http\r\n\r\n", tls);
  EXPECT_EQ(w.one("x-forwarded-proto"), "https");
  const auto plain = upstream("GET / HTTP/1.1\r\nHost: a\r\nX-Forwarded-Proto: https\r\n\r\n");
  EXPECT_EQ(plain.one("x-forwarded-proto"), "http");  // a client cannot claim https
}

TEST(http1_rewrite, upstream_request_id_only_when_absent) {
  upstream_head_facts f;
  f.request_id = "generated";
  const auto kept = upstream("GET / HTTP/1.1\r\nHost: a\r\nX-Request-Id: from-client\r\n\r\n", f);
  EXPECT_EQ(kept.one("x-request-id"), "from-client");

  const auto added = upstream("GET / HTTP/1.1\r\nHost: a\r\n\r\n", f);
  EXPECT_EQ(added.one("x-request-id"), "generated");

  const auto none = upstream("GET / HTTP/1.1\r\nHost: a\r\n\r\n");
  EXPECT_EQ(none.count("x-request-id"), 0u);

  const auto hop = upstream("GET / HTTP/1.1\r\nHost: a\r\nConnection: X-Request-ID\r\nX-Request-Id: c\r\n\r\n", f);
  EXPECT_EQ(hop.one("x-request-id"), "generated");
  // has_request_id and build_upstream_head read the Connection tokens alike (OWS, case, lists).
  const std::string tabbed =
      "GET / HTTP/1.1\r\nHost: a\r\nConnection: close ,\tx-REQUEST-id \r\nX-Request-Id: c\r\n\r\n";
  EXPECT_FALSE(has_request_id(parse(tabbed)->head()));
  EXPECT_EQ(upstream(tabbed, f).one("x-request-id"), "generated");
}

TEST(http1_rewrite, has_request_id) {
  EXPECT_TRUE(has_request_id(parse("GET / HTTP/1.1\r\nHost: a\r\nx-request-id: r\r\n\r\n")->head()));
  EXPECT_FALSE(has_request_id(parse("GET / HTTP/1.1\r\nHost: a\r\n\r\n")->head()));
  EXPECT_FALSE(has_request_id(
      parse("GET / HTTP/1.1\r\nHost: a\r\nConnection: close, X-Request-Id\r\nX-Request-Id: r\r\n\r\n")->head()));
  EXPECT_FALSE(has_request_id(
      parse("GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\nX-Request-Id: r\r\nConnection: x-request-id\r\n\r\n")
          ->head()));
}

TEST(http1_rewrite, upstream_host_from_override) {
  const auto w = upstream("GET http://b.example:81/x?y HTTP/1.1\r\nHost: other.example\r\n\r\n");
  EXPECT_EQ(w.start, "GET /x?y HTTP/1.1");
  EXPECT_EQ(w.one("host"), "b.example:81");
}

TEST(http1_rewrite, upstream_http10_without_host_gets_one) {
  upstream_head_facts f;
  f.http10 = true;
  f.default_host = "127.0.0.1:9000";
  const auto w = upstream("GET /x HTTP/1.0\r\n\r\n", f);
  EXPECT_EQ(w.start, "GET /x HTTP/1.0");
  EXPECT_EQ(w.one("host"), "127.0.0.1:9000");
  EXPECT_EQ(w.one("connection"), "keep-alive");

  const auto absolute = upstream("GET http://c.example/x HTTP/1.0\r\n\r\n", f);
  EXPECT_EQ(absolute.one("host"), "c.example");

  const auto own = upstream("GET /x HTTP/1.0\r\nHost: d.example\r\nConnection: keep-alive\r\n\r\n", f);
  EXPECT_EQ(own.one("host"), "d.example");
  EXPECT_EQ(own.one("connection"), "keep-alive");
}

TEST(http1_rewrite, upstream_expect_dropped_when_answered_here) {
  const std::string req = "POST / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\n";
  upstream_head_facts f;
  EXPECT_EQ(upstream(req, f).one("expect"), "100-continue");
  f.drop_expect = true;
  const auto w = upstream(req, f);
  EXPECT_EQ(w.count("expect"), 0u);
  EXPECT_EQ(w.one("content-length"), "1");
}

TEST(http1_rewrite, upstream_upgrade_passed_on) {
  upstream_head_facts f;
  f.upgrade = true;
  const auto w = upstream(
      "GET /ws HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, Upgrade\r\nUpgrade: websocket\r\n"
      "Sec-WebSocket-Key: k\r\n\r\n",
      f);
  EXPECT_EQ(w.one("upgrade"), "websocket");
  EXPECT_EQ(w.one("connection"), "upgrade");
  EXPECT_EQ(w.one("sec-websocket-key"), "k");
}

TEST(http1_rewrite, upstream_head_parses_back) {
  upstream_head_facts f;
  f.client_ip = "192.0.2.1";
  f.request_id = "rid";
  auto p = parse("PUT /a/%2E%2E/b HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\n");
  rewrite_scratch scratch;
  ASSERT_EQ(check_request(p->head(), false, f.shape, scratch), nullptr);
  std::string out;
  build_upstream_head(p->head(), f, scratch, out);
  auto again = parse(out);
  EXPECT_EQ(again->head().method, "PUT");
  EXPECT_EQ(again->head().url, "/b");
  EXPECT_EQ(again->head().content_length, 2u);
  EXPECT_EQ(again->head_bytes(), out.size());
}

// ---- build_downstream_head ----------------------------------------------------------------------

TEST(http1_rewrite, downstream_drops_hop_by_hop) {
  const auto w = downstream(
      "HTTP/1.1 200 Fine\r\nConnection: keep-alive, X-Backend-Hop\r\nKeep-Alive: timeout=5\r\n"
      "Proxy-Authenticate: Basic\r\nTrailer: x-sum\r\nUpgrade: h2c\r\nX-Backend-Hop: 1\r\nX-Kept: 2\r\n"
      "Content-Length: 0\r\n\r\n");
  EXPECT_EQ(w.start, "HTTP/1.1 200 Fine");
  for (const char* name : {"connection", "keep-alive", "proxy-authenticate", "trailer", "upgrade", "x-backend-hop"}) {
    EXPECT_EQ(w.count(name), 0u) << name;
  }
  EXPECT_EQ(w.one("x-kept"), "2");
  EXPECT_EQ(w.one("content-length"), "0");
}

TEST(http1_rewrite, downstream_framing_kept_when_named_in_connection) {
  const auto w = downstream("HTTP/1.1 200 OK\r\nConnection: Content-Length\r\nContent-Length: 4\r\n\r\n");
  EXPECT_EQ(w.one("content-length"), "4");
  const auto c = downstream("HTTP/1.1 200 OK\r\nConnection: transfer-encoding\r\nTransfer-Encoding: chunked\r\n\r\n");
  EXPECT_EQ(c.one("transfer-encoding"), "chunked");
}

TEST(http1_rewrite, downstream_no_length_on_bodiless_statuses) {
  const auto no_content = downstream("HTTP/1.1 204 No Content\r\nContent-Length: 0\r\nX-Kept: 1\r\n\r\n");
  EXPECT_EQ(no_content.count("content-length"), 0u);
  EXPECT_EQ(no_content.one("x-kept"), "1");
  const auto no_content_te = downstream("HTTP/1.1 204 No Content\r\nTransfer-Encoding: chunked\r\n\r\n");
  EXPECT_EQ(no_content_te.count("transfer-encoding"), 0u);

  const auto early = downstream("HTTP/1.1 103 Early Hints\r\nLink: </s.css>\r\nContent-Length: 5\r\n\r\n");
  EXPECT_EQ(early.start, "HTTP/1.1 103 Early Hints");
  EXPECT_EQ(early.count("content-length"), 0u);
  EXPECT_EQ(early.one("link"), "</s.css>");

  const auto not_modified = downstream("HTTP/1.1 304 Not Modified\r\nContent-Length: 120\r\nETag: \"e\"\r\n\r\n");
  EXPECT_EQ(not_modified.one("content-length"), "120");  // the length the full answer would have
  EXPECT_EQ(not_modified.one("etag"), "\"e\"");
  const auto not_modified_te = downstream("HTTP/1.1 304 Not Modified\r\nTransfer-Encoding: chunked\r\n\r\n");
  EXPECT_EQ(not_modified_te.count("transfer-encoding"), 0u);

  const auto ok = downstream("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n");
  EXPECT_EQ(ok.one("transfer-encoding"), "chunked");
}

TEST(http1_rewrite, downstream_connection_handling) {
  const std::string resp = "HTTP/1.1 200 OK\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\n";
  EXPECT_EQ(downstream(resp).count("connection"), 0u);
  EXPECT_EQ(downstream(resp, true).one("connection"), "close");
  EXPECT_EQ(downstream(resp, false, true).one("connection"), "keep-alive");
  EXPECT_EQ(downstream(resp, true, true).one("connection"), "close");
  const auto backend_close = downstream("HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n");
  EXPECT_EQ(backend_close.count("connection"), 0u);  // the backend's connection is not the client's
}

TEST(http1_rewrite, downstream_switching_protocols_keeps_upgrade) {
  const auto w = downstream(
      "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
      "Sec-WebSocket-Accept: x\r\n\r\n",
      true);
  EXPECT_EQ(w.start, "HTTP/1.1 101 Switching Protocols");
  EXPECT_EQ(w.one("upgrade"), "websocket");
  EXPECT_EQ(w.one("connection"), "upgrade");
  EXPECT_EQ(w.one("sec-websocket-accept"), "x");
}

// ---- build_local_reply --------------------------------------------------------------------------

TEST(http1_rewrite, local_reply_every_kind) {
  for (std::size_t i = 0; i < local_reply_count; ++i) {
    const auto kind = static_cast<error_kind>(i);
    std::string out;
    build_local_reply(kind, false, false, false, 7, out);
    const auto w = split(out);
    const int status = status_of(kind);
    EXPECT_EQ(w.start, "HTTP/1.1 " + std::to_string(status) + " " + http::reason_phrase(status)) << out;
    EXPECT_EQ(w.one("x-spillway-reason"), std::string(to_string(kind)));
    EXPECT_EQ(w.body, std::string(to_string(kind)) + "\n");
    EXPECT_EQ(w.one("content-length"), std::to_string(w.body.size()));
    EXPECT_EQ(w.count("retry-after"), status == 503 ? 1u : 0u) << to_string(kind);
    EXPECT_EQ(w.count("connection"), 0u);
  }
}

TEST(http1_rewrite, local_reply_retry_after_on_503) {
  std::string out;
  build_local_reply(error_kind::no_healthy_upstream, false, false, false, 3, out);
  const auto w = split(out);
  EXPECT_EQ(w.start, "HTTP/1.1 503 Service Unavailable");
  EXPECT_EQ(w.one("retry-after"), "3");
  EXPECT_EQ(w.one("x-spillway-reason"), "no_healthy_upstream");
}

TEST(http1_rewrite, local_reply_head_has_no_body) {
  std::string get;
  build_local_reply(error_kind::no_route, false, false, false, 0, get);
  std::string head;
  build_local_reply(error_kind::no_route, false, false, true, 0, head);
  const auto w = split(head);
  EXPECT_EQ(w.body, "");
  EXPECT_EQ(w.one("content-length"), split(get).one("content-length"));
  EXPECT_EQ(w.one("content-length"), std::to_string(std::string_view("no_route\n").size()));
  EXPECT_EQ(get.substr(0, head.size()), head);
}

TEST(http1_rewrite, local_reply_connection) {
  std::string out;
  build_local_reply(error_kind::malformed_request, true, false, false, 0, out);
  EXPECT_EQ(split(out).one("connection"), "close");
  build_local_reply(error_kind::malformed_request, true, true, false, 0, out);
  EXPECT_EQ(split(out).one("connection"), "close");
  build_local_reply(error_kind::malformed_request, false, true, false, 0, out);
  EXPECT_EQ(split(out).one("connection"), "keep-alive");
}

TEST(http1_rewrite, local_reply_parses_back) {
  std::string out;
  build_local_reply(error_kind::upstream_timeout, true, false, false, 0, out);
  http::parser p(http::parser::kind::response);
  const auto r = p.feed(out.data(), out.size());
  ASSERT_EQ(r.what, http::parser::event::headers_complete);
  EXPECT_EQ(p.head().status, 504);
  EXPECT_EQ(p.head().content_length, std::string_view("upstream_timeout\n").size());
  EXPECT_FALSE(p.head().keep_alive);
  const auto r2 = p.feed(out.data() + r.consumed, out.size() - r.consumed);
  EXPECT_EQ(r2.what, http::parser::event::message_complete);
  EXPECT_EQ(r.consumed + r2.consumed, out.size());
}

// ---- make_request_id ----------------------------------------------------------------------------

void expect_uuid_v4(const std::array<char, 36>& id) {
  const std::string s(id.begin(), id.end());
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (i == 8 || i == 13 || i == 18 || i == 23) {
      EXPECT_EQ(s[i], '-') << s;
    } else {
      EXPECT_NE(std::string_view("0123456789abcdef").find(s[i]), std::string_view::npos) << s;
    }
  }
  EXPECT_EQ(s[14], '4') << s;
  EXPECT_NE(std::string_view("89ab").find(s[19]), std::string_view::npos) << s;
}

// h2_request_fields for `text` (accepted by check_request) to an HTTP/2 backend: name -> values.
std::vector<std::pair<std::string, std::string>> h2_request(const std::string& text, upstream_head_facts facts = {}) {
  auto p = parse(text);
  rewrite_scratch scratch;
  const char* why = check_request(p->head(), facts.http10, facts.shape, scratch);
  EXPECT_EQ(why, nullptr) << why;
  if (facts.client_ip.empty()) {
    facts.client_ip = "192.0.2.7";
  }
  const auto authority = facts.shape.host_override.empty() ? p->head().find("host") : facts.shape.host_override;
  std::vector<http::header> fields;
  h2_request_fields(p->head(), facts, "https", authority, facts.shape.forward_target, scratch, fields);
  std::vector<std::pair<std::string, std::string>> out;
  for (const auto& f : fields) {
    out.emplace_back(f.name, f.value);
  }
  return out;
}

TEST(http1_rewrite, h2_request_pseudo_fields_first_names_lowered) {
  upstream_head_facts f;
  f.request_id = "11111111-2222-4333-8444-555555555555";
  f.tls = true;
  const auto got =
      h2_request("POST /a/../b?q HTTP/1.1\r\nHost: a.example\r\nX-Mixed-Case: V\r\nContent-Length: 3\r\n\r\n", f);
  const std::vector<std::pair<std::string, std::string>> want = {
      {":method", "POST"},
      {":scheme", "https"},
      {":authority", "a.example"},
      {":path", "/b?q"},
      {"x-mixed-case", "V"},
      {"content-length", "3"},
      {"x-forwarded-for", "192.0.2.7"},
      {"x-forwarded-proto", "https"},
      {"x-request-id", "11111111-2222-4333-8444-555555555555"},
  };
  EXPECT_EQ(got, want);
}

TEST(http1_rewrite, h2_request_drops_connection_specific_fields) {
  const auto got = h2_request(
      "POST / HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, X-Secret\r\nKeep-Alive: 5\r\nX-Secret: s\r\n"
      "Transfer-Encoding: chunked\r\nUpgrade: websocket\r\nProxy-Connection: x\r\nTE: gzip, trailers\r\n"
      "X-Forwarded-For: 10.0.0.1\r\nX-Forwarded-Proto: https\r\nX-Request-Id: mine\r\n\r\n");
  const std::vector<std::pair<std::string, std::string>> want = {
      {":method", "POST"},
      {":scheme", "https"},
      {":authority", "a"},
      {":path", "/"},
      {"x-request-id", "mine"},
      {"te", "trailers"},
      {"x-forwarded-for", "10.0.0.1, 192.0.2.7"},
      {"x-forwarded-proto", "http"},
  };
  EXPECT_EQ(got, want);
}

TEST(http1_rewrite, h2_request_absolute_form_and_expect) {
  upstream_head_facts f;
  f.drop_expect = true;
  const auto got =
      h2_request("PUT http://b.example:8080/x HTTP/1.1\r\nHost: ignored\r\nExpect: 100-continue\r\n\r\n", f);
  EXPECT_EQ(got[2], (std::pair<std::string, std::string>{":authority", "b.example:8080"}));
  EXPECT_EQ(got[3], (std::pair<std::string, std::string>{":path", "/x"}));
  for (const auto& [n, v] : got) {
    EXPECT_NE(n, "expect");
    EXPECT_NE(n, "host");
  }
}

TEST(http1_rewrite, h2_response_fields_lowered) {
  auto p = parse_response("HTTP/1.1 200 OK\r\nX-Up: 1\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n");
  rewrite_scratch scratch;
  std::vector<http::header> fields;
  h2_response_fields(p->head(), scratch, fields);
  ASSERT_EQ(fields.size(), 1u);
  EXPECT_EQ(fields[0].name, "x-up");
  EXPECT_EQ(fields[0].value, "1");
}

TEST(http1_rewrite, make_request_id_is_uuid_v4) {
  const std::uint64_t samples[][2] = {{0, 0},
                                      {~0ULL, ~0ULL},
                                      {0x0123456789abcdefULL, 0xfedcba9876543210ULL},
                                      {0x8000000000000000ULL, 0x4000000000000000ULL},
                                      {0xffffffffffff0fffULL, 0x3fffffffffffffffULL}};
  for (const auto& s : samples) {
    expect_uuid_v4(make_request_id(s[0], s[1]));
  }
  const auto id = make_request_id(0x0123456789abcdefULL, 0xfedcba9876543210ULL);
  EXPECT_EQ(std::string(id.begin(), id.end()), "01234567-89ab-4def-bedc-ba9876543210");
  const auto zero = make_request_id(0, 0);
  EXPECT_EQ(std::string(zero.begin(), zero.end()), "00000000-0000-4000-8000-000000000000");
}

// ---- pathological heads -------------------------------------------------------------------------

TEST(http1_rewrite, thousands_of_connection_tokens_and_fields) {
  constexpr int n = 5000;
  std::string req = "GET / HTTP/1.1\r\nHost: a\r\nConnection: ";
  for (int i = 0; i < n; ++i) {
    req += (i == 0 ? "" : ", ") + std::string("X-H") + std::to_string(2 * i);  // the even-numbered fields
  }
  req += "\r\n";
  for (int i = 0; i < n; ++i) {
    req += "x-h" + std::to_string(i) + ": v" + std::to_string(i) + "\r\n";
  }
  req += "\r\n";
  auto p = parse(req, http::parser::kind::request, 2 * n);
  ASSERT_EQ(p->head().headers.size(), static_cast<std::size_t>(n + 2));
  upstream_head_facts f;
  rewrite_scratch scratch;
  ASSERT_EQ(check_request(p->head(), false, f.shape, scratch), nullptr);
  f.client_ip = "192.0.2.1";
  std::string out;
  build_upstream_head(p->head(), f, scratch, out);
  const auto w = split(out);
  EXPECT_EQ(w.count("connection"), 0u);
  std::size_t kept = 0;
  for (const auto& [name, value] : w.fields) {
    if (name.rfind("x-h", 0) == 0) {
      const int i = std::stoi(name.substr(3));
      EXPECT_EQ(i % 2, 1) << name;
      EXPECT_EQ(value, "v" + std::to_string(i));
      ++kept;
    }
  }
  EXPECT_EQ(kept, static_cast<std::size_t>(n / 2));
  EXPECT_EQ(w.one("host"), "a");

  std::string resp = "HTTP/1.1 200 OK\r\nConnection: ";
  for (int i = 0; i < n; ++i) {
    resp += (i == 0 ? "" : ",") + std::string("x-h") + std::to_string(2 * i + 1);  // the odd-numbered ones
  }
  resp += "\r\nContent-Length: 0\r\n";
  for (int i = 0; i < n; ++i) {
    resp += "X-H" + std::to_string(i) + ": v\r\n";
  }
  resp += "\r\n";
  auto rp = parse(resp, http::parser::kind::response, 2 * n);
  build_downstream_head(rp->head(), false, false, scratch, out);
  const auto d = split(out);
  EXPECT_EQ(d.fields.size(), static_cast<std::size_t>(n / 2 + 1));  // the even X-H* and Content-Length
  EXPECT_EQ(d.one("content-length"), "0");
  EXPECT_EQ(d.count("x-h1"), 0u);
  EXPECT_EQ(d.one("x-h0"), "v");
}

}  // namespace
}  // namespace spillway::proxy

namespace spillway::proxy {
namespace {

// Tracing: the backend gets this try's traceparent in place of the client's, and the client's
// tracestate only when its trace was continued. Both for HTTP/1.1 and HTTP/2 backends.
TEST(http1_rewrite, tracing_replaces_traceparent_and_keeps_tracestate_with_the_trace) {
  const std::string request =
      "GET / HTTP/1.1\r\nHost: a\r\ntraceparent: 00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01\r\n"
      "tracestate: rojo=00f067aa0ba902b7\r\n\r\n";
  const std::string ours = "00-0af7651916cd43dd8448eb211c80319c-1111111111111111-01";
  upstream_head_facts f;
  f.traceparent = ours;
  auto h1 = upstream(request, f);
  EXPECT_EQ(h1.all("traceparent"), std::vector<std::string>{ours});
  EXPECT_EQ(h1.all("tracestate"), std::vector<std::string>{"rojo=00f067aa0ba902b7"});
  f.drop_tracestate = true;
  EXPECT_TRUE(upstream(request, f).all("tracestate").empty());
  std::vector<std::string> h2_trace;
  bool h2_state = false;
  for (const auto& [name, value] : h2_request(request, f)) {
    if (name == "traceparent") {
      h2_trace.push_back(value);
    }
    h2_state = h2_state || name == "tracestate";
  }
  EXPECT_EQ(h2_trace, std::vector<std::string>{ours});
  EXPECT_FALSE(h2_state);
  // Without tracing, both pass through as they came.
  auto plain = upstream(request);
  EXPECT_EQ(plain.all("traceparent"),
            std::vector<std::string>{"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"});
  EXPECT_EQ(plain.all("tracestate").size(), 1u);
}

}  // namespace
}  // namespace spillway::proxy
