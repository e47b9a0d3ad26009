#include "http/chunked.h"

#include <algorithm>
#include <string_view>

namespace spillway::http {

namespace {

// tchar (RFC 9110 section 5.6.2).
bool is_tchar(unsigned char c) {
  if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) {
    return true;
  }
  switch (c) {
    case '!':
    case '#':
    case '$':
    case '%':
    case '&':
    case '\'':
    case '*':
    case '+':
    case '-':
    case '.':
    case '^':
    case '_':
    case '`':
    case '|':
    case '~':
      return true;
    default:
      return false;
  }
}

int hex_value(unsigned char c) {
  if (c >= '0' && c <= '9') {
    return c - '0';
  }
  if (c >= 'a' && c <= 'f') {
    return c - 'a' + 10;
  }
  if (c >= 'A' && c <= 'F') {
    return c - 'A' + 10;
  }
  return -1;
}

bool is_ws(unsigned char c) { return c == ' ' || c == '\t'; }

// qdtext and the second byte of a quoted-pair (RFC 9110 section 5.6.4).
bool is_qdtext(unsigned char c) { return c == '\t' || c == ' ' || c == 0x21 || (c >= 0x23 && c != 0x5c && c != 0x7f); }
bool is_pair_char(unsigned char c) { return c == '\t' || c == ' ' || (c >= 0x21 && c != 0x7f); }

// A field value byte: VCHAR, obs-text, SP or HTAB.
bool is_value_char(unsigned char c) { return c == '\t' || c == ' ' || (c >= 0x21 && c != 0x7f); }

// At most 15 hex digits: a size below 2^60, far above any real body, and no overflow to check.
constexpr unsigned max_size_digits = 15;

}  // namespace

void chunked_decoder::reset(const limits& l) {
  *this = chunked_decoder{};
  limits_ = l;
}

chunked_decoder::result chunked_decoder::fail(std::size_t consumed, const char* why, bool too_large) {
  state_ = state::failed;
  error_ = why;
  too_large_ = too_large;
  return {consumed, status::error};
}

bool forbidden_trailer(std::string_view lower_name) {
  // Fields that frame, route, authorise or describe the content of a message.
  static constexpr std::string_view names[] = {
      "content-length",
      "transfer-encoding",
      "host",
      "connection",
      "keep-alive",
      "proxy-connection",
      "te",
      "trailer",
      "upgrade",
      "expect",
      "content-type",
      "content-encoding",
      "content-range",
      "authorization",
      "proxy-authorization",
      "cookie",
      "set-cookie",
      "cache-control",
      "max-forwards",
      "range",
  };
  return std::find(std::begin(names), std::end(names), lower_name) != std::end(names);
}

bool chunked_decoder::forbidden_trailer() const {
  // A name longer than name_ is longer than any forbidden one.
  return name_len_ <= sizeof(name_) && http::forbidden_trailer(std::string_view(name_, name_len_));
}

chunked_decoder::result chunked_decoder::feed(const char* data, std::size_t len) {
  // Long on purpose: one loop over the bytes with one switch over the grammar's states (RFC 9112
  // 7.1), so the function reads as the grammar does; split up, every state would re-enter the loop.
  if (state_ == state::failed) {
    return {0, status::error};
  }
  if (state_ == state::done) {
    return {0, status::done};
  }
  std::size_t i = 0;
  while (i < len) {
    const auto c = static_cast<unsigned char>(data[i]);
    switch (state_) {
      case state::size_start:
      case state::size: {
        const int v = hex_value(c);
        if (v >= 0) {
          if (++digits_ > max_size_digits) {
            return fail(i, "chunk size too long");
          }
          size_ = size_ * 16 + static_cast<unsigned>(v);
          state_ = state::size;
        } else if (state_ == state::size_start) {
          return fail(i, "invalid chunk size");
        } else if (c == ';') {
          state_ = state::ext_name_start;
        } else if (is_ws(c)) {
          state_ = state::size_bws;
        } else if (c == '\r') {
          state_ = state::size_lf;
        } else {
          return fail(i, "invalid character after chunk size");
        }
        break;
      }
      case state::size_bws:
        // Whitespace after the size is allowed only before an extension ("5 ;a"), never alone.
        if (c == ';') {
          state_ = state::ext_name_start;
        } else if (!is_ws(c)) {
          return fail(i, "whitespace after chunk size");
        }
        break;
      case state::ext_name_start:
        if (is_tchar(c)) {
          state_ = state::ext_name;
        } else if (!is_ws(c)) {
          return fail(i, "invalid chunk extension name");
        }
        break;
      case state::ext_name:
        if (c == ';') {
          state_ = state::ext_name_start;
        } else if (c == '=') {
          state_ = state::ext_value_start;
        } else if (is_ws(c)) {
          state_ = state::ext_name_bws;
        } else if (c == '\r') {
          state_ = state::size_lf;
        } else if (!is_tchar(c)) {
          return fail(i, "invalid chunk extension name");
        }
        break;
      case state::ext_name_bws:
        if (c == ';') {
          state_ = state::ext_name_start;
        } else if (c == '=') {
          state_ = state::ext_value_start;
        } else if (!is_ws(c)) {
          return fail(i, "invalid chunk extension");
        }
        break;
      case state::ext_value_start:
        if (c == '"') {
          state_ = state::ext_quoted;
        } else if (is_tchar(c)) {
          state_ = state::ext_token;
        } else if (!is_ws(c)) {
          return fail(i, "invalid chunk extension value");
        }
        break;
      case state::ext_token:
        if (c == ';') {
          state_ = state::ext_name_start;
        } else if (is_ws(c)) {
          state_ = state::ext_value_bws;
        } else if (c == '\r') {
          state_ = state::size_lf;
        } else if (!is_tchar(c)) {
          return fail(i, "invalid chunk extension value");
        }
        break;
      case state::ext_quoted:
        if (c == '"') {
          state_ = state::ext_after_quoted;
        } else if (c == '\\') {
          state_ = state::ext_quoted_pair;
        } else if (!is_qdtext(c)) {
          return fail(i, "invalid character in quoted chunk extension");
        }
        break;
      case state::ext_quoted_pair:
        if (!is_pair_char(c)) {
          return fail(i, "invalid quoted-pair in chunk extension");
        }
        state_ = state::ext_quoted;
        break;
      case state::ext_after_quoted:
        if (c == ';') {
          state_ = state::ext_name_start;
        } else if (is_ws(c)) {
          state_ = state::ext_value_bws;
        } else if (c == '\r') {
          state_ = state::size_lf;
        } else {
          return fail(i, "invalid character after chunk extension");
        }
        break;
      case state::ext_value_bws:
        // Whitespace after a value only before another extension (BWS ";"), never before CRLF.
        if (c == ';') {
          state_ = state::ext_name_start;
        } else if (!is_ws(c)) {
          return fail(i, "whitespace at the end of a chunk line");
        }
        break;
      case state::size_lf:
        if (c != '\n') {
          return fail(i, "expected LF after chunk size");
        }
        if (size_ == 0) {
          state_ = state::trailer_line;
        } else {
          state_ = state::data;
          data_bytes_ += size_;
        }
        break;
      case state::data: {
        const auto n = static_cast<std::size_t>(std::min<std::uint64_t>(size_, len - i));
        if (sink_ != nullptr && n > 0) {
          sink_(sink_ctx_, data + i, n);
        }
        size_ -= n;
        i += n;
        if (size_ == 0) {
          state_ = state::data_cr;
        }
        continue;  // i already advanced
      }
      case state::data_cr:
        if (c != '\r') {
          return fail(i, "expected CRLF after chunk data");
        }
        state_ = state::data_lf;
        break;
      case state::data_lf:
        if (c != '\n') {
          return fail(i, "expected CRLF after chunk data");
        }
        state_ = state::size_start;
        size_ = 0;
        digits_ = 0;
        break;
      case state::trailer_line:
        if (c == '\r') {
          state_ = state::final_lf;
        } else if (is_tchar(c)) {
          if (++trailer_fields_ > limits_.max_trailer_fields) {
            return fail(i, "too many trailer fields", true);
          }
          name_len_ = 0;
          state_ = state::trailer_name;
          continue;  // the byte is the name's first
        } else if (is_ws(c)) {
          return fail(i, "obsolete line folding in trailer");
        } else {
          return fail(i, c == '\n' ? "bare LF in trailer section" : "invalid trailer field name");
        }
        break;
      case state::trailer_name:
        if (c == ':') {
          if (name_len_ == 0) {
            return fail(i, "empty trailer field name");
          }
          if (forbidden_trailer()) {
            return fail(i, "trailer field not allowed in trailers");
          }
          state_ = state::trailer_value;
        } else if (is_tchar(c)) {
          if (name_len_ < sizeof(name_)) {
            name_[name_len_] = (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : static_cast<char>(c);
          }
          ++name_len_;
        } else {
          return fail(i, "invalid trailer field name");
        }
        break;
      case state::trailer_value:
        if (c == '\r') {
          state_ = state::trailer_lf;
        } else if (!is_value_char(c)) {
          return fail(i, c == '\n' ? "bare LF in trailer section" : "invalid character in trailer value");
        }
        break;
      case state::trailer_lf:
        if (c != '\n') {
          return fail(i, "expected LF in trailer section");
        }
        if (trailer_out_ != nullptr) {
          trailer_out_->push_back(c);
        }
        state_ = state::trailer_line;
        break;
      case state::final_lf:
        if (c != '\n') {
          return fail(i, "expected LF after the last chunk");
        }
        state_ = state::done;
        return {i + 1, status::done};
      case state::done:
      case state::failed:
        return {i, status::error};  // unreachable: handled before the loop
    }
    // Bytes that are not chunk data count toward the limits of their part of the body.
    if (state_ >= state::trailer_line && state_ <= state::final_lf) {
      if (++trailer_bytes_ > limits_.max_trailer_bytes) {
        return fail(i, "trailer section too large", true);
      }
      if (trailer_out_ != nullptr && state_ >= state::trailer_name && state_ <= state::trailer_lf) {
        trailer_out_->push_back(c);  // a byte of a field line, up to its CR (its LF: trailer_lf)
      }
    } else if (state_ >= state::ext_name_start && state_ <= state::ext_value_bws) {
      if (++ext_bytes_ > limits_.max_extension_bytes) {
        return fail(i, "chunk extensions too large", true);
      }
    }
    ++i;
  }
  return {len, status::need_more};
}

void split_trailer_fields(std::string_view text, std::vector<std::pair<std::string, std::string>>& out) {
  auto trim = [](std::string_view v) {
    while (!v.empty() && (v.front() == ' ' || v.front() == '\t')) {
      v.remove_prefix(1);
    }
    while (!v.empty() && (v.back() == ' ' || v.back() == '\t')) {
      v.remove_suffix(1);
    }
    return v;
  };
  while (!text.empty()) {
    const auto eol = text.find("\r\n");
    const auto line = text.substr(0, eol);
    text.remove_prefix(eol == std::string_view::npos ? text.size() : eol + 2);
    const auto colon = line.find(':');
    if (colon == std::string_view::npos) {
      continue;  // never: the decoder checked every line
    }
    std::string name(line.substr(0, colon));
    for (auto& ch : name) {
      ch = (ch >= 'A' && ch <= 'Z') ? static_cast<char>(ch - 'A' + 'a') : ch;
    }
    out.emplace_back(std::move(name), std::string(trim(line.substr(colon + 1))));
  }
}

}  // namespace spillway::http
