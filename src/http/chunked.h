#pragma once
// A strict decoder of the chunked transfer coding (RFC 9112 section 7.1), used by `parser` for
// every chunked body instead of llhttp's: llhttp 8.1 refuses valid chunk extensions (a second
// extension, BWS, quoted-pairs) yet takes a bare LF after the last chunk and obs-fold in trailers.
//
// The decoder only validates and measures: the caller forwards the bytes it consumed verbatim, so
// what reaches the next hop is exactly what was checked. It stops right after the final CRLF, so
// bytes of a pipelined next message are never consumed.
//
// Accepted, exactly as the grammar says:
//   chunk      = chunk-size [ chunk-ext ] CRLF chunk-data CRLF
//   chunk-size = 1*HEXDIG                     (at most 15 digits: < 2^60 bytes)
//   chunk-ext  = *( BWS ";" BWS name [ BWS "=" BWS ( token / quoted-string ) ] )
//   last-chunk = 1*"0" [ chunk-ext ] CRLF,  trailer-section = *( field-line CRLF ),  CRLF
// Trailer fields are held to the rules of header fields (token names, no whitespace before the
// colon, no CTL but HTAB in values, no obs-fold, CRLF only), to a size and a count limit, and may
// not carry fields that frame, route or authorise a message (RFC 9110 section 6.5.1), which a
// recipient that merges trailers into the head would otherwise act on.

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace spillway::http {

class chunked_decoder {
 public:
  struct limits {
    std::size_t max_trailer_bytes = 64 * 1024;  // the whole trailer section
    std::size_t max_trailer_fields = 100;
    std::size_t max_extension_bytes = 16 * 1024;  // chunk extensions of the whole body
  };
  enum class status {
    need_more,  // every byte given was consumed; the body goes on
    done,       // the body ended; `consumed` stops right after its final CRLF
    error,      // malformed or over a limit; see error() and too_large()
  };
  struct result {
    std::size_t consumed = 0;
    status what = status::need_more;
  };

  // Starts a new body. Any thread (the decoder is a plain value).
  void reset(const limits& l);

  // Decodes as much of `data` as belongs to the body. After `error`, every call returns error.
  result feed(const char* data, std::size_t len);

  // Optional, after reset(): told of each run of chunk data as it is decoded (a front end that
  // forwards the body without its framing, as HTTP/2 does, takes the data from here).
  using data_sink = void (*)(void* ctx, const char* data, std::size_t len);
  void set_sink(data_sink sink, void* ctx) {
    sink_ = sink;
    sink_ctx_ = ctx;
  }

  // Optional, after reset(): the trailer section's field lines (each with its CRLF) are appended to
  // `*out` as they are checked, so that a front end that drops the framing can pass them on (see
  // split_trailer_fields). Bounded by max_trailer_bytes.
  void set_trailer_capture(std::string* out) { trailer_out_ = out; }

  // Why the body was refused, once feed() returned error.
  const char* error() const { return error_; }
  // True when the refusal was a limit (trailers or extensions too large), not bad syntax.
  bool too_large() const { return too_large_; }
  // Bytes of chunk data seen so far (the decoded body size).
  std::uint64_t data_bytes() const { return data_bytes_; }
  // True when the body carried a trailer section with at least one field.
  bool has_trailers() const { return trailer_fields_ > 0; }

 private:
  enum class state : std::uint8_t {
    size_start,
    size,
    size_bws,
    ext_name_start,
    ext_name,
    ext_name_bws,
    ext_value_start,
    ext_token,
    ext_quoted,
    ext_quoted_pair,
    ext_after_quoted,
    ext_value_bws,
    size_lf,
    data,
    data_cr,
    data_lf,
    trailer_line,
    trailer_name,
    trailer_value,
    trailer_lf,
    final_lf,
    done,
    failed,
  };

  result fail(std::size_t consumed, const char* why, bool too_large = false);
  bool forbidden_trailer() const;

  limits limits_;
  state state_ = state::size_start;
  std::uint64_t size_ = 0;  // of the chunk being read, then what is left of it
  unsigned digits_ = 0;
  std::uint64_t data_bytes_ = 0;
  std::size_t ext_bytes_ = 0;
  std::size_t trailer_bytes_ = 0;
  std::size_t trailer_fields_ = 0;
  char name_[24] = {};  // the trailer field name being read, lower case, while it fits
  std::size_t name_len_ = 0;
  const char* error_ = nullptr;
  bool too_large_ = false;
  data_sink sink_ = nullptr;
  void* sink_ctx_ = nullptr;
  std::string* trailer_out_ = nullptr;
};

// True for a field a trailer section may not carry (RFC 9110 section 6.5.1: fields that frame, route,
// authorise or describe the content of a message); `lower_name` in lower case. Any thread.
bool forbidden_trailer(std::string_view lower_name);

// The fields of a trailer section captured by set_trailer_capture (checked by the decoder), appended
// to `out` as (name in lower case, value without its surrounding whitespace). Any thread.
void split_trailer_fields(std::string_view text, std::vector<std::pair<std::string, std::string>>& out);

}  // namespace spillway::http
