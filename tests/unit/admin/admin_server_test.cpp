#include "admin/admin_server.h"

#include <gtest/gtest.h>

namespace spillway::admin {
namespace {

TEST(admin_host, admin_address_localhost_and_ip_literals_are_allowed) {
  for (const char* host : {"127.0.0.1:9901", "localhost", "LocalHost:9901", "localhost:1", "127.0.0.1", "10.0.0.7:80",
                           "[::1]", "[::1]:9901", "[2001:db8::1]:8080"}) {
    EXPECT_TRUE(host_allowed(host, "127.0.0.1:9901")) << host;
  }
  // The configured address as written, even when it is not one of the forms above.
  EXPECT_TRUE(host_allowed("[::1]:9901", "[::1]:9901"));
}

TEST(admin_host, other_names_and_malformed_hosts_are_refused) {
  for (const char* host : {"", "evil.example", "evil.example:9901", "localhost.evil.example", "127.0.0.1.nip.io",
                           "localhost:", "localhost:x", "localhost:99999", "127.1", "127.0.0.1:9901:1", "[::1",
                           "[::1]x", "[evil]:1", "::1", "0x7f.0.0.1", "127.0.0.1 ", "local host"}) {
    EXPECT_FALSE(host_allowed(host, "127.0.0.1:9901")) << '"' << host << '"';
  }
}

TEST(admin_content_type, form_types_match_case_insensitively_without_parameters) {
  for (const char* t : {"application/x-www-form-urlencoded", "multipart/form-data; boundary=----x", "text/plain",
                        "TEXT/PLAIN;charset=UTF-8", " Text/Plain ", "Application/X-WWW-Form-Urlencoded ; a=b"}) {
    EXPECT_TRUE(form_content_type(t)) << t;
  }
  for (const char* t : {"", "application/json", "text/plain2", "text/html", "application/x-www-form-urlencodedx"}) {
    EXPECT_FALSE(form_content_type(t)) << t;
  }
}

TEST(admin_token, bearer_must_match_exactly) {
  EXPECT_TRUE(bearer_matches("Bearer s3cret", "s3cret"));
  EXPECT_TRUE(bearer_matches("bearer s3cret", "s3cret"));
  EXPECT_TRUE(bearer_matches("BEARER   s3cret ", "s3cret"));
  for (const char* a : {"", "Bearer", "Bearer ", "Bearer s3cre", "Bearer s3cret2", "Bearers3cret", "Basic s3cret",
                        "s3cret", "Bearer S3CRET"}) {
    EXPECT_FALSE(bearer_matches(a, "s3cret")) << a;
  }
  // No token configured never matches (the server does not ask then).
  EXPECT_FALSE(bearer_matches("Bearer ", ""));
}

}  // namespace
}  // namespace spillway::admin
