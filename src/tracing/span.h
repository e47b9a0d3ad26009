#pragma once
// A finished span as the exporter sends it (OTLP's Span, the fields Spillway fills).

#include "tracing/context.h"

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace spillway::tracing {

struct attribute {
  std::string_view key;  // a string literal
  std::string text;      // when !is_int
  std::int64_t number = 0;
  bool is_int = false;
};

struct span {
  enum class kind { server = 2, client = 3 };  // OTLP SpanKind values
  trace_id trace{};
  span_id id{};
  span_id parent{};  // all zero: a root span
  std::string name;
  kind type = kind::server;
  std::int64_t start_unix_ns = 0;
  std::int64_t end_unix_ns = 0;
  bool error = false;  // OTLP status code 2 (ERROR), else unset
  std::string status_message;
  std::vector<attribute> attributes;

  void add(std::string_view key, std::string_view value) { attributes.push_back({key, std::string(value), 0, false}); }
  void add(std::string_view key, std::int64_t value) { attributes.push_back({key, {}, value, true}); }
};

// The OTLP/HTTP JSON body (ExportTraceServiceRequest) for `spans` of one service.
std::string otlp_json(const std::vector<span>& spans, std::string_view service_name, std::string_view version);

}  // namespace spillway::tracing
