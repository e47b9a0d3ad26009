#include "proxy/grpc.h"

#include <gtest/gtest.h>

#include <string>

namespace spillway::proxy {
namespace {

using namespace std::chrono;

TEST(grpc, content_types) {
  EXPECT_TRUE(is_grpc("application/grpc"));
  EXPECT_TRUE(is_grpc("application/grpc+proto"));
  EXPECT_TRUE(is_grpc("Application/GRPC+json"));
  EXPECT_TRUE(is_grpc("application/grpc; charset=x"));
  EXPECT_FALSE(is_grpc("application/grpc-web"));  // gRPC-Web is another protocol
  EXPECT_FALSE(is_grpc("application/grpcx"));
  EXPECT_FALSE(is_grpc("application/json"));
  EXPECT_FALSE(is_grpc(""));
}

TEST(grpc, statuses_of_local_answers) {
  EXPECT_EQ(grpc_status_of(error_kind::no_healthy_upstream), 14);
  EXPECT_EQ(grpc_status_of(error_kind::upstream_overloaded), 14);
  EXPECT_EQ(grpc_status_of(error_kind::upstream_connect_failure), 14);
  EXPECT_EQ(grpc_status_of(error_kind::upstream_timeout), 4);
  EXPECT_EQ(grpc_status_of(error_kind::body_too_large), 8);
  EXPECT_EQ(grpc_status_of(error_kind::no_route), 12);
  EXPECT_EQ(grpc_status_of(error_kind::malformed_request), 13);
}

TEST(grpc, http_statuses_of_grpc_statuses) {
  EXPECT_EQ(http_status_of_grpc(0), 200);
  EXPECT_EQ(http_status_of_grpc(14), 503);
  EXPECT_EQ(http_status_of_grpc(4), 504);
  EXPECT_EQ(http_status_of_grpc(13), 500);
  EXPECT_EQ(http_status_of_grpc(2), 500);
  EXPECT_EQ(http_status_of_grpc(12), 501);
  EXPECT_EQ(http_status_of_grpc(8), 429);
  EXPECT_EQ(http_status_of_grpc(3), 400);
  EXPECT_EQ(http_status_of_grpc(5), 404);
  EXPECT_EQ(http_status_of_grpc(99), 500);
  EXPECT_EQ(http_status_of_grpc(-1), 500);
}

TEST(grpc, timeouts) {
  EXPECT_EQ(parse_grpc_timeout("1S"), seconds(1));
  EXPECT_EQ(parse_grpc_timeout("250m"), milliseconds(250));
  EXPECT_EQ(parse_grpc_timeout("2H"), hours(2));
  EXPECT_EQ(parse_grpc_timeout("3M"), minutes(3));
  EXPECT_EQ(parse_grpc_timeout("10u"), microseconds(10));
  EXPECT_EQ(parse_grpc_timeout("99999999n"), nanoseconds(99999999));
  EXPECT_EQ(parse_grpc_timeout("0m"), nanoseconds(0));
  EXPECT_EQ(parse_grpc_timeout("123456789S"), std::nullopt);  // 9 digits
  EXPECT_EQ(parse_grpc_timeout("S"), std::nullopt);
  EXPECT_EQ(parse_grpc_timeout("1s"), std::nullopt);  // units are case-sensitive
  EXPECT_EQ(parse_grpc_timeout("-1S"), std::nullopt);
  EXPECT_EQ(parse_grpc_timeout("1 S"), std::nullopt);
  EXPECT_EQ(parse_grpc_timeout(""), std::nullopt);
}

TEST(grpc, parse_grpc_status) {
  EXPECT_EQ(parse_grpc_status("0"), 0);
  EXPECT_EQ(parse_grpc_status("14"), 14);
  EXPECT_EQ(parse_grpc_status("123"), 123);
  EXPECT_EQ(parse_grpc_status(""), -1);
  EXPECT_EQ(parse_grpc_status("1234"), -1);
  EXPECT_EQ(parse_grpc_status("-1"), -1);
  EXPECT_EQ(parse_grpc_status(" 1"), -1);
  EXPECT_EQ(parse_grpc_status("1a"), -1);
}

TEST(grpc, health_request) {
  EXPECT_EQ(grpc_health_request(""), std::string("\0\0\0\0\0", 5));
  EXPECT_EQ(grpc_health_request("api.v1.Users"), std::string("\0\0\0\0\x0e\x0a\x0c"
                                                             "api.v1.Users",
                                                             19));
  const std::string long_name(200, 's');  // a two-byte length varint
  const auto r = grpc_health_request(long_name);
  EXPECT_EQ(r.substr(0, 8), std::string("\0\0\0\0\xcb\x0a\xc8\x01", 8));
  EXPECT_EQ(r.size(), 5u + 3u + 200u);
}

TEST(grpc, health_status) {
  EXPECT_EQ(grpc_health_status(std::string("\0\0\0\0\x02\x08\x01", 7)), 1);
  EXPECT_EQ(grpc_health_status(std::string("\0\0\0\0\x02\x08\x02", 7)), 2);
  EXPECT_EQ(grpc_health_status(std::string("\0\0\0\0\0", 5)), 0);  // absent: UNKNOWN
  // unknown fields of every wire type are skipped
  EXPECT_EQ(grpc_health_status(std::string("\0\0\0\0\x16\x10\x05\x1a\x02xy\x21\x01\x02\x03\x04\x05\x06\x07\x08"
                                           "\x2d\x01\x02\x03\x04\x08\x01",
                                           27)),
            1);
  EXPECT_EQ(grpc_health_status(""), -1);
  EXPECT_EQ(grpc_health_status(std::string("\x01\0\0\0\x02\x08\x01", 7)), -1);             // compressed
  EXPECT_EQ(grpc_health_status(std::string("\0\0\0\0\x03\x08\x01", 7)), -1);               // length beyond the body
  EXPECT_EQ(grpc_health_status(std::string("\0\0\0\0\x02\x08\x01\x00", 8)), -1);           // bytes beyond the message
  EXPECT_EQ(grpc_health_status(std::string("\0\0\0\0\x01\x08", 6)), -1);                   // cut-off varint
  EXPECT_EQ(grpc_health_status(std::string("\0\0\0\0\x02\x0a\x05", 7)), -1);               // cut-off field
  EXPECT_EQ(grpc_health_status(std::string("\0\0\0\0\x01\x0b", 6)), -1);                   // wire type 3
  EXPECT_EQ(grpc_health_status(std::string("\0\0\0\0\x05\x21\x01\x02\x03\x04", 10)), -1);  // cut-off 64-bit
  EXPECT_EQ(grpc_health_status(std::string("\0\0\0\0\x04\x2d\x01\x02\x03", 9)), -1);       // cut-off 32-bit
}

}  // namespace
}  // namespace spillway::proxy
