#pragma once
// Request targets and Host values (RFC 9112 section 3.2, RFC 3986), checked strictly: what a
// proxy routes on must be what the backend acts on, so a target that two servers could read two
// ways is refused, and dot segments are removed before routing (and the cleaned path forwarded).

#include <string>
#include <string_view>

namespace spillway::http {

enum class target_form {
  origin,     // /path?query
  absolute,   // http://authority/path?query (a proxy request)
  asterisk,   // * (OPTIONS only)
  authority,  // host:port (CONNECT only)
};

struct request_target {
  target_form form = target_form::origin;
  std::string_view authority;  // absolute- and authority-form: host[:port] (userinfo refused)
  std::string_view path;       // origin- and absolute-form; empty for "http://a" (means "/")
  std::string_view query;      // "?..." or empty
};

// Parses `url` (as llhttp passed it) into `out`. Returns false when it is malformed: characters
// outside RFC 3986's pchar in the path (backslash, quotes, braces, ...), a bad percent-escape, a
// fragment, a scheme other than http/https, userinfo, or an invalid authority.
bool parse_target(std::string_view url, request_target& out);

// Removes dot segments ("." and "..", also written %2E) from an absolute path, RFC 3986 section
// 5.2.4. Writes the result into `out` and returns true when it differs from `path`; returns false
// (leaving `out` alone) when there was nothing to remove. Never climbs above the root.
bool remove_dot_segments(std::string_view path, std::string& out);

// True when `host` is a valid Host value: a reg-name of letters, digits and "-._~", or an IPv4 or
// bracketed IPv6 literal, with an optional port of 1 to 5 digits. Lists, spaces, userinfo and
// percent-escapes are refused.
bool valid_host(std::string_view host);

// True when `path` starts with `prefix` on a segment boundary: "/api" matches "/api", "/api/x"
// and "/api?..." but not "/apix"; a prefix ending in "/" matches any path below it.
bool path_prefix_matches(std::string_view path, std::string_view prefix);

}  // namespace spillway::http
