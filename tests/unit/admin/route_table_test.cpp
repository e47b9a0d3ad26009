#include "admin/route_table.h"

#include <gtest/gtest.h>

namespace spillway::admin {
namespace {

route_table make_table() {
  route_table t;
  t.add("GET", "/status", [](const request& r) -> response { return {200, "application/json", std::string(r.query)}; });
  t.add("POST", "/reload", [](const request&) -> response { return {200, "text/plain", "reloaded\n"}; });
  return t;
}

TEST(admin_route_table, a_route_answers_its_method_and_a_get_route_answers_head) {
  auto t = make_table();
  EXPECT_EQ(t.find("GET", "/status"), route_table::match::found);
  EXPECT_EQ(t.find("HEAD", "/status"), route_table::match::found);
  EXPECT_EQ(t.find("POST", "/reload"), route_table::match::found);
  auto res = t.dispatch({"GET", "/status", "format=text"});
  EXPECT_EQ(res.status, 200);
  EXPECT_EQ(res.content_type, "application/json");
  EXPECT_EQ(res.body, "format=text");  // the handler sees the query
}

TEST(admin_route_table, a_known_path_with_another_method_is_405) {
  auto t = make_table();
  EXPECT_EQ(t.find("POST", "/status"), route_table::match::method_not_allowed);
  EXPECT_EQ(t.find("GET", "/reload"), route_table::match::method_not_allowed);
  // HEAD stands for GET only: a POST route does not answer it.
  EXPECT_EQ(t.find("HEAD", "/reload"), route_table::match::method_not_allowed);
  auto res = t.dispatch({"GET", "/reload", ""});
  EXPECT_EQ(res.status, 405);
  EXPECT_EQ(res.content_type, "text/plain");
  EXPECT_EQ(res.body, "method not allowed\n");
}

TEST(admin_route_table, an_unknown_path_is_404_whatever_the_method) {
  auto t = make_table();
  for (const char* path : {"/", "/statu", "/status/", "/STATUS", "/reload/x", ""}) {
    EXPECT_EQ(t.find("GET", path), route_table::match::not_found) << path;
    EXPECT_EQ(t.find("POST", path), route_table::match::not_found) << path;
  }
  auto res = t.dispatch({"GET", "/nope", ""});
  EXPECT_EQ(res.status, 404);
  EXPECT_EQ(res.content_type, "text/plain");
  EXPECT_EQ(res.body, "not found\n");
}

TEST(admin_route_table, find_hands_out_the_handler_only_when_found) {
  auto t = make_table();
  const handler* h = nullptr;
  EXPECT_EQ(t.find("PUT", "/status", &h), route_table::match::method_not_allowed);
  EXPECT_EQ(h, nullptr);
  ASSERT_EQ(t.find("POST", "/reload", &h), route_table::match::found);
  ASSERT_NE(h, nullptr);
  EXPECT_EQ((*h)({"POST", "/reload", ""}).body, "reloaded\n");
}

}  // namespace
}  // namespace spillway::admin
