#include "request_parser.h"

#include "http/parser.h"

namespace spillway::testd {

namespace {

constexpr std::uint64_t fnv_offset = 0xcbf29ce484222325ULL;
constexpr std::uint64_t fnv_prime = 0x100000001b3ULL;

request_parser& self(llhttp_t* p) { return *static_cast<request_parser*>(p->data); }

}  // namespace

const llhttp_settings_t& request_parser::settings() {
  // Built once; llhttp keeps a pointer to it for the parser's lifetime.
  static const llhttp_settings_t built = [] {
    llhttp_settings_t s;
    llhttp_settings_init(&s);
    s.on_message_begin = &request_parser::on_message_begin;
    s.on_url = &request_parser::on_url;
    s.on_url_complete = &request_parser::on_url_complete;
    s.on_header_field = &request_parser::on_header_field;
    s.on_header_field_complete = &request_parser::on_header_field_complete;
    s.on_header_value = &request_parser::on_header_value;
    s.on_header_value_complete = &request_parser::on_header_value_complete;
    s.on_headers_complete = &request_parser::on_headers_complete;
    s.on_body = &request_parser::on_body;
    s.on_message_complete = &request_parser::on_message_complete;
    return s;
  }();
  return built;
}

request_parser::request_parser() {
  llhttp_init(&parser_, HTTP_REQUEST, &settings());
  parser_.data = this;
  text_.reserve(1024);
  headers_.reserve(32);
}

request_parser::result request_parser::execute(const char* data, std::size_t size) {
  stopped_at_ = event::need_more;
  chunk_begin_ = data;
  llhttp_errno_t err = llhttp_execute(&parser_, data, size);
  if (err == HPE_OK) {
    if (size > 0) {
      previous_byte_ = data[size - 1];
    }
    return {event::need_more, size};
  }
  if (err == HPE_PAUSED) {
    // Our own pause from on_headers_complete / on_message_complete: resume so that the next call
    // continues right where this one stopped.
    auto consumed = static_cast<std::size_t>(llhttp_get_error_pos(&parser_) - data);
    if (consumed > 0) {
      previous_byte_ = data[consumed - 1];
    }
    llhttp_resume(&parser_);
    return {stopped_at_, consumed};
  }
  // Everything else, HPE_PAUSED_UPGRADE included (the caller stops parsing after an upgraded
  // request's message_complete, so seeing it means misuse), is an error that sticks until the
  // connection is gone: strict parsing never resynchronises on a broken stream.
  return {event::error, 0};
}

std::string_view request_parser::method() const {
  return llhttp_method_name(static_cast<llhttp_method_t>(parser_.method));
}

request_parser::header request_parser::header_at(std::size_t index) const {
  return {view(headers_[index].name), view(headers_[index].value)};
}

std::string_view request_parser::find_header(std::string_view name) const {
  for (const auto& h : headers_) {
    if (spillway::http::iequals(view(h.name), name)) {
      return view(h.value);
    }
  }
  return {};
}

std::string_view request_parser::error_reason() const {
  if (too_large_) {
    return "request headers too large";
  }
  if (folded_) {
    return "obsolete line folding in a header value";
  }
  const char* reason = llhttp_get_error_reason(&parser_);
  return reason != nullptr ? reason : "malformed request";
}

int request_parser::append(const char* at, std::size_t length) {
  if (text_.size() + length > max_header_bytes) {
    too_large_ = true;
    return HPE_USER;
  }
  text_.append(at, length);
  return HPE_OK;
}

request_parser::span request_parser::close_span() {
  auto end = static_cast<std::uint32_t>(text_.size());
  span s{span_start_, end - span_start_};
  span_start_ = end;
  return s;
}

int request_parser::on_message_begin(llhttp_t* p) {
  auto& r = self(p);
  r.in_message_ = true;
  r.text_.clear();
  r.span_start_ = 0;
  r.url_ = {};
  r.headers_.clear();
  r.keep_alive_ = false;
  r.has_body_ = false;
  r.upgrade_ = false;
  r.digest_ = false;
  r.body_bytes_ = 0;
  r.fnv_ = fnv_offset;
  return HPE_OK;
}

int request_parser::on_url(llhttp_t* p, const char* at, std::size_t length) { return self(p).append(at, length); }

int request_parser::on_url_complete(llhttp_t* p) {
  auto& r = self(p);
  r.url_ = r.close_span();
  return HPE_OK;
}

int request_parser::on_header_field(llhttp_t* p, const char* at, std::size_t length) {
  return self(p).append(at, length);
}

int request_parser::on_header_field_complete(llhttp_t* p) {
  auto& r = self(p);
  r.headers_.push_back({r.close_span(), {}});
  return HPE_OK;
}

int request_parser::on_header_value(llhttp_t* p, const char* at, std::size_t length) {
  auto& r = self(p);
  // llhttp 8 accepts obs-fold even in strict mode and resumes the value at the SP/HT right after
  // the CRLF. A value otherwise always follows ':' or whitespace, so a preceding LF means a fold,
  // which RFC 9112 section 5.2 lets a server reject with 400; a strict backend does.
  // (Empty calls are skipped: llhttp may close a value's span with one at a read boundary.)
  char before = at > r.chunk_begin_ ? at[-1] : r.previous_byte_;
  if (length > 0 && before == '\n') {
    r.folded_ = true;
    return HPE_USER;
  }
  return r.append(at, length);
}

int request_parser::on_header_value_complete(llhttp_t* p) {
  auto& r = self(p);
  // Trailing OWS is not part of the value (RFC 9110 5.5). llhttp drops it only when the value
  // ends within one read, so trim here to get the same answer however the bytes arrived.
  while (r.text_.size() > r.span_start_ && (r.text_.back() == ' ' || r.text_.back() == '\t')) {
    r.text_.pop_back();
  }
  r.headers_.back().value = r.close_span();
  return HPE_OK;
}

int request_parser::on_headers_complete(llhttp_t* p) {
  auto& r = self(p);
  // Read these now: llhttp resets its flags once the message completes.
  r.keep_alive_ = llhttp_should_keep_alive(p) != 0;
  r.has_body_ = (p->flags & F_CHUNKED) != 0 || p->content_length > 0;
  r.upgrade_ = p->upgrade != 0;
  r.stopped_at_ = event::headers_complete;
  return HPE_PAUSED;
}

int request_parser::on_body(llhttp_t* p, const char* at, std::size_t length) {
  auto& r = self(p);
  r.body_bytes_ += length;
  if (r.digest_) {
    std::uint64_t h = r.fnv_;
    for (std::size_t i = 0; i < length; ++i) {
      h ^= static_cast<unsigned char>(at[i]);
      h *= fnv_prime;
    }
    r.fnv_ = h;
  }
  return HPE_OK;
}

int request_parser::on_message_complete(llhttp_t* p) {
  auto& r = self(p);
  r.in_message_ = false;
  r.stopped_at_ = event::message_complete;
  return HPE_PAUSED;
}

}  // namespace spillway::testd
