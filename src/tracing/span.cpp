#include "tracing/span.h"

#include <fmt/format.h>

#include <algorithm>

namespace spillway::tracing {

namespace {

template <std::size_t N>
void json_hex(std::string& out, const std::array<std::uint8_t, N>& id) {
  out.push_back('"');
  const auto h = hex(id);
  out.append(h.data(), h.size());
  out.push_back('"');
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
    if (c >= 0x20 && c < 0x7f && c != '"' && c != '\\') {
      continue;
    }
    out.append(s.data() + run, i - run);
    if (c == '"' || c == '\\') {
      out.push_back('\\');
      out.push_back(static_cast<char>(c));
    } else {
      fmt::format_to(std::back_inserter(out), "\\u{:04x}", c);  // bytes, not UTF-8: escaped one by one
    }
    run = i + 1;
  }
  out.append(s.data() + run, s.size() - run);
  out.push_back('"');
}

span_writer::span_writer(std::string& out, const trace_id& trace, const span_id& id, const span_id& parent,
                         span_kind kind, std::int64_t start_unix_ns, std::int64_t end_unix_ns, std::string_view name)
    : out_(out) {
  if (!out_.empty()) {
    out_.push_back(',');
  }
  out_.append(R"({"traceId":)");
  json_hex(out_, trace);
  out_.append(R"(,"spanId":)");
  json_hex(out_, id);
  if (!zero(parent)) {
    out_.append(R"(,"parentSpanId":)");
    json_hex(out_, parent);
  }
  out_.append(R"(,"name":)");
  json_string(out_, name);
  fmt::format_to(std::back_inserter(out_),
                 R"(,"kind":{},"startTimeUnixNano":"{}","endTimeUnixNano":"{}","attributes":[)", static_cast<int>(kind),
                 start_unix_ns, end_unix_ns);
}

void span_writer::key(std::string_view k) {
  if (!first_attr_) {
    out_.push_back(',');
  }
  first_attr_ = false;
  out_.append(R"({"key":)");
  json_string(out_, k);
}

void span_writer::attr(std::string_view k, std::string_view value) {
  key(k);
  out_.append(R"(,"value":{"stringValue":)");
  json_string(out_, value);
  out_.append("}}");
}

void span_writer::attr(std::string_view k, std::int64_t value) {
  key(k);
  fmt::format_to(std::back_inserter(out_), R"(,"value":{{"intValue":"{}"}}}})", value);
}

void span_writer::finish(bool error, std::string_view message) {
  out_.push_back(']');
  if (error) {
    out_.append(R"(,"status":{"code":2,"message":)");
    json_string(out_, message);
    out_.push_back('}');
  }
  out_.push_back('}');
}

std::string otlp_document(std::string_view spans, std::string_view service_name, std::string_view version) {
  std::string out;
  out.reserve(256 + spans.size());
  out.append(R"({"resourceSpans":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":)");
  json_string(out, service_name);
  out.append(R"(}}]},"scopeSpans":[{"scope":{"name":"spillway","version":)");
  json_string(out, version);
  out.append(R"(},"spans":[)");
  out.append(spans);
  out.append("]}]}]}");
  return out;
}

}  // namespace spillway::tracing
