#include "proxy/h2_upstream.h"

#include <gtest/gtest.h>

#include <boost/asio/io_context.hpp>

#include <string>

namespace spillway::proxy {
namespace {

TEST(h2_call, head_fields_are_viewed_in_order_once_whole) {
  boost::asio::io_context io;
  h2_call c(wakeups::of(io));
  c.add_head_field("content-type", "application/grpc");
  c.add_head_field("grpc-accept-encoding", "identity,deflate,gzip");
  c.add_head_field("x-empty", "");
  c.add_head_field("x-long", std::string(1000, 'v'));  // past the room made at first
  EXPECT_EQ(c.head_fields, 4u);
  EXPECT_EQ(c.head_bytes, (12 + 16 + 4) + (20 + 21 + 4) + (7 + 4) + (6 + 1000 + 4));
  c.head_complete();
  ASSERT_EQ(c.headers.size(), 4u);
  EXPECT_EQ(c.headers[0].name, "content-type");
  EXPECT_EQ(c.headers[0].value, "application/grpc");
  EXPECT_EQ(c.headers[1].name, "grpc-accept-encoding");
  EXPECT_EQ(c.headers[1].value, "identity,deflate,gzip");
  EXPECT_EQ(c.headers[2].name, "x-empty");
  EXPECT_EQ(c.headers[2].value, "");
  EXPECT_EQ(c.headers[3].value, std::string(1000, 'v'));
  EXPECT_EQ(c.header("grpc-accept-encoding"), "identity,deflate,gzip");
  EXPECT_EQ(c.header("x-missing"), "");
}

TEST(h2_call, an_interim_head_is_forgotten) {
  boost::asio::io_context io;
  h2_call c(wakeups::of(io));
  c.add_head_field("link", "</style.css>; rel=preload");  // a 103 Early Hints head
  c.clear_head();
  EXPECT_EQ(c.head_fields, 0u);
  EXPECT_EQ(c.head_bytes, 0u);
  c.add_head_field("content-type", "text/plain");
  c.head_complete();
  ASSERT_EQ(c.headers.size(), 1u);
  EXPECT_EQ(c.headers[0].name, "content-type");
  EXPECT_EQ(c.header("link"), "");
}

TEST(h2_call, a_head_without_fields_has_no_headers) {
  boost::asio::io_context io;
  h2_call c(wakeups::of(io));
  c.head_complete();
  EXPECT_TRUE(c.headers.empty());
}

}  // namespace
}  // namespace spillway::proxy
