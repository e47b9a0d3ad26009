#pragma once
// Spans as OTLP/HTTP JSON, written straight into a buffer: a worker appends each finished span's
// JSON object to its own buffer (no span objects, no allocation per attribute), and the exporter
// wraps a batch of them in one ExportTraceServiceRequest.
//
//   span_writer w(buffer, ids..., "GET app");   // {"traceId":..,"spanId":..,"name":..,...,"attributes":[
//   w.attr("http.request.method", "GET");       //   {"key":..,"value":{"stringValue":..}},
//   w.attr("http.response.status_code", 200);   //   {"key":..,"value":{"intValue":"200"}}
//   w.finish(false, {});                        // ]}   (or ],"status":{"code":2,"message":..}})
//
// Ids are hex, 64-bit integers strings (OTLP's JSON mapping); text is escaped byte by byte. A span
// is written with a pointer into a buffer on the stack and appended to `out` at once (or when the
// stack buffer is full: a long path); no formatting library, no length check per byte.

#include "tracing/context.h"

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

namespace spillway::tracing {

enum class span_kind { server = 2, client = 3 };  // OTLP SpanKind values

class span_writer {
 public:
  // Starts a span object in `out` (after a comma when `out` already holds one). `parent` all zero:
  // a root span.
  span_writer(std::string& out, const trace_id& trace, const span_id& id, const span_id& parent, span_kind kind,
              std::int64_t start_unix_ns, std::int64_t end_unix_ns, std::string_view name);
  // `key`: one of Spillway's attribute names (ASCII, nothing JSON escapes), written as it is.
  void attr(std::string_view key, std::string_view value);
  void attr(std::string_view key, std::int64_t value);
  // Ends the object (appending it to `out`); `error` sets OTLP status ERROR with `message`.
  void finish(bool error, std::string_view message);

 private:
  // Room for `n` more bytes in the stack buffer, moving what it holds to out_ when it has not.
  void room(std::size_t n);
  void raw(std::string_view s);   // room() first
  void text(std::string_view s);  // a JSON string, escaped; any length
  void number_text(std::int64_t v);
  template <std::size_t N>
  void hex_text(const std::array<std::uint8_t, N>& id);
  void key(std::string_view k);

  std::string& out_;
  bool first_attr_ = true;
  std::array<char, 2048> buf_;
  char* p_ = buf_.data();
};

// Appends `s` as a JSON string.
void json_string(std::string& out, std::string_view s);

// The OTLP/HTTP JSON body for `spans` (span objects joined by commas) of one service: the head,
// the spans, the tail (the exporter sends the three parts without joining them).
std::string otlp_document_head(std::string_view service_name, std::string_view version);
inline constexpr std::string_view otlp_document_tail = "]}]}]}";
std::string otlp_document(std::string_view spans, std::string_view service_name, std::string_view version);

}  // namespace spillway::tracing
