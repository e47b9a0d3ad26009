#include "http/parser.h"

#include <gtest/gtest.h>

#include <string>

namespace spillway::http {
namespace {

using ev = parser::event;

// Feeds `in` whole and returns the events in order (as letters: H headers, C complete, E error).
std::string events(const std::string& in, parser::kind k = parser::kind::request, bool no_body = false,
                   std::size_t* consumed_total = nullptr) {
  parser p(k);
  p.set_no_body(no_body);
  std::string out;
  std::size_t off = 0;
  for (int guard = 0; guard < 50; ++guard) {
    auto r = p.feed(in.data() + off, in.size() - off);
    off += r.consumed;
    if (r.what == ev::error) {
      out += 'E';
      break;
    }
    if (r.what == ev::headers_complete) {
      out += 'H';
      continue;
    }
    if (r.what == ev::message_complete) {
      out += 'C';
    }
    if (off == in.size() && r.what != ev::message_complete) {
      break;
    }
    if (off == in.size() && r.what == ev::message_complete) {
      break;
    }
  }
  if (consumed_total != nullptr) {
    *consumed_total = off;
  }
  return out;
}

TEST(parser, pipelined_requests_split_exactly) {
  std::string in =
      "GET /a HTTP/1.1\r\nHost: x\r\n\r\n"
      "POST /b HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc"
      "GET /c HTTP/1.1\r\nHost: x\r\n\r\n";
  std::size_t consumed = 0;
  EXPECT_EQ(events(in, parser::kind::request, false, &consumed), "HCHCHC");
  EXPECT_EQ(consumed, in.size());
}

TEST(parser, head_fields) {
  parser p(parser::kind::request);
  std::string in = "POST /up?x=1 HTTP/1.1\r\nHost: a.example\r\nX-Empty:\r\nTransfer-Encoding: chunked\r\n\r\n";
  auto r = p.feed(in.data(), in.size());
  ASSERT_EQ(r.what, ev::headers_complete);
  EXPECT_EQ(r.consumed, in.size());
  EXPECT_EQ(p.head().method, "POST");
  EXPECT_EQ(p.head().url, "/up?x=1");
  EXPECT_EQ(p.head().find("host"), "a.example");
  EXPECT_EQ(p.head().find("x-empty"), "");
  EXPECT_EQ(p.head().count("X-EMPTY"), 1u);
  EXPECT_TRUE(p.head().chunked);
  EXPECT_TRUE(p.head().keep_alive);
  EXPECT_EQ(p.head_bytes(), in.size());
}

TEST(parser, skip_body_stands_in_for_spliced_content_length_bytes) {
  parser p(parser::kind::response);
  const std::string head = "HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n";
  EXPECT_EQ(p.body_remaining(), 0U);  // no head yet
  auto r = p.feed(head.data(), head.size());
  ASSERT_EQ(r.what, ev::headers_complete);
  EXPECT_EQ(p.body_remaining(), 100000U);
  const std::string some(1000, 'b');
  r = p.feed(some.data(), some.size());
  EXPECT_EQ(r.what, ev::need_more);
  EXPECT_EQ(p.body_remaining(), 99000U);
  r = p.skip_body(98999);  // spliced around the parser, in several of its steps
  EXPECT_EQ(r.what, ev::need_more);
  EXPECT_EQ(r.consumed, 98999U);
  EXPECT_EQ(p.body_remaining(), 1U);
  r = p.skip_body(1);
  EXPECT_EQ(r.what, ev::message_complete);
  EXPECT_EQ(p.body_remaining(), 0U);
  // The connection goes on: the next response parses as usual.
  const std::string next = "HTTP/1.1 204 No Content\r\n\r\n";
  r = p.feed(next.data(), next.size());
  EXPECT_EQ(r.what, ev::headers_complete);
  EXPECT_EQ(p.body_remaining(), 0U);
}

TEST(parser, body_remaining_is_zero_for_responses_without_a_body) {
  for (const char* head : {"HTTP/1.1 204 No Content\r\nContent-Length: 100000\r\n\r\n",
                           "HTTP/1.1 304 Not Modified\r\nContent-Length: 100000\r\n\r\n"}) {
    parser p(parser::kind::response);
    const std::string h = head;
    ASSERT_EQ(p.feed(h.data(), h.size()).what, ev::headers_complete) << head;
    EXPECT_EQ(p.body_remaining(), 0U) << head;
  }
  parser p(parser::kind::response);  // the answer to a HEAD
  p.set_no_body(true);
  const std::string h = "HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n";
  ASSERT_EQ(p.feed(h.data(), h.size()).what, ev::headers_complete);
  EXPECT_EQ(p.body_remaining(), 0U);
}

TEST(parser, body_remaining_is_zero_unless_content_length_frames_the_body) {
  for (const char* head : {"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",  // chunked
                           "HTTP/1.1 200 OK\r\n\r\n"}) {                             // until close
    parser p(parser::kind::response);
    const std::string h = head;
    ASSERT_EQ(p.feed(h.data(), h.size()).what, ev::headers_complete) << head;
    EXPECT_EQ(p.body_remaining(), 0U) << head;
  }
}

TEST(parser, chunked_body_is_consumed_raw) {
  std::string head = "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n";
  std::string body = "3\r\nabc\r\n0\r\n\r\n";
  parser p(parser::kind::request);
  auto in = head + body + "GET";
  auto r = p.feed(in.data(), in.size());
  ASSERT_EQ(r.what, ev::headers_complete);
  auto r2 = p.feed(in.data() + r.consumed, in.size() - r.consumed);
  EXPECT_EQ(r2.what, ev::message_complete);
  EXPECT_EQ(r2.consumed, body.size());
}

TEST(parser, ambiguous_framing_is_an_error) {
  EXPECT_EQ(
      events(
          "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"),
      "E");
  EXPECT_EQ(events("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc"), "E");
  EXPECT_EQ(events("GET / HTTP/1.1\r\nHost: x\r\nX-A: a\r\n b\r\n\r\n"), "E");  // obs-fold
  EXPECT_EQ(events("GET / HTTP/1.1\nHost: x\n\n"), "E");                        // bare LF
  EXPECT_EQ(events("GET / HTTP/1.1\r\nHost: x\nX: y\r\n\r\n"), "E");            // bare LF in a header
  EXPECT_EQ(events(std::string("GET / HTTP/1.1\r\nHost: x\r\nX: a\0b\r\n\r\n", 33)), "E");
  EXPECT_EQ(events("GET / HTTP/1.1\r\nHost: x\r\nX: a\x01z\r\n\r\n"), "E");
  EXPECT_EQ(events("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n"), "HE");
  EXPECT_EQ(events("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n"), "HE");
  EXPECT_EQ(events("GET / HTTP/1.1\r\nHost : x\r\n\r\n"), "E");
}

TEST(parser, obs_fold_is_caught_across_feeds) {
  parser p(parser::kind::request);
  std::string a = "GET / HTTP/1.1\r\nHost: x\r\nX-A: a\r\n";
  std::string b = " b\r\n\r\n";
  EXPECT_EQ(p.feed(a.data(), a.size()).what, ev::need_more);
  EXPECT_EQ(p.feed(b.data(), b.size()).what, ev::error);
}

TEST(parser, response_to_head_has_no_body) {
  EXPECT_EQ(events("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", parser::kind::response, true), "HC");
}

TEST(parser, response_until_close) {
  parser p(parser::kind::response);
  std::string in = "HTTP/1.0 200 OK\r\n\r\nabcdef";
  auto r = p.feed(in.data(), in.size());
  ASSERT_EQ(r.what, ev::headers_complete);
  EXPECT_TRUE(p.body_until_close());
  auto r2 = p.feed(in.data() + r.consumed, in.size() - r.consumed);
  EXPECT_EQ(r2.what, ev::need_more);
  EXPECT_EQ(p.finish(), ev::message_complete);
}

TEST(parser, interim_response_then_final) {
  EXPECT_EQ(
      events("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", parser::kind::response),
      "HCHC");
}

TEST(parser, http10_defaults_to_close) {
  parser p(parser::kind::request);
  std::string in = "GET / HTTP/1.0\r\n\r\n";
  ASSERT_EQ(p.feed(in.data(), in.size()).what, ev::headers_complete);
  EXPECT_FALSE(p.head().keep_alive);
  EXPECT_EQ(p.head().version_minor, 0);
}

TEST(parser, tokens) {
  EXPECT_TRUE(has_token("keep-alive, Upgrade", "upgrade"));
  EXPECT_FALSE(has_token("keep-alive", "close"));
  EXPECT_TRUE(iequals("Content-Length", "content-length"));
}

TEST(parser, refuses_what_llhttp_lets_pass) {
  EXPECT_EQ(events("GET / HTTP/1.1\r\n: x\r\nHost: a\r\n\r\n"), "E");  // empty field name
  EXPECT_EQ(events("GET / HTTP/2.0\r\nHost: a\r\n\r\n"), "E");         // HTTP/2.0 in HTTP/1
  EXPECT_EQ(events("GET / HTTP/0.9\r\nHost: a\r\n\r\n"), "E");
  EXPECT_EQ(events("GET  / HTTP/1.1\r\nHost: a\r\n\r\n"), "E");  // two spaces
  EXPECT_EQ(events("GET / HTTP/1.1\r\nHost: a\r\nUpgrade: x\r\nConnection: upgrade\r\n"
                   "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n"),
            "E");  // an upgrade with a chunked body: refused at the head
}

TEST(parser, field_count_limit) {
  std::string in = "GET / HTTP/1.1\r\nHost: a\r\n";
  for (int i = 0; i < 10; ++i) {
    in += "X:\r\n";
  }
  in += "\r\n";
  parser p(parser::kind::request);
  p.set_limits(64 * 1024, 10);
  auto r = p.feed(in.data(), in.size());
  EXPECT_EQ(r.what, ev::error);
  EXPECT_TRUE(p.error_too_large());
  parser q(parser::kind::request);
  q.set_limits(64 * 1024, 11);
  EXPECT_EQ(q.feed(in.data(), in.size()).what, ev::headers_complete);
}

// The trailer use-after-free: trailers used to be appended to the head's storage, and a big one
// reallocated it under the views of the head. Trailers are now checked and never stored, and a
// trailer section over the head limit is refused; the head stays readable (ASan checks).
TEST(parser, big_trailers_leave_the_head_intact) {
  parser p(parser::kind::request);
  p.set_limits(64 * 1024, 100);
  auto message = [](const std::string& url, std::size_t trailer) {
    return "POST " + url + " HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\nX-T: " +
           std::string(trailer, 't') + "\r\n\r\n";
  };
  std::string first = message("/first", 8 * 1024);
  auto r = p.feed(first.data(), first.size());
  ASSERT_EQ(r.what, ev::headers_complete);
  std::size_t off = r.consumed;
  r = p.feed(first.data() + off, first.size() - off);
  ASSERT_EQ(r.what, ev::message_complete);
  EXPECT_EQ(off + r.consumed, first.size());

  std::string second = message("/second", 300 * 1024);
  r = p.feed(second.data(), second.size());
  ASSERT_EQ(r.what, ev::headers_complete);
  off = r.consumed;
  r = p.feed(second.data() + off, second.size() - off);
  EXPECT_EQ(r.what, ev::error);
  EXPECT_TRUE(p.error_too_large());
  EXPECT_EQ(p.head().url, "/second");
  EXPECT_EQ(p.head().method, "POST");
  EXPECT_EQ(p.head().find("host"), "a");
}

TEST(parser, bodiless_statuses_ignore_their_length) {
  EXPECT_EQ(events("HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\n", parser::kind::response), "HC");
  EXPECT_EQ(events("HTTP/1.1 304 Not Modified\r\nTransfer-Encoding: chunked\r\n\r\n", parser::kind::response), "HC");
  EXPECT_EQ(events("HTTP/1.1 103 Early Hints\r\nContent-Length: 5\r\n\r\n", parser::kind::response), "HC");
}

TEST(parser, chunked_bodies_with_extensions_and_trailers) {
  std::size_t consumed = 0;
  std::string in =
      "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
      "5;a=b;c=\"d e\"\r\nhello\r\n0\r\nX-Sum: 1\r\n\r\n"
      "GET /next HTTP/1.1\r\nHost: a\r\n\r\n";
  EXPECT_EQ(events(in, parser::kind::request, false, &consumed), "HCHC");
  EXPECT_EQ(consumed, in.size());
  EXPECT_EQ(events("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\n"), "HE");
}

}  // namespace
}  // namespace spillway::http

namespace spillway::http {
namespace {

// fuzz_h2 (corpus crash-unknown-method): an HTTP/2 request with a method the HTTP/1 parser does not
// know reached the backend as a request line it refused. HTTP/2 requests are held to this list.
TEST(parser, known_methods_are_the_strict_parsers) {
  for (const char* m : {"GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH", "CONNECT", "PROPFIND"}) {
    EXPECT_TRUE(known_method(m)) << m;
  }
  for (const char* m : {"HEB9", "get", "PRI", "", "GET ", "FOO"}) {
    EXPECT_FALSE(known_method(m)) << m;
  }
}

}  // namespace
}  // namespace spillway::http
