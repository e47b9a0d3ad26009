#pragma once
// The one wrapper around llhttp. All C callbacks live in parser.cpp.
//
// The parser works in two phases per message, so that the proxy can forward bodies as raw bytes
// without re-encoding them:
//   1. feed() until `headers_complete`: the head (start line + headers) is collected into
//      `head()`; the caller re-serialises it after rewriting.
//   2. feed() until `message_complete`: every byte consumed in this phase is body framing exactly as
//      received (Content-Length bytes or chunked encoding) and, having been validated by llhttp, may
//      be forwarded verbatim. Bytes after the message are not consumed (pipelining).
// llhttp runs in strict mode with every lenient flag off, so ambiguous framing is an error, never a
// guess.

#include "http/chunked.h"

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

struct llhttp__internal_s;

namespace spillway::http {

struct header {
  std::string_view name;
  std::string_view value;
};

// A parsed start line and header block. Views point into storage owned by the parser and stay valid
// until the next message begins (reset() or a feed() that starts a new message).
struct message_head {
  std::string_view method;  // requests
  std::string_view url;     // requests
  int status = 0;           // responses
  std::string_view reason;  // responses: the reason phrase as sent
  int version_major = 1;
  int version_minor = 1;
  std::vector<header> headers;
  bool chunked = false;
  bool has_content_length = false;
  std::uint64_t content_length = 0;
  bool keep_alive = true;  // after this message (Connection header and version)
  bool upgrade = false;    // Connection: upgrade + Upgrade (or CONNECT)

  // Returns the first header with that name (ASCII case-insensitive), or an empty view.
  std::string_view find(std::string_view name) const;
  // Counts headers with that name.
  std::size_t count(std::string_view name) const;
};

class parser {
 public:
  enum class kind { request, response };
  enum class event {
    need_more,         // all input consumed, message not finished
    headers_complete,  // head() is ready; the body (if any) follows
    message_complete,  // the message (head and body) ended; later bytes were not consumed
    error,             // malformed input; see error_reason()
  };
  struct result {
    std::size_t consumed = 0;
    event what = event::need_more;
  };

  explicit parser(kind k);
  ~parser();
  parser(const parser&) = delete;
  parser& operator=(const parser&) = delete;

  // Parses as much of `data` as belongs to the current phase. Call again with the unconsumed rest.
  // After message_complete, the next feed() starts a new message.
  result feed(const char* data, std::size_t len);

  // Call when the peer closed its side: completes a read-until-close body (returns
  // message_complete) or reports a truncated message (error).
  event finish();

  // Limits of the messages to come: the size of a head, and of a chunked body's trailer section
  // (`max_head_bytes`; the caller checks head_bytes() against it), and the number of header or
  // trailer fields (beyond it feed() fails with too_large()).
  void set_limits(std::size_t max_head_bytes, std::size_t max_fields);

  // For responses to HEAD (and CONNECT/1xx handling by the caller): the coming response has no body
  // whatever its headers say. Set before feeding the response.
  void set_no_body(bool no_body) { no_body_ = no_body; }

  // True when the message currently being parsed is delimited by the connection closing.
  bool body_until_close() const;

  // In phase 2 of a message framed by Content-Length: the body bytes still to come (0 otherwise).
  std::uint64_t body_remaining() const;
  // Accounts for `n` (at most body_remaining()) body bytes that went around the parser, spliced
  // from socket to socket: the same as feeding them.
  result skip_body(std::uint64_t n);

  // Optional: told of the decoded data of chunked bodies (see chunked_decoder::set_sink); the
  // bytes feed() consumes are still the framing as received. For other bodies the bytes consumed
  // are the data.
  // Takes effect at once, also for a body under way.
  void set_chunked_sink(chunked_decoder::data_sink sink, void* ctx) {
    sink_ = sink;
    sink_ctx_ = ctx;
    chunk_.set_sink(sink, ctx);
  }
  // Optional: a chunked body's trailer field lines go to `*out` (see
  // chunked_decoder::set_trailer_capture). Takes effect at once, also for a body under way.
  void set_trailer_capture(std::string* out) {
    trailer_out_ = out;
    chunk_.set_trailer_capture(out);
  }

  const message_head& head() const { return head_; }
  const char* error_reason() const;
  // True when the error was a limit (too many fields, trailers too large), not bad syntax.
  bool error_too_large() const { return too_large_; }
  // True once the current message's headers are complete (phase 2).
  bool in_body() const { return in_body_; }
  // Number of head bytes seen so far in the current message (for header size limits).
  std::size_t head_bytes() const { return head_bytes_; }

  // Forgets any message in progress.
  void reset();

  // Used by the C callbacks in parser.cpp only.
  struct callbacks;
  friend struct callbacks;

 private:
  void begin_message();

  kind kind_;
  struct llhttp__internal_s* llhttp_;
  std::string storage_;  // method, url and header bytes of the current head, reused across messages
  struct span {
    std::uint32_t off = 0;
    std::uint32_t len = 0;
  };
  span method_, url_, reason_;
  std::vector<std::pair<span, span>> header_spans_;
  bool in_value_ = false;
  message_head head_;
  bool in_body_ = false;
  bool complete_ = false;
  bool no_body_ = false;
  bool last_was_lf_ = false;
  const char* failed_ = nullptr;  // set when we refuse what llhttp accepted
  bool too_large_ = false;
  std::size_t head_bytes_ = 0;
  std::size_t first_line_bytes_ = 0;  // of the current head, CR included
  bool first_line_done_ = false;
  std::size_t max_fields_ = 100;
  // Chunked bodies are decoded by chunk_, not llhttp (see chunked.h): llhttp is told the message
  // has no body and is done with it at the end of the head.
  chunked_decoder::limits chunk_limits_;
  chunked_decoder chunk_;
  bool own_chunked_ = false;
  chunked_decoder::data_sink sink_ = nullptr;
  void* sink_ctx_ = nullptr;
  std::string* trailer_out_ = nullptr;
};

// True for a method the strict parser accepts in an HTTP/1 request line (llhttp's HTTP methods; not
// PRI, which only begins the HTTP/2 preface). A request that arrived otherwise (HTTP/2) is held to
// the same list, so that what a backend gets always parses. Any thread.
bool known_method(std::string_view method);

// ASCII case-insensitive equality for header names and tokens.
bool iequals(std::string_view a, std::string_view b);

// True when `list` (a comma-separated header value) contains `token` (case-insensitive).
bool has_token(std::string_view list, std::string_view token);

// `s` without leading and trailing SP and HTAB (optional whitespace, RFC 9110 section 5.6.3).
std::string_view trim_ows(std::string_view s);

}  // namespace spillway::http
