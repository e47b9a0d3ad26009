#include "admin/request_checks.h"

#include <gtest/gtest.h>

#include <initializer_list>
#include <optional>

namespace spillway::admin {
namespace {

// host_allowed, form_content_type and bearer_matches are tested in admin_server_test.cpp; these are
// the rules that admit() builds from them, and their order.

http::message_head head(std::string_view method, std::initializer_list<http::header> headers, int minor = 1) {
  http::message_head h;
  h.method = method;
  h.url = "/status";
  h.version_minor = minor;
  h.headers = headers;
  return h;
}

constexpr admission_policy open_policy{"127.0.0.1:9901", "", 1024};
constexpr admission_policy token_policy{"127.0.0.1:9901", "s3cret", 1024};

std::optional<rejection> why(const http::message_head& h, const admission_policy& p = open_policy) {
  auto r = admit(h, p);
  return r ? std::optional<rejection>(r->why) : std::nullopt;
}

TEST(admin_admit, a_plain_local_request_passes) {
  EXPECT_FALSE(admit(head("GET", {{"host", "127.0.0.1:9901"}}), open_policy));
  EXPECT_FALSE(admit(head("HEAD", {{"Host", "localhost"}}), open_policy));
  EXPECT_FALSE(admit(head("POST", {{"host", "localhost"}, {"content-type", "application/json"}}), open_policy));
  // HTTP/1.0 may leave Host out.
  EXPECT_FALSE(admit(head("GET", {}, 0), open_policy));
}

TEST(admin_admit, exactly_one_host_header_is_required_from_http_1_1) {
  auto r = admit(head("GET", {}), open_policy);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->why, rejection::bad_request);
  EXPECT_EQ(r->status, 400);
  EXPECT_EQ(why(head("GET", {{"host", "localhost"}, {"host", "localhost"}})), rejection::bad_request);
  EXPECT_EQ(why(head("GET", {{"host", "localhost"}, {"host", "localhost"}}, 0)), rejection::bad_request);
}

TEST(admin_admit, a_foreign_host_is_403_even_with_the_right_token) {
  auto r = admit(head("GET", {{"host", "evil.example"}, {"authorization", "Bearer s3cret"}}), token_policy);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->why, rejection::host);
  EXPECT_EQ(r->status, 403);
}

TEST(admin_admit, a_missing_or_wrong_token_is_401_with_a_challenge) {
  for (auto auth : {std::string_view(), std::string_view("Bearer nope"), std::string_view("Basic s3cret")}) {
    auto h = head("GET", {{"host", "localhost"}});
    if (!auth.empty()) {
      h.headers.push_back({"authorization", auth});
    }
    auto r = admit(h, token_policy);
    ASSERT_TRUE(r) << auth;
    EXPECT_EQ(r->why, rejection::token);
    EXPECT_EQ(r->status, 401);
    EXPECT_EQ(r->extra_headers, "www-authenticate: Bearer realm=\"spillway-admin\"\r\n");
  }
  EXPECT_FALSE(admit(head("GET", {{"host", "localhost"}, {"authorization", "bearer s3cret"}}), token_policy));
  // The token is checked before the method.
  EXPECT_EQ(why(head("DELETE", {{"host", "localhost"}}), token_policy), rejection::token);
}

TEST(admin_admit, with_open_probes_probes_need_no_token_but_an_allowed_host) {
  auto probe = [](std::string_view method, std::string_view url, std::string_view host) {
    auto h = head(method, {{"host", host}});
    h.url = url;
    return h;
  };
  // By default (SPEC section 5) every request needs the token, probes included.
  EXPECT_EQ(why(probe("GET", "/ready", "localhost"), token_policy), rejection::token);
  // With admin.open_probes: true, the probes are served without it.
  constexpr admission_policy token_policy{"127.0.0.1:9901", "s3cret", 1024, true};
  // What kubelet sends: the pod's address as Host, no Authorization.
  for (auto url : {"/ready", "/live", "/ready?verbose=1"}) {
    EXPECT_FALSE(admit(probe("GET", url, "10.244.1.7:9901"), token_policy)) << url;
    EXPECT_FALSE(admit(probe("HEAD", url, "[fd00::7]:9901"), token_policy)) << url;
  }
  // Everything else still needs the token, POST to a probe path and look-alike paths included.
  for (auto url : {"/status", "/metrics", "/", "/ready/", "/readyz", "/live/x", "//ready"}) {
    EXPECT_EQ(why(probe("GET", url, "localhost"), token_policy), rejection::token) << url;
  }
  EXPECT_EQ(why(probe("POST", "/ready", "localhost"), token_policy), rejection::token);
  // The DNS-rebinding check is not waived.
  EXPECT_EQ(why(probe("GET", "/ready", "evil.example"), token_policy), rejection::host);
  EXPECT_TRUE(probe_request("GET", "/live"));
  EXPECT_FALSE(probe_request("DELETE", "/live"));
}

TEST(admin_admit, methods_other_than_get_head_post_are_405) {
  for (const char* m : {"PUT", "DELETE", "OPTIONS", "PATCH", "get"}) {
    auto r = admit(head(m, {{"host", "localhost"}}), open_policy);
    ASSERT_TRUE(r) << m;
    EXPECT_EQ(r->why, rejection::method) << m;
    EXPECT_EQ(r->status, 405);
  }
}

TEST(admin_admit, a_post_with_origin_or_a_form_content_type_is_403) {
  EXPECT_EQ(why(head("POST", {{"host", "localhost"}, {"origin", "http://127.0.0.1:9901"}})), rejection::origin);
  EXPECT_EQ(why(head("POST", {{"host", "localhost"}, {"Content-Type", "text/plain; charset=utf-8"}})),
            rejection::content_type);
  // Reads may carry Origin (the dashboard's fetches do).
  EXPECT_FALSE(why(head("GET", {{"host", "localhost"}, {"origin", "http://127.0.0.1:9901"}})));
}

TEST(admin_admit, a_declared_body_over_max_body_is_413) {
  auto h = head("POST", {{"host", "localhost"}});
  h.has_content_length = true;
  h.content_length = 1024;
  EXPECT_FALSE(why(h));
  h.content_length = 1025;
  auto r = admit(h, open_policy);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->why, rejection::too_large);
  EXPECT_EQ(r->status, 413);
}

TEST(admin_admit, every_rejection_has_its_label) {
  EXPECT_STREQ(to_string(rejection::host), "host");
  EXPECT_STREQ(to_string(rejection::content_type), "content_type");
  EXPECT_STREQ(to_string(rejection::bad_request), "bad_request");
  for (std::size_t i = 0; i < static_cast<std::size_t>(rejection::count_); ++i) {
    EXPECT_STRNE(to_string(static_cast<rejection>(i)), "unknown");
  }
}

}  // namespace
}  // namespace spillway::admin
