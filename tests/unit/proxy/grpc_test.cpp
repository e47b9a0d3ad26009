#include "proxy/grpc.h"

#include <gtest/gtest.h>

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

}  // namespace
}  // namespace spillway::proxy
