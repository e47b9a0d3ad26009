// Inputs the fuzzers (tests/fuzz) found, each replayed as it was found; the same bytes are in
// tests/fuzz/corpus/<target>/crash-*, so every fuzz run starts from them too.

#include "http/parser.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace spillway::http {
namespace {

using ev = parser::event;

// What a caller sees of each message: its head's fields copied when the message completes (the
// views are read then, after the body and trailers were parsed).
struct seen {
  std::string method;
  std::string url;
  std::vector<std::pair<std::string, std::string>> headers;
  int version_minor = -1;
};

// Feeds `in` whole, message after message; stops at the first error (`*error` set) or when the input
// is used up.
std::vector<seen> parse_all(const std::string& in, bool* error) {
  parser p(parser::kind::request);
  std::vector<seen> out;
  std::size_t off = 0;
  *error = false;
  for (int guard = 0; guard < 1000; ++guard) {
    auto r = p.feed(in.data() + off, in.size() - off);
    off += r.consumed;
    if (r.what == ev::error) {
      *error = true;
      return out;
    }
    if (r.what == ev::message_complete) {
      seen s;
      s.method = std::string(p.head().method);
      s.url = std::string(p.head().url);
      for (const auto& h : p.head().headers) {
        s.headers.emplace_back(std::string(h.name), std::string(h.value));
      }
      s.version_minor = p.head().version_minor;
      out.push_back(std::move(s));
    } else if (r.what == ev::need_more && off == in.size()) {
      return out;
    }
  }
  ADD_FAILURE() << "the parser makes no progress";
  return out;
}

// fuzz_request_parser and fuzz_proxy: a header with an empty name was accepted, and forwarded.
// corpus: fuzz_request_parser/crash-empty-header-name, fuzz_proxy/crash-empty-header-name
TEST(parser_fuzz_regressions, empty_header_name_is_refused) {
  bool error = false;
  auto got = parse_all("GET / HTTP/1.1\r\nHost: a\r\n: x\r\n\r\n", &error);
  EXPECT_TRUE(error);
  EXPECT_TRUE(got.empty());
}

// fuzz_request_parser (ASan: heap-use-after-free in check_head): trailers are appended to the head's
// storage; when that grows, every view of the head (method, URL, headers) dangles.
// corpus: fuzz_request_parser/post-chunked-big-trailer (a seed written to catch it)
TEST(parser_fuzz_regressions, trailers_leave_the_head_intact) {
  const std::string in =
      "POST /c HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n1\r\na\r\n0\r\nX-T: " + std::string(3000, 't') +
      "\r\n\r\n"
      "POST /d HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nX-U: " +
      std::string(6000, 'u') + "\r\n\r\n";
  bool error = false;
  auto got = parse_all(in, &error);
  ASSERT_FALSE(error);
  ASSERT_EQ(got.size(), 2U);
  EXPECT_EQ(got[1].method, "POST");
  EXPECT_EQ(got[1].url, "/d");
  ASSERT_EQ(got[1].headers.size(), 2U);
  EXPECT_EQ(got[1].headers[0], (std::pair<std::string, std::string>("Host", "a")));
  EXPECT_EQ(got[1].headers[1], (std::pair<std::string, std::string>("Transfer-Encoding", "chunked")));
}

// fuzz_request_parser and fuzz_proxy: a request line without a version is an HTTP/0.9 request to
// llhttp; the parser accepted it with the headers that follow (version 0.9), and the proxy forwarded
// it as HTTP/1.1 with the would-be version glued to the target: `HEAD /$HTTP/1.1 HTTP/1.1`.
// `CONNECT \r\n` went through the same way with an empty target.
// corpus: fuzz_request_parser/crash-http09-request-line, fuzz_request_parser/crash-connect-empty-target,
// fuzz_proxy/crash-http09-request-line
TEST(parser_fuzz_regressions, request_line_without_version_is_refused) {
  for (const std::string in : {"GET /\r\n\r\n", "HEAD /$HTTP/1.1\r\nHost: a\r\n\r\n", "CONNECT \r\n\r\n"}) {
    bool error = false;
    auto got = parse_all(in, &error);
    EXPECT_TRUE(error) << in;
    EXPECT_TRUE(got.empty()) << in;
  }
}

// fuzz_request_parser and fuzz_proxy: an HTTP/1 parser accepted `HTTP/2.0` (and any major
// version) in the request line; the proxy forwarded it as HTTP/1.1. RFC 9112 section 2.3: a server
// answers a major version it does not speak with 505.
// corpus: fuzz_request_parser/crash-http20-request-line, fuzz_proxy/crash-http20-request-line
TEST(parser_fuzz_regressions, version_other_than_http1_is_refused) {
  for (const std::string in : {"GET / HTTP/2.0\r\n\r\n", "GET / HTTP/0.9\r\n\r\n", "GET / HTTP/3.1\r\n\r\n"}) {
    bool error = false;
    auto got = parse_all(in, &error);
    EXPECT_TRUE(error) << in;
    EXPECT_TRUE(got.empty()) << in;
  }
}

// fuzz_response_parser: a two-digit status (`HTTP/1.1 20 OK`) was accepted as status 20; RFC 9112
// section 4: status-code = 3DIGIT. The proxy's framing rules (1xx, 204, 304) assume 100-999.
// corpus: fuzz_response_parser/crash-two-digit-status
TEST(parser_fuzz_regressions, two_digit_status_is_refused) {
  parser p(parser::kind::response);
  const std::string in = "HTTP/1.1 20 OK\r\nContent-Length: 0\r\n\r\n";
  auto r = p.feed(in.data(), in.size());
  EXPECT_EQ(r.what, ev::error) << "status " << p.head().status;
}

// fuzz_response_parser: NUL bytes in the reason phrase were accepted (RFC 9112 section 4:
// reason-phrase = *( HTAB / SP / VCHAR / obs-text )); the proxy passes the reason on to clients.
// corpus: fuzz_response_parser/crash-nul-in-reason
TEST(parser_fuzz_regressions, nul_in_reason_phrase_is_refused) {
  parser p(parser::kind::response);
  const std::string in("HTTP/1.1 200 O\0\0\0\0\r\nContent-Length: 0\r\n\r\n", 41);
  auto r = p.feed(in.data(), in.size());
  EXPECT_EQ(r.what, ev::error);
}

// fuzz_request_parser and fuzz_response_parser: a bare LF ending the trailer section (or the
// last chunk) was accepted. Body framing is forwarded byte for byte, so the next hop sees it too.
// corpus: fuzz_request_parser/crash-trailer-bare-lf, fuzz_response_parser/crash-last-chunk-bare-lf
TEST(parser_fuzz_regressions, bare_lf_after_the_last_chunk_is_refused) {
  bool error = false;
  parse_all("POST /c HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nX-Other: 2\r\n\n", &error);
  EXPECT_TRUE(error);

  parser p(parser::kind::response);
  const std::string in = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\n";
  std::size_t off = 0;
  auto r = p.feed(in.data(), in.size());
  off += r.consumed;
  ASSERT_EQ(r.what, ev::headers_complete);
  r = p.feed(in.data() + off, in.size() - off);
  EXPECT_EQ(r.what, ev::error);
}

}  // namespace
}  // namespace spillway::http
