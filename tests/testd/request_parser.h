#pragma once

// The one place in testd that talks to llhttp. It parses requests in strict mode, stops after the
// headers and after each complete message (so the caller can act between them: answer 100 Continue,
// answer the request, leave pipelined bytes for the next one), and streams bodies into a byte count
// and a running FNV-1a digest instead of keeping them.

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include <llhttp.h>

namespace spillway::testd {

class request_parser {
 public:
  enum class event {
    need_more,         // all input consumed, the current message is not done
    headers_complete,  // headers parsed; body (if any) not yet
    message_complete,  // the whole request, body included, is parsed
    error,             // malformed, or headers beyond max_header_bytes; see too_large()
  };

  struct result {
    event what;
    std::size_t consumed;  // bytes of the input used; the rest belongs to what comes next
  };

  struct header {
    std::string_view name;
    std::string_view value;
  };

  // Request line and headers together may not exceed this; beyond it the request is an error
  // with too_large() set, so the caller can answer 431.
  static constexpr std::size_t max_header_bytes = 64 * 1024;

  request_parser();
  request_parser(const request_parser&) = delete;
  request_parser& operator=(const request_parser&) = delete;

  // Feeds bytes. Stops early at headers_complete and message_complete; call again with the
  // unconsumed rest (an empty span is fine: a request without a body completes from nothing).
  result execute(const char* data, std::size_t size);

  // True when the peer closed the connection between requests (nothing of a new one was read).
  bool idle() const { return !in_message_; }

  // Valid after headers_complete, until the next request begins.
  std::string_view method() const;
  bool is_head() const { return parser_.method == HTTP_HEAD; }
  bool is_connect() const { return parser_.method == HTTP_CONNECT; }
  std::string_view url() const { return view(url_); }
  int http_minor() const { return parser_.http_minor; }
  bool keep_alive() const { return keep_alive_; }
  bool has_body() const { return has_body_; }
  bool upgrade() const { return upgrade_; }
  std::size_t header_count() const { return headers_.size(); }
  header header_at(std::size_t index) const;
  // Value of the first header with this name (ASCII case-insensitive), or empty.
  std::string_view find_header(std::string_view name) const;

  // Turns the body digest on for the current request (off by default: most requests only count).
  void digest_body(bool on) { digest_ = on; }
  std::uint64_t body_bytes() const { return body_bytes_; }
  std::uint64_t body_fnv1a() const { return fnv_; }

  // Valid after error.
  bool too_large() const { return too_large_; }
  std::string_view error_reason() const;

 private:
  struct span {
    std::uint32_t offset = 0;
    std::uint32_t length = 0;
  };
  struct header_spans {
    span name;
    span value;
  };

  std::string_view view(span s) const { return {text_.data() + s.offset, s.length}; }
  int append(const char* at, std::size_t length);
  span close_span();

  static int on_message_begin(llhttp_t* p);
  static int on_url(llhttp_t* p, const char* at, std::size_t length);
  static int on_url_complete(llhttp_t* p);
  static int on_header_field(llhttp_t* p, const char* at, std::size_t length);
  static int on_header_field_complete(llhttp_t* p);
  static int on_header_value(llhttp_t* p, const char* at, std::size_t length);
  static int on_header_value_complete(llhttp_t* p);
  static int on_headers_complete(llhttp_t* p);
  static int on_body(llhttp_t* p, const char* at, std::size_t length);
  static int on_message_complete(llhttp_t* p);

  static const llhttp_settings_t& settings();

  llhttp_t parser_;
  // Request line and header bytes of the current request, referenced by spans so that a warm
  // connection parses without allocating.
  std::string text_;
  std::uint32_t span_start_ = 0;
  span url_;
  std::vector<header_spans> headers_;
  bool in_message_ = false;
  bool keep_alive_ = false;
  bool has_body_ = false;
  bool upgrade_ = false;
  bool digest_ = false;
  bool too_large_ = false;
  bool folded_ = false;
  // For obs-fold detection: the start of the bytes being executed, and the last byte consumed
  // before them (a header value may start exactly at a read boundary).
  const char* chunk_begin_ = nullptr;
  char previous_byte_ = 0;
  event stopped_at_ = event::need_more;
  std::uint64_t body_bytes_ = 0;
  std::uint64_t fnv_ = 0;
};

}  // namespace spillway::testd
