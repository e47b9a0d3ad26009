// Spans recorded and written as OTLP/HTTP JSON (src/tracing/span.cpp), read back with Boost.JSON.

#include "tracing/span.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <string>
#include <vector>

#include <boost/json.hpp>

namespace spillway::tracing {
namespace {

TEST(tracing_span, otlp_json_has_the_ids_in_hex_times_as_strings_and_escaped_text) {
  trace_id trace{};
  trace.fill(0x0a);
  span_id id{};
  id.fill(0xb7);
  span_id parent{};
  parent.fill(0x01);
  std::string spans;
  {
    span_writer w(spans, trace, id, parent, span_kind::client, 1700000000000000001, 1700000000000000002,
                  "GET \"app\"\n\xff");
    w.attr(attribute::backend, std::string_view("10.0.0.1:80"));
    w.attr(attribute::status_code, std::int64_t{503});
    w.finish(true, "status 503");
  }
  {
    span_writer w(spans, trace, parent, span_id{}, span_kind::server, 1, 2, "root");
    w.finish(false, {});
  }
  std::string json;
  EXPECT_EQ(spans_json(spans, json), 2u);
  const auto text = otlp_document(json, "edge\x01", "0.1.0");
  boost::json::value doc;
  ASSERT_NO_THROW(doc = boost::json::parse(text)) << text;
  const auto& rs = doc.at("resourceSpans").at(0);
  EXPECT_EQ(rs.at("resource").at("attributes").at(0).at("value").at("stringValue").as_string(), "edge\x01");
  const auto& list = rs.at("scopeSpans").at(0).at("spans").as_array();
  ASSERT_EQ(list.size(), 2u);
  const auto& j = list[0];
  EXPECT_EQ(j.at("traceId").as_string(), "0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a");
  EXPECT_EQ(j.at("spanId").as_string(), "b7b7b7b7b7b7b7b7");
  EXPECT_EQ(j.at("parentSpanId").as_string(), "0101010101010101");
  EXPECT_EQ(j.at("name").as_string(), "GET \"app\"\n\u00ff");  // a byte outside ASCII is escaped as itself
  EXPECT_EQ(j.at("kind").as_int64(), 3);
  EXPECT_EQ(j.at("startTimeUnixNano").as_string(), "1700000000000000001");
  EXPECT_EQ(j.at("attributes").at(0).at("key").as_string(), "spillway.backend");
  EXPECT_EQ(j.at("attributes").at(0).at("value").at("stringValue").as_string(), "10.0.0.1:80");
  EXPECT_EQ(j.at("attributes").at(1).at("key").as_string(), "http.response.status_code");
  EXPECT_EQ(j.at("attributes").at(1).at("value").at("intValue").as_string(), "503");
  EXPECT_EQ(j.at("status").at("code").as_int64(), 2);
  EXPECT_EQ(j.at("status").at("message").as_string(), "status 503");
  EXPECT_FALSE(list[1].as_object().contains("parentSpanId"));  // a root span has none
  EXPECT_FALSE(list[1].as_object().contains("status"));
  EXPECT_TRUE(list[1].at("attributes").as_array().empty());
}

TEST(tracing_span, text_longer_than_the_writers_stack_buffer_comes_out_whole_and_in_order) {
  std::string path(3000, 'a');
  path[10] = '"';
  path[2999] = '\x01';
  const std::string name(400, '\n');  // each byte escaped to six: more than the stack buffer
  trace_id trace{};
  trace.fill(1);
  span_id id{};
  id.fill(2);
  std::string spans;
  for (int i = 0; i < 2; ++i) {
    span_writer w(spans, trace, id, span_id{}, span_kind::server, 1, 2, name);
    for (int a = 0; a < 40; ++a) {  // many short ones: the buffer fills and moves on
      w.attr(attribute::try_number, std::int64_t{a});
    }
    w.attr(attribute::url_path, path);
    w.attr(attribute::reason, std::string_view("x"));
    w.finish(true, path);
  }
  std::string json;
  EXPECT_EQ(spans_json(spans, json), 2u);
  boost::json::value doc;
  ASSERT_NO_THROW(doc = boost::json::parse(otlp_document(json, "s", "v")));
  const auto& list = doc.at("resourceSpans").at(0).at("scopeSpans").at(0).at("spans").as_array();
  ASSERT_EQ(list.size(), 2u);
  for (const auto& j : list) {
    EXPECT_EQ(j.at("name").as_string(), name);
    const auto& attrs = j.at("attributes").as_array();
    ASSERT_EQ(attrs.size(), 42u);
    EXPECT_EQ(attrs[39].at("value").at("intValue").as_string(), "39");
    EXPECT_EQ(attrs[40].at("value").at("stringValue").as_string(), path);
    EXPECT_EQ(attrs[41].at("key").as_string(), "spillway.reason");
    EXPECT_EQ(j.at("status").at("message").as_string(), path);
  }
}

TEST(tracing_span, every_attribute_has_its_open_telemetry_or_spillway_name) {
  const std::vector<std::string_view> names = {"http.request.method", "url.path",        "http.response.status_code",
                                               "spillway.listener",   "spillway.route",  "spillway.upstream",
                                               "spillway.request_id", "spillway.reason", "spillway.try",
                                               "spillway.backend",    "error.type",      "spillway.retry_reason"};
  ASSERT_EQ(names.size(), static_cast<std::size_t>(attribute::count_));
  for (std::size_t i = 0; i < names.size(); ++i) {
    EXPECT_EQ(name_of(static_cast<attribute>(i)), names[i]);
  }
}

TEST(tracing_span, records_cut_short_give_the_whole_spans_before_the_cut_and_json_that_parses) {
  trace_id trace{};
  trace.fill(3);
  span_id id{};
  id.fill(4);
  std::string records;
  std::vector<std::size_t> ends;  // where each span's record ends
  for (int i = 0; i < 3; ++i) {
    span_writer w(records, trace, id, span_id{}, span_kind::server, 1, 2, "name");
    w.attr(attribute::url_path, std::string_view("/p"));
    w.attr(attribute::status_code, std::int64_t{200 + i});
    w.finish(i == 2, "bad");
    ends.push_back(records.size());
  }
  for (std::size_t cut = 0; cut <= records.size(); ++cut) {
    std::string json;
    const auto n = spans_json(std::string_view(records).substr(0, cut), json);
    const auto whole =
        static_cast<std::size_t>(std::count_if(ends.begin(), ends.end(), [&](auto e) { return e <= cut; }));
    // A cut inside a span's attributes still closes that span (so the document stays valid JSON).
    EXPECT_GE(n, whole) << cut;
    EXPECT_LE(n, whole + 1) << cut;
    boost::json::value doc;
    ASSERT_NO_THROW(doc = boost::json::parse(otlp_document(json, "s", "v"))) << cut << ": " << json;
    const auto& list = doc.at("resourceSpans").at(0).at("scopeSpans").at(0).at("spans").as_array();
    EXPECT_EQ(list.size(), n);
    for (std::size_t i = 0; i < whole; ++i) {
      EXPECT_EQ(list[i].at("attributes").at(1).at("value").at("intValue").as_string(), std::to_string(200 + i));
    }
  }
}

}  // namespace
}  // namespace spillway::tracing
