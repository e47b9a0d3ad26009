#include "tracing/span.h"

#include <algorithm>
#include <charconv>
#include <cstring>

namespace spillway::tracing {

namespace {

// Bytes JSON lets stand as they are in a string: printable ASCII but '"' and '\\'. Everything
// else is escaped byte by byte (\u00XX), so the output is ASCII whatever the input.
constexpr std::array<bool, 256> plain_bytes = [] {
  std::array<bool, 256> t{};
  for (int c = 0x20; c < 0x7f; ++c) {
    t[static_cast<std::size_t>(c)] = c != '"' && c != '\\';
  }
  return t;
}();

constexpr std::size_t max_escaped = 6;  // \u00XX

// Writes byte `c` escaped at `p` (room for max_escaped), returning the end.
char* escape(unsigned char c, char* p) {
  if (c == '"' || c == '\\') {
    *p++ = '\\';
    *p++ = static_cast<char>(c);
    return p;
  }
  constexpr char digits[] = "0123456789abcdef";
  const char escaped[max_escaped] = {'\\', 'u', '0', '0', digits[c >> 4], digits[c & 15]};
  std::memcpy(p, escaped, max_escaped);
  return p + max_escaped;
}

template <std::size_t N>
bool zero(const std::array<std::uint8_t, N>& id) {
  return std::all_of(id.begin(), id.end(), [](std::uint8_t b) { return b == 0; });
}

}  // namespace

void json_string(std::string& out, std::string_view s) {
  out.push_back('"');
  std::size_t run = 0;  // start of the bytes that need no escape, appended at once
  for (std::size_t i = 0; i < s.size(); ++i) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (plain_bytes[c]) {
      continue;
    }
    out.append(s.data() + run, i - run);
    char escaped[max_escaped];
    out.append(escaped, static_cast<std::size_t>(escape(c, escaped) - escaped));
    run = i + 1;
  }
  out.append(s.data() + run, s.size() - run);
  out.push_back('"');
}

void span_writer::room(std::size_t n) {
  if (static_cast<std::size_t>(buf_.data() + buf_.size() - p_) < n) {
    out_.append(buf_.data(), static_cast<std::size_t>(p_ - buf_.data()));
    p_ = buf_.data();
  }
}

void span_writer::raw(std::string_view s) {
  std::memcpy(p_, s.data(), s.size());
  p_ += s.size();
}

void span_writer::text(std::string_view s) {
  if (max_escaped * s.size() + 2 > buf_.size()) {  // too long for the buffer, whatever it holds
    room(buf_.size());
    json_string(out_, s);
    return;
  }
  room(max_escaped * s.size() + 2);
  *p_++ = '"';
  for (const char ch : s) {
    const auto c = static_cast<unsigned char>(ch);
    if (plain_bytes[c]) {
      *p_++ = ch;
    } else {
      p_ = escape(c, p_);
    }
  }
  *p_++ = '"';
}

void span_writer::number_text(std::int64_t v) {
  room(24);
  *p_++ = '"';
  p_ = std::to_chars(p_, p_ + 21, v).ptr;
  *p_++ = '"';
}

template <std::size_t N>
void span_writer::hex_text(const std::array<std::uint8_t, N>& id) {
  room(2 * N + 2);
  *p_++ = '"';
  to_hex(id.data(), N, p_);
  p_ += 2 * N;
  *p_++ = '"';
}

span_writer::span_writer(std::string& out, const trace_id& trace, const span_id& id, const span_id& parent,
                         span_kind kind, std::int64_t start_unix_ns, std::int64_t end_unix_ns, std::string_view name)
    : out_(out) {
  raw(out_.empty() ? R"({"traceId":)" : R"(,{"traceId":)");
  hex_text(trace);
  raw(R"(,"spanId":)");
  hex_text(id);
  if (!zero(parent)) {
    raw(R"(,"parentSpanId":)");
    hex_text(parent);
  }
  raw(R"(,"name":)");
  text(name);
  room(64);
  raw(kind == span_kind::server ? R"(,"kind":2,"startTimeUnixNano":)" : R"(,"kind":3,"startTimeUnixNano":)");
  number_text(start_unix_ns);
  room(64);
  raw(R"(,"endTimeUnixNano":)");
  number_text(end_unix_ns);
  room(32);
  raw(R"(,"attributes":[)");
}

void span_writer::key(std::string_view k) {
  room(k.size() + 64);
  raw(first_attr_ ? R"({"key":")" : R"(,{"key":")");
  first_attr_ = false;
  raw(k);  // a name of ours: nothing to escape
}

void span_writer::attr(std::string_view k, std::string_view value) {
  key(k);
  raw(R"(","value":{"stringValue":)");
  text(value);
  room(2);
  raw("}}");
}

void span_writer::attr(std::string_view k, std::int64_t value) {
  key(k);
  raw(R"(","value":{"intValue":)");
  number_text(value);
  room(2);
  raw("}}");
}

void span_writer::finish(bool error, std::string_view message) {
  room(64);
  if (error) {
    raw(R"(],"status":{"code":2,"message":)");
    text(message);
    room(2);
    raw("}}");
  } else {
    raw("]}");
  }
  out_.append(buf_.data(), static_cast<std::size_t>(p_ - buf_.data()));
  p_ = buf_.data();
}

std::string otlp_document_head(std::string_view service_name, std::string_view version) {
  std::string out;
  out.append(R"({"resourceSpans":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":)");
  json_string(out, service_name);
  out.append(R"(}}]},"scopeSpans":[{"scope":{"name":"spillway","version":)");
  json_string(out, version);
  out.append(R"(},"spans":[)");
  return out;
}

std::string otlp_document(std::string_view spans, std::string_view service_name, std::string_view version) {
  auto out = otlp_document_head(service_name, version);
  out.append(spans);
  out.append(otlp_document_tail);
  return out;
}

}  // namespace spillway::tracing
