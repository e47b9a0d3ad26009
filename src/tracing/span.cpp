#include "tracing/span.h"

#include <fmt/format.h>

namespace spillway::tracing {

namespace {

void json_string(std::string& out, std::string_view s) {
  out.push_back('"');
  for (char ch : s) {
    const auto c = static_cast<unsigned char>(ch);
    if (c == '"' || c == '\\') {
      out.push_back('\\');
      out.push_back(ch);
    } else if (c < 0x20 || c >= 0x7f) {
      fmt::format_to(std::back_inserter(out), "\\u{:04x}", c);  // bytes, not UTF-8: escaped one by one
    } else {
      out.push_back(ch);
    }
  }
  out.push_back('"');
}

template <std::size_t N>
void json_hex(std::string& out, const std::array<std::uint8_t, N>& id) {
  out.push_back('"');
  auto h = hex(id);
  out.append(h.data(), h.size());
  out.push_back('"');
}

template <std::size_t N>
bool zero(const std::array<std::uint8_t, N>& id) {
  for (auto b : id) {
    if (b != 0) {
      return false;
    }
  }
  return true;
}

}  // namespace

std::string otlp_json(const std::vector<span>& spans, std::string_view service_name, std::string_view version) {
  std::string out;
  out.reserve(512 + spans.size() * 512);
  out.append(R"({"resourceSpans":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":)");
  json_string(out, service_name);
  out.append(R"(}}]},"scopeSpans":[{"scope":{"name":"spillway","version":)");
  json_string(out, version);
  out.append(R"(},"spans":[)");
  for (std::size_t i = 0; i < spans.size(); ++i) {
    const auto& s = spans[i];
    if (i > 0) {
      out.push_back(',');
    }
    out.append(R"({"traceId":)");
    json_hex(out, s.trace);
    out.append(R"(,"spanId":)");
    json_hex(out, s.id);
    if (!zero(s.parent)) {
      out.append(R"(,"parentSpanId":)");
      json_hex(out, s.parent);
    }
    out.append(R"(,"name":)");
    json_string(out, s.name);
    // 64-bit integers are strings in OTLP's JSON mapping.
    fmt::format_to(std::back_inserter(out),
                   R"(,"kind":{},"startTimeUnixNano":"{}","endTimeUnixNano":"{}","attributes":[)",
                   static_cast<int>(s.type), s.start_unix_ns, s.end_unix_ns);
    for (std::size_t a = 0; a < s.attributes.size(); ++a) {
      const auto& attr = s.attributes[a];
      if (a > 0) {
        out.push_back(',');
      }
      out.append(R"({"key":)");
      json_string(out, attr.key);
      if (attr.is_int) {
        fmt::format_to(std::back_inserter(out), R"(,"value":{{"intValue":"{}"}}}})", attr.number);
      } else {
        out.append(R"(,"value":{"stringValue":)");
        json_string(out, attr.text);
        out.append("}}");
      }
    }
    out.append("]");
    if (s.error) {
      out.append(R"(,"status":{"code":2,"message":)");
      json_string(out, s.status_message);
      out.append("}");
    }
    out.append("}");
  }
  out.append("]}]}]}");
  return out;
}

}  // namespace spillway::tracing
