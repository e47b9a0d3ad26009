#pragma once
// Shared by fuzz_request_parser and fuzz_response_parser: feeds one fuzz input to
// spillway::http::parser in chunks the input chooses, over as many messages as it holds, and
// aborts when an invariant of the parser's contract (src/http/parser.h) breaks.
//
// Input layout:
//   byte 0         flags: bits 0-2 = n, the number of split bytes that follow (0-7);
//                  bit 3 (responses) = set_no_body on every message; bit 4 (responses) = no body
//                  on odd messages only (a HEAD answered among GETs); bit 5 = Content-Length
//                  body bytes go around the parser, as when the proxy splices a big body: the
//                  parser is only told how many (skip_body)
//   bytes 1..n     chunk sizes, used in turn (0 = the rest of the input in one piece)
//   the rest       the bytes of the connection, as a peer would send them
//
// Every chunk is copied into its own heap block, freed as soon as feed() returns, so a parser that
// keeps a pointer into its input instead of copying is caught by ASan the next time the head is
// read. The head is read byte by byte when the headers complete and again when the message does
// (trailers, and every body byte, were parsed in between).

#include "http/parser.h"

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace spillway::fuzz {

// Prints what broke and aborts, so that libFuzzer saves the input as a crash.
[[noreturn]] inline void fail(const char* what) {
  std::fprintf(stderr, "invariant broken: %s\n", what);
  std::abort();
}

// SPILLWAY_FUZZ_IGNORE="empty header name,..." skips the invariants whose message contains one of
// those strings: for hunting past a known bug until it is fixed, never in CI.
inline bool ignored(std::string_view what) {
  static const std::string list = [] {
    const char* v = std::getenv("SPILLWAY_FUZZ_IGNORE");
    return std::string(v != nullptr ? v : "");
  }();
  std::string_view rest = list;
  while (!rest.empty()) {
    auto comma = rest.find(',');
    auto item = rest.substr(0, comma);
    if (!item.empty() && what.find(item) != std::string_view::npos) {
      return true;
    }
    rest = comma == std::string_view::npos ? std::string_view() : rest.substr(comma + 1);
  }
  return false;
}

inline void check(bool ok, const char* what) {
  if (!ok && !ignored(what)) {
    fail(what);
  }
}

inline bool is_tchar(unsigned char c) {
  if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')) {
    return true;
  }
  return std::string_view("!#$%&'*+-.^_`|~").find(static_cast<char>(c)) != std::string_view::npos;
}

// Reads every byte of `s` (so ASan sees a dangling view) and returns whether it holds a CR, LF or NUL.
inline bool has_cr_lf_nul(std::string_view s) {
  bool bad = false;
  for (char c : s) {
    bad |= c == '\r' || c == '\n' || c == '\0';
  }
  return bad;
}

// The head of a message the parser accepted: what the proxy would act on and re-serialise.
inline void check_head(const http::message_head& h, http::parser::kind k) {
  for (const auto& hd : h.headers) {
    check(!has_cr_lf_nul(hd.name), "CR, LF or NUL in a header name");
    check(!has_cr_lf_nul(hd.value), "CR, LF or NUL in a header value");
    check(!hd.name.empty(), "empty header name");
    for (char c : hd.name) {
      check(is_tchar(static_cast<unsigned char>(c)), "header name is not a token");
    }
  }
  check(!(h.chunked && h.has_content_length), "both chunked and Content-Length");
  check(h.count("content-length") <= 1, "more than one Content-Length");
  if (h.chunked) {
    check(h.count("transfer-encoding") >= 1, "chunked without Transfer-Encoding");
  }
  if (h.has_content_length) {
    check(h.count("content-length") == 1, "content length without a Content-Length header");
  }
  check(h.version_major == 1 && (h.version_minor == 0 || h.version_minor == 1), "version other than 1.0 or 1.1");
  if (k == http::parser::kind::request) {
    check(!h.method.empty(), "empty method");
    check(!h.url.empty(), "empty request target");
    check(!has_cr_lf_nul(h.method) && !has_cr_lf_nul(h.url), "CR, LF or NUL in the request line");
    for (char c : h.url) {
      check(c != ' ' && c != '\t', "whitespace in the request target");
    }
  } else {
    check(h.status >= 100 && h.status <= 999, "status outside 100-999");
    check(!has_cr_lf_nul(h.reason), "CR, LF or NUL in the reason phrase");
  }
}

inline void run_parser(http::parser::kind k, const std::uint8_t* data, std::size_t size) {
  if (size == 0) {
    return;
  }
  const std::size_t n_splits = data[0] & 7U;
  const bool no_body_all = k == http::parser::kind::response && (data[0] & 8U) != 0;
  const bool no_body_odd = k == http::parser::kind::response && (data[0] & 16U) != 0;
  const bool splice_bodies = (data[0] & 32U) != 0;
  if (size < 1 + n_splits) {
    return;
  }
  const std::uint8_t* splits = data + 1;
  const char* input = reinterpret_cast<const char*>(data + 1 + n_splits);
  const std::size_t len = size - 1 - n_splits;

  http::parser p(k);
  // A chunked body's trailer section, captured as a front end that drops the framing takes it.
  std::string trailer_text;
  p.set_trailer_capture(&trailer_text);
  std::size_t pos = 0;        // bytes consumed so far
  std::size_t delivered = 0;  // bytes the "peer" has sent so far (pos <= delivered <= len)
  std::size_t split_index = 0;
  std::size_t messages = 0;
  std::size_t idle_rounds = 0;  // feed() calls in a row that neither consumed nor changed phase
  bool in_body = false;
  std::size_t body_bytes = 0;
  bool expect_no_body = false;
  auto set_body_mode = [&] {
    expect_no_body = no_body_all || (no_body_odd && messages % 2 == 1);
    p.set_no_body(expect_no_body);
  };
  auto deliver_more = [&] {
    std::size_t step = n_splits == 0 ? 0 : splits[split_index++ % n_splits];
    delivered = step == 0 ? len : std::min(len, delivered + step);
  };
  set_body_mode();
  deliver_more();

  for (;;) {
    const std::size_t avail = delivered - pos;
    http::parser::result r;
    const std::uint64_t left = in_body ? p.body_remaining() : 0;
    if (in_body && p.head().has_content_length) {
      check(left <= p.head().content_length - body_bytes, "body_remaining() beyond the Content-Length left");
    } else {
      check(left == 0, "body_remaining() without a Content-Length body under way");
    }
    if (splice_bodies && left > 0 && avail > 0) {
      const auto n = static_cast<std::size_t>(std::min<std::uint64_t>(left, avail));
      r = p.skip_body(n);
      check(r.consumed == n, "skip_body() consumed other than it was told");
      check((r.what == http::parser::event::message_complete) == (n == left),
            "skip_body() ended the message elsewhere than body_remaining() said");
    } else {
      // A block of exactly the bytes offered, freed when feed() returns.
      std::unique_ptr<char[]> chunk(new char[avail == 0 ? 1 : avail]);
      std::copy(input + pos, input + delivered, chunk.get());
      r = p.feed(chunk.get(), avail);
      chunk.reset();
    }
    check(r.consumed <= avail, "consumed more than it was given");
    if (r.what == http::parser::event::error) {
      check(r.consumed == 0, "error with bytes consumed");
      check(p.error_reason() != nullptr, "error without a reason");
      // An error is final: the same bytes, or any others, are refused too.
      std::unique_ptr<char[]> again(new char[avail + 1]);
      std::copy(input + pos, input + delivered, again.get());
      again[avail] = 'x';
      check(p.feed(again.get(), avail + 1).what == http::parser::event::error, "feed() after an error did not fail");
      check(p.feed(again.get(), 0).what == http::parser::event::error, "empty feed() after an error did not fail");
      return;
    }
    pos += r.consumed;
    if (in_body) {
      body_bytes += r.consumed;
    }
    const bool changed_phase = r.what != http::parser::event::need_more;
    idle_rounds = (r.consumed == 0 && !changed_phase) ? idle_rounds + 1 : 0;
    check(idle_rounds < 3, "feed() makes no progress on offered bytes");
    switch (r.what) {
      case http::parser::event::need_more:
        check(r.consumed == avail, "need_more without consuming everything");
        break;
      case http::parser::event::headers_complete:
        check(!in_body, "headers_complete twice in one message");
        check(p.in_body(), "headers_complete but not in_body()");
        check_head(p.head(), k);
        in_body = true;
        body_bytes = 0;
        trailer_text.clear();
        break;
      case http::parser::event::message_complete: {
        check(in_body, "message_complete before headers_complete");
        const auto& h = p.head();
        if (!ignored("head read after the body")) {
          check_head(h, k);  // reads every view again: trailers and body bytes were parsed since
        }
        // 1xx, 204 and 304 responses have no body whatever length they claim (RFC 9112 6.3).
        const bool bodiless = expect_no_body || (k == http::parser::kind::response &&
                                                 (h.status < 200 || h.status == 204 || h.status == 304));
        // After an upgrade or a CONNECT the bytes that follow are the caller's, not a body.
        const bool handed_over = h.upgrade || h.method == "CONNECT";
        if (!handed_over && bodiless) {
          check(body_bytes == 0, "a body after set_no_body or on a bodiless status");
        } else if (!handed_over && h.has_content_length) {
          check(body_bytes == h.content_length, "body length differs from Content-Length");
        } else if (!handed_over && !h.chunked && k == http::parser::kind::request) {
          check(body_bytes == 0, "a request body without framing");
        }
        if (!trailer_text.empty()) {
          // Captured trailers are whole field lines, and split into fields a peer may be sent.
          check(h.chunked, "trailers captured from a body that is not chunked");
          check(trailer_text.size() >= 4 && trailer_text.substr(trailer_text.size() - 2) == "\r\n",
                "captured trailers do not end with CRLF");
          std::vector<std::pair<std::string, std::string>> fields;
          http::split_trailer_fields(trailer_text, fields);
          check(!fields.empty(), "captured trailers split into no field");
          for (const auto& [name, value] : fields) {
            check(!name.empty(), "empty trailer name");
            for (char c : name) {
              check(is_tchar(static_cast<unsigned char>(c)) && !(c >= 'A' && c <= 'Z'),
                    "trailer name not a lower-case token");
            }
            check(!has_cr_lf_nul(value), "CR, LF or NUL in a trailer value");
            check(value.empty() ||
                      (value.front() != ' ' && value.front() != '\t' && value.back() != ' ' && value.back() != '\t'),
                  "trailer value with surrounding whitespace");
          }
        }
        if (h.chunked && !bodiless && !handed_over) {
          // Chunked framing always ends with the CRLF after the last chunk (or the trailers).
          check(body_bytes >= 5 && std::string_view(input + pos - 4, 4) == "\r\n\r\n",
                "chunked body does not end with CRLF CRLF");
        }
        in_body = false;
        ++messages;
        if (h.upgrade || h.method == "CONNECT") {
          // The rest of the connection is a tunnel, not HTTP.
          return;
        }
        if (messages >= 64) {
          return;
        }
        set_body_mode();
        break;
      }
      case http::parser::event::error:
        break;
    }
    if (pos == delivered && r.what == http::parser::event::need_more) {
      if (delivered == len) {
        // The peer closed: a read-until-close body ends here, anything else was cut short.
        const bool until_close = p.body_until_close();
        auto fin = p.finish();
        if (fin == http::parser::event::message_complete) {
          check(in_body || until_close, "finish() completed a message that had no head");
          check_head(p.head(), k);
        }
        return;
      }
      deliver_more();
    }
  }
}

}  // namespace spillway::fuzz
