#include "http/parser.h"

#include <llhttp.h>

#include <algorithm>
#include <cstring>

namespace spillway::http {

namespace {

char lower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; }

}  // namespace

std::string_view trim_ows(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) {
    s.remove_prefix(1);
  }
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) {
    s.remove_suffix(1);
  }
  return s;
}

namespace {

std::string_view trim(std::string_view s) { return trim_ows(s); }

}  // namespace

bool known_method(std::string_view method) {
  static constexpr std::string_view methods[] = {
#define SPILLWAY_METHOD(num, name, string) #string,
      HTTP_METHOD_MAP(SPILLWAY_METHOD)
#undef SPILLWAY_METHOD
  };
  if (method == "PRI") {
    return false;
  }
  for (auto m : methods) {
    if (m == method) {
      return true;
    }
  }
  return false;
}

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) {
    return false;
  }
  for (std::size_t i = 0; i < a.size(); ++i) {
    // Names mostly come in the case they are looked up in (HTTP/2's are lowercase): fold only
    // where the bytes differ.
    if (a[i] != b[i] && lower(a[i]) != lower(b[i])) {
      return false;
    }
  }
  return true;
}

bool has_token(std::string_view list, std::string_view token) {
  while (!list.empty()) {
    auto comma = list.find(',');
    auto item = trim(list.substr(0, comma));
    if (iequals(item, token)) {
      return true;
    }
    if (comma == std::string_view::npos) {
      break;
    }
    list.remove_prefix(comma + 1);
  }
  return false;
}

std::string_view message_head::find(std::string_view name) const {
  for (const auto& h : headers) {
    if (iequals(h.name, name)) {
      return h.value;
    }
  }
  return {};
}

std::size_t message_head::count(std::string_view name) const {
  std::size_t n = 0;
  for (const auto& h : headers) {
    if (iequals(h.name, name)) {
      ++n;
    }
  }
  return n;
}

// The llhttp callbacks. `data` of the llhttp struct points at the owning parser.
struct parser::callbacks {
  static parser& self(llhttp_t* p) { return *static_cast<parser*>(p->data); }

  static int on_message_begin(llhttp_t* p) {
    self(p).begin_message();
    return HPE_OK;
  }

  static void append(parser& s, span& sp, const char* at, std::size_t len) {
    if (sp.len == 0) {
      sp.off = static_cast<std::uint32_t>(s.storage_.size());
    }
    s.storage_.append(at, len);
    sp.len += static_cast<std::uint32_t>(len);
  }

  static int on_method(llhttp_t* p, const char* at, std::size_t len) {
    append(self(p), self(p).method_, at, len);
    return HPE_OK;
  }

  static int on_url(llhttp_t* p, const char* at, std::size_t len) {
    append(self(p), self(p).url_, at, len);
    return HPE_OK;
  }

  static int on_status(llhttp_t* p, const char* at, std::size_t len) {
    append(self(p), self(p).reason_, at, len);
    return HPE_OK;
  }

  static int on_header_field(llhttp_t* p, const char* at, std::size_t len) {
    auto& s = self(p);
    if (s.in_value_ || s.header_spans_.empty()) {
      if (s.header_spans_.size() >= s.max_fields_) {
        s.failed_ = "too many header fields";
        s.too_large_ = true;
        return -1;
      }
      s.header_spans_.emplace_back();
      s.in_value_ = false;
    }
    append(s, s.header_spans_.back().first, at, len);
    return HPE_OK;
  }

  static int on_header_value(llhttp_t* p, const char* at, std::size_t len) {
    auto& s = self(p);
    s.in_value_ = true;
    append(s, s.header_spans_.back().second, at, len);
    return HPE_OK;
  }

  static int on_header_value_complete(llhttp_t* p) {
    // A header with an empty value never calls on_header_value; mark it so the next field starts
    // a new header.
    self(p).in_value_ = true;
    return HPE_OK;
  }

  static int on_headers_complete(llhttp_t* p) {
    auto& s = self(p);
    auto& h = s.head_;
    const char* base = s.storage_.data();
    h.method = std::string_view(base + s.method_.off, s.method_.len);
    h.url = std::string_view(base + s.url_.off, s.url_.len);
    h.reason = std::string_view(base + s.reason_.off, s.reason_.len);
    h.headers.clear();
    for (const auto& [name, value] : s.header_spans_) {
      if (name.len == 0) {
        // llhttp takes ": value" as a field with an empty name; no recipient can agree on it.
        s.failed_ = "empty header field name";
        return -1;
      }
      h.headers.push_back(
          {std::string_view(base + name.off, name.len), trim(std::string_view(base + value.off, value.len))});
    }
    h.status = p->status_code;
    h.version_major = p->http_major;
    h.version_minor = p->http_minor;
    h.chunked = (p->flags & F_CHUNKED) != 0;
    h.has_content_length = (p->flags & F_CONTENT_LENGTH) != 0;
    h.content_length = h.has_content_length ? p->content_length : 0;
    h.upgrade = p->upgrade != 0;
    if (h.version_major != 1 || h.version_minor > 1) {
      s.failed_ = "unsupported HTTP version";  // llhttp takes HTTP/2.0 and HTTP/0.9 heads
      return -1;
    }
    if (s.kind_ == kind::request && s.first_line_bytes_ != h.method.size() + h.url.size() + 11) {
      // "METHOD SP target SP HTTP/1.1 CR": llhttp lets extra spaces between the parts pass.
      s.failed_ = "malformed request line";
      return -1;
    }
    if (s.kind_ == kind::response) {
      // "HTTP/1.1 SP 3DIGIT SP reason CR" (or no SP and no reason, as many servers send); llhttp
      // takes two-digit codes, codes out of 100..599 and CTLs in the reason.
      const auto line = s.first_line_bytes_ - 1;
      const bool shape = (line == 12 && h.reason.empty()) || line == 13 + h.reason.size();
      const bool chars = std::all_of(h.reason.begin(), h.reason.end(), [](char c) {
        const auto u = static_cast<unsigned char>(c);
        return u == '\t' || (u >= 0x20 && u != 0x7f);
      });
      if (h.status < 100 || h.status > 599 || !shape || !chars) {
        s.failed_ = "malformed status line";
        return -1;
      }
    }
    // 1xx, 204 and 304 responses never have a body, whatever length they claim (RFC 9112 6.3);
    // llhttp knows only some of them.
    const bool bodiless = s.no_body_ || (s.kind_ == kind::response &&
                                         ((h.status >= 100 && h.status < 200) || h.status == 204 || h.status == 304));
    if (h.chunked && !bodiless) {
      if (h.upgrade) {
        s.failed_ = "upgrade with a chunked body";
        return -1;
      }
      // The body is chunk_'s: llhttp ends the message at the head (see feed()).
      s.own_chunked_ = true;
      s.chunk_.reset(s.chunk_limits_);
      s.chunk_.set_sink(s.sink_, s.sink_ctx_);
      s.chunk_.set_trailer_capture(s.trailer_out_);
      p->flags |= F_SKIPBODY;
    }
    if (bodiless) {
      p->flags |= F_SKIPBODY;
    }
    h.keep_alive = llhttp_should_keep_alive(p) != 0;
    s.in_body_ = true;
    // Pause so that feed() returns exactly at the end of the head.
    return HPE_PAUSED;
  }

  static int on_message_complete(llhttp_t* p) {
    auto& s = self(p);
    if (s.own_chunked_) {
      // llhttp's end of a message whose chunked body chunk_ decodes: not the message's end.
      return HPE_PAUSED;
    }
    s.complete_ = true;
    // keep_alive may only be known for sure now (e.g. a response read until close).
    s.head_.keep_alive = s.head_.keep_alive && llhttp_should_keep_alive(p) != 0;
    return HPE_PAUSED;
  }

  static const llhttp_settings_t& settings() {
    static const llhttp_settings_t value = [] {
      llhttp_settings_t st;
      llhttp_settings_init(&st);
      st.on_message_begin = on_message_begin;
      st.on_method = on_method;
      st.on_url = on_url;
      st.on_status = on_status;
      st.on_header_field = on_header_field;
      st.on_header_value = on_header_value;
      st.on_header_value_complete = on_header_value_complete;
      st.on_headers_complete = on_headers_complete;
      st.on_message_complete = on_message_complete;
      return st;
    }();
    return value;
  }
};

parser::parser(kind k) : kind_(k), llhttp_(new llhttp_t) {
  llhttp_init(llhttp_, k == kind::request ? HTTP_REQUEST : HTTP_RESPONSE, &callbacks::settings());
  llhttp_->data = this;
}

parser::~parser() { delete llhttp_; }

void parser::begin_message() {
  if (storage_.capacity() < 1024) {
    // Room for a typical head, taken at the first message rather than at construction (an HTTP/2
    // stream's state never uses its request parser); bigger heads grow it once, and the parser
    // is reused (its owner is recycled across connections), so growth is paid rarely. Kept small
    // because every connection with a request under way holds two parsers.
    storage_.reserve(1024);
    header_spans_.reserve(16);
    head_.headers.reserve(16);
  }
  storage_.clear();
  method_ = {};
  url_ = {};
  reason_ = {};
  header_spans_.clear();
  in_value_ = false;
  auto headers = std::move(head_.headers);
  headers.clear();
  head_ = message_head{};
  head_.headers = std::move(headers);
  in_body_ = false;
  complete_ = false;
  head_bytes_ = 0;
  last_was_lf_ = false;
  own_chunked_ = false;
}

void parser::set_limits(std::size_t max_head_bytes, std::size_t max_fields) {
  max_fields_ = max_fields;
  chunk_limits_.max_trailer_bytes = max_head_bytes;
  chunk_limits_.max_trailer_fields = max_fields;
}

void parser::reset() {
  llhttp_reset(llhttp_);
  failed_ = nullptr;
  too_large_ = false;
  own_chunked_ = false;
  first_line_bytes_ = 0;
  first_line_done_ = false;
  last_was_lf_ = false;
  in_body_ = false;
  complete_ = false;
  head_bytes_ = 0;
}

bool parser::body_until_close() const { return in_body_ && !own_chunked_ && llhttp_message_needs_eof(llhttp_) != 0; }

std::uint64_t parser::body_remaining() const {
  if (!in_body_ || complete_ || own_chunked_ || failed_ != nullptr || !head_.has_content_length || head_.upgrade ||
      llhttp_message_needs_eof(llhttp_) != 0) {
    return 0;
  }
  // A response to HEAD, and 1xx, 204 and 304 responses, have no body whatever length they claim.
  if (no_body_ || (kind_ == kind::response && (head_.status < 200 || head_.status == 204 || head_.status == 304))) {
    return 0;
  }
  return llhttp_->content_length;
}

parser::result parser::skip_body(std::uint64_t n) {
  // llhttp counts a Content-Length body down without reading it (no on_body callback is set), so
  // zeros stand in for the bytes that were spliced.
  static const char zeros[16384] = {};
  result total;
  while (n > 0) {
    const auto step = static_cast<std::size_t>(std::min<std::uint64_t>(n, sizeof zeros));
    auto r = feed(zeros, step);
    total.consumed += r.consumed;
    total.what = r.what;
    if (r.what != event::need_more || r.consumed != step) {
      break;
    }
    n -= step;
  }
  return total;
}

const char* parser::error_reason() const {
  if (failed_ != nullptr) {
    return failed_;
  }
  const char* r = llhttp_get_error_reason(llhttp_);
  return r != nullptr ? r : "malformed message";
}

parser::result parser::feed(const char* data, std::size_t len) {
  // Long on purpose: llhttp's pause points (head complete, message complete), the chunked body
  // handed to our own decoder and the error mapping all meet here, in the order llhttp reports them.
  if (complete_) {
    // The previous message ended at a pause; what follows belongs to the next one.
    complete_ = false;
    in_body_ = false;
    head_bytes_ = 0;
    first_line_bytes_ = 0;
    first_line_done_ = false;
  }
  if (failed_ != nullptr) {
    return {0, event::error};
  }
  if (in_body_ && own_chunked_) {
    auto r = chunk_.feed(data, len);
    if (r.what == chunked_decoder::status::error) {
      failed_ = chunk_.error();
      too_large_ = chunk_.too_large();
      return {0, event::error};
    }
    if (r.what == chunked_decoder::status::done) {
      complete_ = true;
      own_chunked_ = false;
      return {r.consumed, event::message_complete};
    }
    return {r.consumed, event::need_more};
  }
  const bool was_in_body = in_body_;
  if (!in_body_ && !first_line_done_) {
    // The start line's length, measured before llhttp reads it (on_headers_complete checks it).
    // Everything up to the first LF of a head belongs to its start line.
    // An empty line (CRLF) before it is skipped, as RFC 9112 2.2 asks and llhttp does (a one-byte
    // line that llhttp accepts can only be a CR).
    const char* p = data;
    std::size_t left = len;
    while (left > 0) {
      const auto* lf = static_cast<const char*>(std::memchr(p, '\n', left));
      if (lf == nullptr) {
        first_line_bytes_ += left;
        break;
      }
      const auto n = static_cast<std::size_t>(lf - p);
      if (first_line_bytes_ + n == 1) {
        first_line_bytes_ = 0;
        left -= n + 1;
        p = lf + 1;
        continue;
      }
      first_line_bytes_ += n;
      first_line_done_ = true;
      break;
    }
  }
  auto err = llhttp_execute(llhttp_, data, len);
  if (err == HPE_PAUSED_UPGRADE && !complete_ && !in_body_ && llhttp_get_error_pos(llhttp_) == data) {
    // The pause that follows an Upgrade request's end, hit at the start of the next call: the
    // caller did not take the upgrade, so parse on as HTTP.
    llhttp_resume_after_upgrade(llhttp_);
    err = llhttp_execute(llhttp_, data, len);
  }
  std::size_t consumed = len;
  if (err == HPE_PAUSED || err == HPE_PAUSED_UPGRADE) {
    consumed = static_cast<std::size_t>(llhttp_get_error_pos(llhttp_) - data);
    if (err == HPE_PAUSED) {
      llhttp_resume(llhttp_);
    } else {
      llhttp_resume_after_upgrade(llhttp_);
    }
  } else if (err != HPE_OK) {
    return {0, event::error};
  }
  if (own_chunked_ && in_body_ && !was_in_body) {
    // llhttp was told the message has no body: let it end its message now (it pauses in
    // on_message_complete without consuming anything), so that it starts afresh after the body.
    auto done = llhttp_execute(llhttp_, data + consumed, 0);
    if (done == HPE_PAUSED) {
      llhttp_resume(llhttp_);
    } else if (done != HPE_OK) {
      failed_ = "chunked message not ended";
      return {0, event::error};
    }
  }
  if (!was_in_body) {
    // Until the head ends (where on_headers_complete pauses), everything consumed is head.
    head_bytes_ += consumed;
    // llhttp still accepts obs-fold (a header continued on a line that starts with SP or HTAB).
    // It is deprecated and a known smuggling vector (RFC 9112 section 5.2), so it is refused here,
    // looking across feed() boundaries through `last_was_lf_`.
    for (std::size_t i = 0; i < consumed; ++i) {
      char c = data[i];
      if (last_was_lf_ && (c == ' ' || c == '\t')) {
        failed_ = "obsolete line folding in header";
        return {0, event::error};
      }
      last_was_lf_ = c == '\n';
    }
  }
  if (complete_) {
    return {consumed, event::message_complete};
  }
  if (in_body_ && !was_in_body) {
    return {consumed, event::headers_complete};
  }
  return {consumed, event::need_more};
}

parser::event parser::finish() {
  auto err = llhttp_finish(llhttp_);
  if (err == HPE_OK || err == HPE_PAUSED) {
    return complete_ ? event::message_complete : event::error;
  }
  return event::error;
}

}  // namespace spillway::http
