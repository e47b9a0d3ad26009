#include "tracing/span.h"

#include <algorithm>
#include <array>
#include <charconv>

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

// `"` + the id in hex + `"`, appended at once.
template <std::size_t N>
void json_hex(std::string& out, const std::array<std::uint8_t, N>& id) {
  std::array<char, 2 * N + 2> text;
  text.front() = '"';
  to_hex(id.data(), N, text.data() + 1);
  text.back() = '"';
  out.append(text.data(), text.size());
}

// A 64-bit integer as a JSON string (OTLP's mapping of int64/fixed64).
void json_int_string(std::string& out, std::int64_t v) {
  std::array<char, 24> text;
  text[0] = '"';
  auto end = std::to_chars(text.data() + 1, text.data() + text.size() - 1, v).ptr;
  *end++ = '"';
  out.append(text.data(), static_cast<std::size_t>(end - text.data()));
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
    if (c == '"' || c == '\\') {
      const char escaped[2] = {'\\', static_cast<char>(c)};
      out.append(escaped, 2);
    } else {
      constexpr char digits[] = "0123456789abcdef";
      const char escaped[6] = {'\\', 'u', '0', '0', digits[c >> 4], digits[c & 15]};
      out.append(escaped, 6);
    }
    run = i + 1;
  }
  out.append(s.data() + run, s.size() - run);
  out.push_back('"');
}

span_writer::span_writer(std::string& out, const trace_id& trace, const span_id& id, const span_id& parent,
                         span_kind kind, std::int64_t start_unix_ns, std::int64_t end_unix_ns, std::string_view name)
    : out_(out) {
  out_.append(out_.empty() ? R"({"traceId":)" : R"(,{"traceId":)");
  json_hex(out_, trace);
  out_.append(R"(,"spanId":)");
  json_hex(out_, id);
  if (!zero(parent)) {
    out_.append(R"(,"parentSpanId":)");
    json_hex(out_, parent);
  }
  out_.append(R"(,"name":)");
  json_string(out_, name);
  out_.append(kind == span_kind::server ? R"(,"kind":2,"startTimeUnixNano":)" : R"(,"kind":3,"startTimeUnixNano":)");
  json_int_string(out_, start_unix_ns);
  out_.append(R"(,"endTimeUnixNano":)");
  json_int_string(out_, end_unix_ns);
  out_.append(R"(,"attributes":[)");
}

void span_writer::key(std::string_view k) {
  out_.append(first_attr_ ? R"({"key":")" : R"(,{"key":")");
  first_attr_ = false;
  out_.append(k);  // a name of ours: nothing to escape
}

void span_writer::attr(std::string_view k, std::string_view value) {
  key(k);
  out_.append(R"(","value":{"stringValue":)");
  json_string(out_, value);
  out_.append("}}");
}

void span_writer::attr(std::string_view k, std::int64_t value) {
  key(k);
  out_.append(R"(","value":{"intValue":)");
  json_int_string(out_, value);
  out_.append("}}");
}

void span_writer::finish(bool error, std::string_view message) {
  if (error) {
    out_.append(R"(],"status":{"code":2,"message":)");
    json_string(out_, message);
    out_.append("}}");
  } else {
    out_.append("]}");
  }
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
