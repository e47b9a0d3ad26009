// The OTLP/HTTP JSON of spans (src/tracing/span.cpp), read back with Boost.JSON.

#include "tracing/span.h"

#include <gtest/gtest.h>

#include <boost/json.hpp>

namespace spillway::tracing {
namespace {

TEST(tracing_span, otlp_json_has_the_ids_in_hex_times_as_strings_and_escaped_text) {
  span s;
  s.trace.fill(0x0a);
  s.id.fill(0xb7);
  s.name = "GET \"app\"\n";
  s.type = span::kind::client;
  s.start_unix_ns = 1700000000000000001;
  s.end_unix_ns = 1700000000000000002;
  s.add("spillway.backend", std::string_view("10.0.0.1:80"));
  s.add("http.response.status_code", std::int64_t{503});
  s.error = true;
  s.status_message = "status 503";
  span root = s;
  root.parent = {};
  s.parent.fill(0x01);
  const auto text = otlp_json({s, root}, "edge\x01", "0.1.0");
  boost::json::value doc;
  ASSERT_NO_THROW(doc = boost::json::parse(text)) << text;
  const auto& rs = doc.at("resourceSpans").at(0);
  EXPECT_EQ(rs.at("resource").at("attributes").at(0).at("value").at("stringValue").as_string(), "edge\x01");
  const auto& spans = rs.at("scopeSpans").at(0).at("spans").as_array();
  ASSERT_EQ(spans.size(), 2u);
  const auto& j = spans[0];
  EXPECT_EQ(j.at("traceId").as_string(), "0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a");
  EXPECT_EQ(j.at("spanId").as_string(), "b7b7b7b7b7b7b7b7");
  EXPECT_EQ(j.at("parentSpanId").as_string(), "0101010101010101");
  EXPECT_EQ(j.at("name").as_string(), "GET \"app\"\n");
  EXPECT_EQ(j.at("kind").as_int64(), 3);
  EXPECT_EQ(j.at("startTimeUnixNano").as_string(), "1700000000000000001");
  EXPECT_EQ(j.at("attributes").at(1).at("value").at("intValue").as_string(), "503");
  EXPECT_EQ(j.at("status").at("code").as_int64(), 2);
  EXPECT_FALSE(spans[1].as_object().contains("parentSpanId"));  // a root span has none
}

}  // namespace
}  // namespace spillway::tracing
