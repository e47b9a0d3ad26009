#include "http/chunked.h"

#include <gtest/gtest.h>

#include <string>
#include <utility>
#include <vector>

namespace spillway::http {
namespace {

using st = chunked_decoder::status;

struct outcome {
  st what;
  std::size_t consumed;
  std::string error;
};

// Decodes `body` whole, then again one byte per feed(): both must agree.
outcome decode(const std::string& body, chunked_decoder::limits l = {}) {
  chunked_decoder d;
  d.reset(l);
  auto r = d.feed(body.data(), body.size());
  outcome whole{r.what, r.consumed, d.error() != nullptr ? d.error() : ""};

  chunked_decoder b;
  b.reset(l);
  std::size_t consumed = 0;
  st what = st::need_more;
  for (std::size_t i = 0; i < body.size() && what == st::need_more; ++i) {
    auto one = b.feed(body.data() + i, 1);
    consumed += one.consumed;
    what = one.what;
  }
  EXPECT_EQ(what, whole.what) << "byte-by-byte disagrees on: " << body;
  if (what == st::done) {
    EXPECT_EQ(consumed, whole.consumed);
  }
  return whole;
}

TEST(chunked, plain_body_stops_at_its_end) {
  std::string body = "5\r\nhello\r\n0\r\n\r\n";
  auto o = decode(body + "GET / HTTP/1.1\r\n");
  EXPECT_EQ(o.what, st::done);
  EXPECT_EQ(o.consumed, body.size());
}

TEST(chunked, valid_extensions_are_accepted) {
  // RFC 9112 7.1.1: several extensions, BWS around ";" and "=", token and quoted values, quoted-pairs.
  for (const char* line : {"5;a=b", "5;a", "5;a=b;c=d", "5 ;a=b", "5; a=b", "5;a = b", "5;a=\"b c\"", "5;a=\"b\\\"c\"",
                           "5;a=\"\"", "5;a=b ;c", "5;a=\"x\" ;c", "5\t;a=b"}) {
    auto o = decode(std::string(line) + "\r\nhello\r\n0;last=1\r\n\r\n");
    EXPECT_EQ(o.what, st::done) << line << ": " << o.error;
  }
}

TEST(chunked, invalid_sizes_and_lines_are_refused) {
  for (const char* body : {
           "\r\nhello\r\n0\r\n\r\n",            // no size
           "5 \r\nhello\r\n0\r\n\r\n",          // whitespace then CRLF
           "0x5\r\nhello\r\n0\r\n\r\n",         // hex prefix
           "-5\r\nhello\r\n0\r\n\r\n",          // sign
           "+5\r\nhello\r\n0\r\n\r\n",          // sign
           "5\nhello\r\n0\r\n\r\n",             // bare LF after the size
           "5\rhello\r\n0\r\n\r\n",             // bare CR
           "5\r\nhello\n0\r\n\r\n",             // bare LF after the data
           "5\r\nhelloX\r\n0\r\n\r\n",          // data longer than the size
           "ffffffffffffffff\r\n",              // 2^64-1
           "1000000000000000\r\n",              // 16 digits
           "5;\r\nhello\r\n0\r\n\r\n",          // empty extension name
           "5;a=\r\nhello\r\n0\r\n\r\n",        // empty extension value
           "5;a=b \r\nhello\r\n0\r\n\r\n",      // whitespace before CRLF
           "5;a=\"b\r\nhello\r\n0\r\n\r\n",     // unterminated quoted string
           "5;a=\"b\"c\r\nhello\r\n0\r\n\r\n",  // junk after a quoted string
           "5;a@b\r\nhello\r\n0\r\n\r\n",       // not a token
           "5;a=b\x01\r\nhello\r\n0\r\n\r\n",   // CTL
       }) {
    auto o = decode(body);
    EXPECT_EQ(o.what, st::error) << body;
  }
}

TEST(chunked, fifteen_digit_size_is_the_largest) {
  EXPECT_EQ(decode("00000000000005\r\nhello\r\n0\r\n\r\n").what, st::done);
  EXPECT_EQ(decode("000000000000005\r\nhello\r\n0\r\n\r\n").what, st::done);
  EXPECT_EQ(decode("0000000000000005\r\nhello\r\n0\r\n\r\n").what, st::error);
}

TEST(chunked, trailers_follow_the_rules_of_headers) {
  EXPECT_EQ(decode("0\r\nX-Sum: abc\r\nX-Other:\r\n\r\n").what, st::done);
  EXPECT_EQ(decode("0\r\ngrpc-status: 0\r\ngrpc-message: ok\r\n\r\n").what, st::done);
  for (const char* body : {
           "0\r\n\n",                                  // bare LF ending the body
           "0\r\nX: a\n\r\n",                          // bare LF in a trailer
           "0\r\nX: a\r\n b\r\n\r\n",                  // obs-fold
           "0\r\n : a\r\n\r\n",                        // starts with whitespace
           "0\r\n: a\r\n\r\n",                         // empty name
           "0\r\nX : a\r\n\r\n",                       // whitespace before the colon
           "0\r\nContent-Length: 5\r\n\r\n",           // framing
           "0\r\nTransfer-Encoding: chunked\r\n\r\n",  // framing
           "0\r\nHOST: evil\r\n\r\n",                  // routing, any case
           "0\r\nAuthorization: Basic x\r\n\r\n",      // authorisation
       }) {
    EXPECT_EQ(decode(body).what, st::error) << body;
  }
  // The NUL case, written with its length.
  EXPECT_EQ(decode(std::string("0\r\nX: a\0b\r\n\r\n", 14)).what, st::error);
}

// The trailer section of `body` as captured, fed whole and byte by byte (both must agree).
std::string captured(const std::string& body) {
  std::string whole;
  chunked_decoder d;
  d.reset({});
  d.set_trailer_capture(&whole);
  EXPECT_EQ(d.feed(body.data(), body.size()).what, st::done) << body;
  std::string bytewise;
  chunked_decoder b;
  b.reset({});
  b.set_trailer_capture(&bytewise);
  for (char c : body) {
    b.feed(&c, 1);
  }
  EXPECT_EQ(whole, bytewise);
  return whole;
}

TEST(chunked, trailers_captured_and_split) {
  EXPECT_EQ(captured("5\r\nhello\r\n0\r\n\r\n"), "");
  EXPECT_EQ(captured("0;ext=1\r\nX-Sum: abc\r\ngrpc-status:0\r\nE:\r\n\r\n"), "X-Sum: abc\r\ngrpc-status:0\r\nE:\r\n");
  std::vector<std::pair<std::string, std::string>> fields = {{"kept", "1"}};
  split_trailer_fields("X-Sum: abc \r\ngrpc-status:0\r\nE:\t\r\n", fields);
  const std::vector<std::pair<std::string, std::string>> want = {
      {"kept", "1"}, {"x-sum", "abc"}, {"grpc-status", "0"}, {"e", ""}};
  EXPECT_EQ(fields, want);
}

TEST(chunked, trailer_section_is_bounded) {
  chunked_decoder::limits l;
  l.max_trailer_bytes = 100;
  l.max_trailer_fields = 3;
  EXPECT_EQ(decode("0\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n", l).what, st::done);
  EXPECT_EQ(decode("0\r\nA: 1\r\nB: 2\r\nC: 3\r\nD: 4\r\n\r\n", l).what, st::error);
  EXPECT_EQ(decode("0\r\nA: " + std::string(200, 'x') + "\r\n\r\n", l).what, st::error);

  chunked_decoder d;
  d.reset(l);
  std::string big = "0\r\nA: " + std::string(200, 'x') + "\r\n\r\n";
  EXPECT_EQ(d.feed(big.data(), big.size()).what, st::error);
  EXPECT_TRUE(d.too_large());
}

TEST(chunked, extensions_are_bounded) {
  chunked_decoder::limits l;
  l.max_extension_bytes = 64;
  std::string body;
  for (int i = 0; i < 20; ++i) {
    body += "1;abcdef=ghijkl\r\nx\r\n";
  }
  body += "0\r\n\r\n";
  chunked_decoder d;
  d.reset(l);
  EXPECT_EQ(d.feed(body.data(), body.size()).what, st::error);
  EXPECT_TRUE(d.too_large());
}

TEST(chunked, counts_data_and_trailers) {
  chunked_decoder d;
  d.reset({});
  std::string body = "3\r\nabc\r\n2\r\nde\r\n0\r\nX: y\r\n\r\n";
  auto r = d.feed(body.data(), body.size());
  EXPECT_EQ(r.what, st::done);
  EXPECT_EQ(d.data_bytes(), 5u);
  EXPECT_TRUE(d.has_trailers());
  // After the end, nothing more is taken.
  EXPECT_EQ(d.feed("1\r\n", 3).consumed, 0u);
}

}  // namespace
}  // namespace spillway::http
