#include "http/target.h"

#include <gtest/gtest.h>

#include <string>

namespace spillway::http {
namespace {

TEST(target, origin_form) {
  request_target t;
  ASSERT_TRUE(parse_target("/a/b?x=1&y={}|", t));
  EXPECT_EQ(t.form, target_form::origin);
  EXPECT_EQ(t.path, "/a/b");
  EXPECT_EQ(t.query, "?x=1&y={}|");
  ASSERT_TRUE(parse_target("/%41%2f;p=1:@!$&'()*+,=~", t));
}

TEST(target, refused_characters) {
  request_target t;
  for (const char* url : {"/a#b", "/a\\b", "/a\"b", "/a<b", "/a>b", "/a{b", "/a|b", "/a^b", "/a`b", "/a%", "/a%4",
                          "/a%zz", "/?a#b", "/?a\\b", "/?a%g1", ""}) {
    EXPECT_FALSE(parse_target(url, t)) << url;
  }
}

TEST(target, asterisk_and_authority_forms) {
  request_target t;
  ASSERT_TRUE(parse_target("*", t));
  EXPECT_EQ(t.form, target_form::asterisk);
  ASSERT_TRUE(parse_target("example.com:443", t));
  EXPECT_EQ(t.form, target_form::authority);
  EXPECT_FALSE(parse_target("*x", t));
  EXPECT_FALSE(parse_target("example.com", t));  // authority-form needs a port
}

TEST(target, absolute_form) {
  request_target t;
  ASSERT_TRUE(parse_target("http://Example.com:8080/p?q=1", t));
  EXPECT_EQ(t.form, target_form::absolute);
  EXPECT_EQ(t.authority, "Example.com:8080");
  EXPECT_EQ(t.path, "/p");
  EXPECT_EQ(t.query, "?q=1");
  ASSERT_TRUE(parse_target("HTTPS://a.example", t));
  EXPECT_EQ(t.authority, "a.example");
  EXPECT_EQ(t.path, "");
  ASSERT_TRUE(parse_target("http://a.example?x", t));
  EXPECT_EQ(t.query, "?x");
  for (const char* url : {"http://user@a.example/", "http:///p", "ftp://a.example/", "http://a b/",
                          "http://a.example/#f", "http://a,b/", "http://[::1/"}) {
    EXPECT_FALSE(parse_target(url, t)) << url;
  }
  ASSERT_TRUE(parse_target("http://[::1]:80/", t));
  EXPECT_EQ(t.authority, "[::1]:80");
}

TEST(target, hosts) {
  for (const char* h :
       {"a.example", "a.example:8080", "127.0.0.1", "127.0.0.1:1", "[::1]", "[::1]:443", "under_score", "x-y.z~"}) {
    EXPECT_TRUE(valid_host(h)) << h;
  }
  for (const char* h : {"", "a, b", "a b", "a@b", "a/b", "a:", "a:123456", "a:8x", ":80", "[::1", "[x]", "[::1]x",
                        "a%20b", "a\tb", "a;b"}) {
    EXPECT_FALSE(valid_host(h)) << h;
  }
}

std::string clean(std::string_view path) {
  std::string out;
  return remove_dot_segments(path, out) ? out : std::string(path);
}

TEST(target, dot_segments_are_removed) {
  EXPECT_EQ(clean("/a/b"), "/a/b");
  EXPECT_EQ(clean("/api/../admin"), "/admin");
  EXPECT_EQ(clean("/api/%2e%2e/admin"), "/admin");
  EXPECT_EQ(clean("/api/%2E./admin"), "/admin");
  EXPECT_EQ(clean("/a/./b"), "/a/b");
  EXPECT_EQ(clean("/a/b/.."), "/a/");
  EXPECT_EQ(clean("/a/b/."), "/a/b/");
  EXPECT_EQ(clean("/../../x"), "/x");
  EXPECT_EQ(clean("/.."), "/");
  EXPECT_EQ(clean("/a/..b/c"), "/a/..b/c");  // not a dot segment
  EXPECT_EQ(clean("/a.b/c.d"), "/a.b/c.d");
  EXPECT_EQ(clean("//a/../b"), "//b");
  EXPECT_EQ(clean("/a/b/"), "/a/b/");
}

TEST(target, path_prefix_on_segment_boundaries) {
  EXPECT_TRUE(path_prefix_matches("/api", "/api"));
  EXPECT_TRUE(path_prefix_matches("/api/x", "/api"));
  EXPECT_FALSE(path_prefix_matches("/apix", "/api"));
  EXPECT_TRUE(path_prefix_matches("/api/x", "/api/"));
  EXPECT_FALSE(path_prefix_matches("/api", "/api/"));
  EXPECT_TRUE(path_prefix_matches("/anything", "/"));
  EXPECT_FALSE(path_prefix_matches("/ap", "/api"));
}

}  // namespace
}  // namespace spillway::http
