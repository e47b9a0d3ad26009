#include "admin/request_checks.h"

#include <arpa/inet.h>
#include <openssl/crypto.h>
#include <openssl/sha.h>

#include <string>

namespace spillway::admin {

const char* to_string(rejection r) {
  switch (r) {
    case rejection::host:
      return "host";
    case rejection::origin:
      return "origin";
    case rejection::content_type:
      return "content_type";
    case rejection::token:
      return "token";
    case rejection::method:
      return "method";
    case rejection::too_large:
      return "too_large";
    case rejection::timeout:
      return "timeout";
    case rejection::bad_request:
      return "bad_request";
    case rejection::count_:
      break;
  }
  return "unknown";
}

namespace {

bool is_port(std::string_view p) {
  if (p.empty() || p.size() > 5) {
    return false;
  }
  unsigned n = 0;
  for (char c : p) {
    if (c < '0' || c > '9') {
      return false;
    }
    n = n * 10 + static_cast<unsigned>(c - '0');
  }
  return n <= 65535;
}

bool is_ipv4(std::string_view s) {
  unsigned char b[4];
  return s.size() < 16 && ::inet_pton(AF_INET, std::string(s).c_str(), b) == 1;
}

bool is_ipv6(std::string_view s) {
  unsigned char b[16];
  return s.size() < 46 && ::inet_pton(AF_INET6, std::string(s).c_str(), b) == 1;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) {
    s.remove_prefix(1);
  }
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) {
    s.remove_suffix(1);
  }
  return s;
}

}  // namespace

bool host_allowed(std::string_view host, std::string_view listen) {
  if (host.empty()) {
    return false;
  }
  if (http::iequals(host, listen)) {
    return true;
  }
  // Split off an optional port: "[v6]:port", "[v6]", "name:port", "name".
  std::string_view name = host;
  if (host.front() == '[') {
    auto close = host.find(']');
    if (close == std::string_view::npos) {
      return false;
    }
    auto rest = host.substr(close + 1);
    if (!rest.empty() && (rest.front() != ':' || !is_port(rest.substr(1)))) {
      return false;
    }
    return is_ipv6(host.substr(1, close - 1));
  }
  if (auto colon = host.rfind(':'); colon != std::string_view::npos) {
    if (!is_port(host.substr(colon + 1))) {
      return false;
    }
    name = host.substr(0, colon);
  }
  // An attacker's page can point any name it owns at 127.0.0.1, but not "localhost" nor a literal.
  return http::iequals(name, "localhost") || is_ipv4(name);
}

bool form_content_type(std::string_view content_type) {
  auto type = trim(content_type.substr(0, content_type.find(';')));
  return http::iequals(type, "application/x-www-form-urlencoded") || http::iequals(type, "multipart/form-data") ||
         http::iequals(type, "text/plain");
}

bool bearer_matches(std::string_view authorization, std::string_view token) {
  authorization = trim(authorization);
  constexpr std::string_view scheme = "bearer";
  if (token.empty() || authorization.size() <= scheme.size() ||
      !http::iequals(authorization.substr(0, scheme.size()), scheme) ||
      (authorization[scheme.size()] != ' ' && authorization[scheme.size()] != '\t')) {
    return false;
  }
  auto given = trim(authorization.substr(scheme.size()));
  // Equal-length digests: CRYPTO_memcmp's time does not depend on where they differ, and the
  // hashing hides the token's length.
  unsigned char a[SHA256_DIGEST_LENGTH];
  unsigned char b[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(given.data()), given.size(), a);
  SHA256(reinterpret_cast<const unsigned char*>(token.data()), token.size(), b);
  return CRYPTO_memcmp(a, b, sizeof a) == 0;
}

bool probe_request(std::string_view method, std::string_view url) {
  if (method != "GET" && method != "HEAD") {
    return false;
  }
  const auto path = url.substr(0, url.find('?'));
  return path == "/ready" || path == "/live";
}

std::optional<refusal> admit(const http::message_head& head, const admission_policy& policy) {
  const std::size_t hosts = head.count("host");
  if (hosts > 1 || (hosts == 0 && (head.version_major > 1 || head.version_minor >= 1))) {
    return refusal{rejection::bad_request, 400, "bad request: one Host header required\n", {}};
  }
  if (hosts == 1 && !host_allowed(head.find("host"), policy.listen)) {
    return refusal{rejection::host, 403, "forbidden: Host must be the admin address, localhost or an IP address\n", {}};
  }
  // The Host check above still applies to probes: kubelet sends the pod's IP address as Host.
  if (!policy.token.empty() && !(policy.open_probes && probe_request(head.method, head.url)) &&
      !bearer_matches(head.find("authorization"), policy.token)) {
    return refusal{rejection::token, 401, "unauthorized: send Authorization: Bearer TOKEN\n",
                   "www-authenticate: Bearer realm=\"spillway-admin\"\r\n"};
  }
  const auto method = head.method;
  if (method != "GET" && method != "HEAD" && method != "POST") {
    return refusal{rejection::method, 405, "method not allowed\n", {}};
  }
  if (method == "POST") {
    // A browser adds Origin to every cross-site POST (and to fetches); curl and scripts do not.
    // A plain HTML form can post without Origin only from old browsers, and only with these
    // body types, so refusing both leaves a cross-site page no way to change state.
    if (head.count("origin") > 0) {
      return refusal{rejection::origin, 403, "forbidden: cross-site request (Origin header)\n", {}};
    }
    if (head.count("content-type") > 0 && form_content_type(head.find("content-type"))) {
      return refusal{
          rejection::content_type, 403, "forbidden: a form's content type is not accepted on the admin API\n", {}};
    }
  }
  if (head.has_content_length && head.content_length > policy.max_body) {
    return refusal{rejection::too_large, 413, "request body too large\n", {}};
  }
  return std::nullopt;
}

}  // namespace spillway::admin
