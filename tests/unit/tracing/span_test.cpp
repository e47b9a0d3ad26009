// Spans as OTLP/HTTP JSON (src/tracing/span.cpp), read back with Boost.JSON.

#include "tracing/span.h"

#include <gtest/gtest.h>

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
    w.attr("spillway.backend", std::string_view("10.0.0.1:80"));
    w.attr("http.response.status_code", std::int64_t{503});
    w.finish(true, "status 503");
  }
  {
    span_writer w(spans, trace, parent, span_id{}, span_kind::server, 1, 2, "root");
    w.finish(false, {});
  }
  const auto text = otlp_document(spans, "edge\x01", "0.1.0");
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
  EXPECT_EQ(j.at("attributes").at(0).at("value").at("stringValue").as_string(), "10.0.0.1:80");
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
      w.attr("spillway.short", std::int64_t{a});
    }
    w.attr("url.path", path);
    w.attr("spillway.after", std::string_view("x"));
    w.finish(true, path);
  }
  boost::json::value doc;
  ASSERT_NO_THROW(doc = boost::json::parse(otlp_document(spans, "s", "v")));
  const auto& list = doc.at("resourceSpans").at(0).at("scopeSpans").at(0).at("spans").as_array();
  ASSERT_EQ(list.size(), 2u);
  for (const auto& j : list) {
    EXPECT_EQ(j.at("name").as_string(), name);
    const auto& attrs = j.at("attributes").as_array();
    ASSERT_EQ(attrs.size(), 42u);
    EXPECT_EQ(attrs[39].at("value").at("intValue").as_string(), "39");
    EXPECT_EQ(attrs[40].at("value").at("stringValue").as_string(), path);
    EXPECT_EQ(attrs[41].at("key").as_string(), "spillway.after");
    EXPECT_EQ(j.at("status").at("message").as_string(), path);
  }
}

}  // namespace
}  // namespace spillway::tracing
