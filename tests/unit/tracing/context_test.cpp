// W3C Trace Context (src/tracing/context.cpp): what is a valid traceparent, and what a request
// continues or starts. The random source is a counter, so ids are predictable.

#include "tracing/context.h"

#include <gtest/gtest.h>

#include <string>

namespace spillway::tracing {
namespace {

constexpr std::string_view valid = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";

std::function<std::uint64_t()> counter(std::uint64_t start = 1) {
  return [n = start]() mutable { return n++; };
}

TEST(tracing_context, the_spec_example_parses) {
  context c;
  ASSERT_TRUE(parse_traceparent(valid, c));
  EXPECT_EQ(std::string(hex(c.trace).data(), 32), "0af7651916cd43dd8448eb211c80319c");
  EXPECT_EQ(std::string(hex(c.parent).data(), 16), "b7ad6b7169203331");
  EXPECT_TRUE(c.sampled);
  ASSERT_TRUE(parse_traceparent("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00", c));
  EXPECT_FALSE(c.sampled);
  ASSERT_TRUE(parse_traceparent("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-03", c));
  EXPECT_TRUE(c.sampled);  // other flag bits are ignored
}

TEST(tracing_context, invalid_values_are_refused) {
  for (std::string_view bad : {
           "",
           "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331",        // no flags
           "00-0AF7651916CD43DD8448EB211C80319C-b7ad6b7169203331-01",     // upper case
           "00-00000000000000000000000000000000-b7ad6b7169203331-01",     // zero trace id
           "00-0af7651916cd43dd8448eb211c80319c-0000000000000000-01",     // zero parent id
           "ff-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",     // version ff
           "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-xx",  // version 00 is exactly 55
           "00_0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
           "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-0g",
           "0-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
       }) {
    context c;
    EXPECT_FALSE(parse_traceparent(bad, c)) << bad;
  }
  // A later version may add fields after a dash; its first four fields are read as version 00's.
  context c;
  EXPECT_TRUE(parse_traceparent("01-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-future", c));
  EXPECT_FALSE(parse_traceparent("01-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01future", c));
}

TEST(tracing_context, a_request_continues_a_valid_trace_whatever_the_sampling) {
  auto c = begin(valid, 0, counter());
  EXPECT_TRUE(c.continued);
  EXPECT_TRUE(c.sampled);  // the caller's decision, though this instance samples 0%
  EXPECT_EQ(std::string(hex(c.parent).data(), 16), "b7ad6b7169203331");
  EXPECT_NE(std::string(hex(c.span).data(), 16), "b7ad6b7169203331");
  auto unsampled = begin("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00", 100, counter());
  EXPECT_FALSE(unsampled.sampled);  // ... and the other way round
}

TEST(tracing_context, a_new_trace_is_sampled_at_the_configured_share) {
  int sampled = 0;
  auto random = counter(0);
  for (int i = 0; i < 10000; ++i) {
    auto c = begin("", 25, random);
    EXPECT_FALSE(c.continued);
    sampled += c.sampled ? 1 : 0;
  }
  EXPECT_NEAR(sampled, 2500, 100);
  EXPECT_TRUE(begin("garbage", 100, counter()).sampled);
  EXPECT_FALSE(begin("garbage", 0, counter()).sampled);
}

TEST(tracing_context, the_next_hop_gets_the_trace_with_the_try_as_parent) {
  context c;
  ASSERT_TRUE(parse_traceparent(valid, c));
  span_id s{};
  s.fill(0xab);
  auto text = format_traceparent(c, s);
  EXPECT_EQ(std::string(text.data(), text.size()), "00-0af7651916cd43dd8448eb211c80319c-abababababababab-01");
  // Ids are never all zero, even from a source that says 0.
  auto zero_then_more = [n = 0]() mutable -> std::uint64_t { return n++ < 3 ? 0 : 7; };
  auto id = new_span(zero_then_more);
  EXPECT_NE(std::string(hex(id).data(), 16), "0000000000000000");
}

}  // namespace
}  // namespace spillway::tracing
