#pragma once
// Spans, recorded compactly by a worker and written as OTLP/HTTP JSON by the exporter.
//
//   worker:    span_writer w(records, ids..., "GET app");  // a fixed head, the name
//              w.attr(attribute::http_method, "GET");        // one byte of key, the value as it is
//              w.attr(attribute::status_code, 200);
//              w.finish(false, {});
//   exporter:  spans_json(records, json);   // {"traceId":..,"spanId":..,..,"attributes":[..]},{..}
//
// A request's two spans are ~150 bytes as records against ~900 as JSON: the worker writes little
// (what tracing costs a request is mostly memory traffic, so bytes are what count), and the JSON is
// written in one pass over a batch on the exporter's thread, into a buffer that stays warm. Ids are
// hex in the JSON, 64-bit integers strings (OTLP's JSON mapping); text is escaped byte by byte.

#include "tracing/context.h"

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

namespace spillway::tracing {

enum class span_kind : std::uint8_t { server = 2, client = 3 };  // OTLP SpanKind values

// The attributes Spillway's spans carry (each recorded as one byte).
enum class attribute : std::uint8_t {
  http_method,   // http.request.method
  url_path,      // url.path
  status_code,   // http.response.status_code
  listener,      // spillway.listener
  route,         // spillway.route
  upstream,      // spillway.upstream
  request_id,    // spillway.request_id
  reason,        // spillway.reason
  try_number,    // spillway.try
  backend,       // spillway.backend
  error_type,    // error.type
  retry_reason,  // spillway.retry_reason
  count_,
};
std::string_view name_of(attribute a);

// Records one span at the end of `out` (a worker's buffer of records).
class span_writer {
 public:
  // `parent` all zero: a root span.
  span_writer(std::string& out, const trace_id& trace, const span_id& id, const span_id& parent, span_kind kind,
              std::int64_t start_unix_ns, std::int64_t end_unix_ns, std::string_view name);
  void attr(attribute key, std::string_view value);
  void attr(attribute key, std::int64_t value);
  // Ends the span; `error` sets OTLP status ERROR with `message`.
  void finish(bool error, std::string_view message);

 private:
  std::string& out_;
};

// Appends the spans recorded in `records` (span_writer's output, whole spans) to `out` as OTLP
// JSON span objects, joined by commas (and after one when `after_spans`: spans went before, in
// `out` or sent). Returns how many.
std::size_t spans_json(std::string_view records, std::string& out, bool after_spans = false);

// Appends `s` as a JSON string.
void json_string(std::string& out, std::string_view s);

// The OTLP/HTTP JSON body for `spans` (span objects joined by commas) of one service: the head,
// the spans, the tail (the exporter sends the three parts without joining them).
std::string otlp_document_head(std::string_view service_name, std::string_view version);
inline constexpr std::string_view otlp_document_tail = "]}]}]}";
std::string otlp_document(std::string_view spans, std::string_view service_name, std::string_view version);

}  // namespace spillway::tracing
