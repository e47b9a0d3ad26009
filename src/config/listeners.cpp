// listeners: each one's address, protocol, limits, tls (certificates chosen by SNI) and, for http,
// its routes with their match blocks. Route and tcp `upstream` names are only collected here;
// load.cpp checks them once every upstream is known.

#include <algorithm>
#include <cctype>

#include "config/loader.h"

namespace spillway::config::detail {

// Which of `routes` and `upstream` belongs depends on the protocol, which may come after them in
// the map, so what was seen is kept until every key has been read.
struct loader::listener_draft {
  listener l;
  mark name_at;
  bool listen_given = false;
  std::optional<mark> listen_at;
  bool protocol_ok = true;
  std::optional<mark> routes_key;
  std::optional<mark> upstream_key;
  std::optional<mark> upstream_value;
  std::vector<mark> http_only_keys;
  std::optional<mark> http2_key;
  std::vector<std::pair<std::string, mark>> route_refs;
  std::optional<mark> rate_limit_key;
  std::optional<mark> rate_limit_value;
};

void loader::read_listeners(const Node& v) {
  if (!expect(v, kind::list, "listeners")) {
    return;
  }
  if (v.size() == 0) {
    add(v, "the config needs at least one listener");
    return;
  }
  std::size_t index = 0;
  for (const auto& item : v) {
    read_listener(item, index++);
  }
}

void loader::read_listener(const Node& n, std::size_t index) {
  if (!expect(n, kind::map, "each listener")) {
    return;
  }
  listener_draft d;
  d.l.where = where(n);
  d.l.name = fmt::format("listener_{}", index);
  d.name_at = d.l.where;
  read_listener_keys(n, d);

  if (!d.listen_given) {
    add(n, fmt::format("listener \"{}\" needs a \"listen\" address", d.l.name));
  }
  check_listener_protocol(n, d);
  if (auto first = listener_names_.find(d.l.name); first != listener_names_.end()) {
    add(d.name_at, fmt::format("duplicate listener name \"{}\" (first at line {})", d.l.name, first->second.line));
  } else {
    listener_names_.emplace(d.l.name, d.name_at);
  }
  if (d.listen_at) {
    bindings_.push_back({d.l.listen, *d.listen_at, fmt::format("listener \"{}\"", d.l.name), true});
  }
  cfg_.listeners.push_back(std::move(d.l));
}

void loader::read_listener_keys(const Node& n, listener_draft& d) {
  listener& l = d.l;
  auto request_limit = [&](const Node& k, const Node& v) { read_request_limit(k, v, d); };
  read_map(n, "in listener",
           {
               {"name",
                [&](const Node& v) {
                  if (auto s = read_name(v, "listener name")) {
                    l.name = *s;
                    d.name_at = where(v);
                  }
                }},
               {"listen",
                [&](const Node& v) {
                  d.listen_given = true;
                  if (auto a = read_address(v, "listen address", true)) {
                    l.listen = *a;
                    d.listen_at = where(v);
                  }
                }},
               {"protocol",
                [&](const Node& v) {
                  auto p = read_enum<protocol>(v, "protocol", {{"http", protocol::http}, {"tcp", protocol::tcp}});
                  d.protocol_ok = p.has_value();
                  if (p) {
                    l.proto = *p;
                  }
                }},
               {"tls", [&](const Node& v) { l.tls = read_listener_tls(v); }},
               {"routes",
                [&](const Node& k, const Node& v) {
                  d.routes_key = where(k);
                  read_routes(v, l.routes, d.route_refs);
                }},
               {"upstream",
                [&](const Node& k, const Node& v) {
                  d.upstream_key = where(k);
                  if (auto s = read_name(v, "upstream")) {
                    l.upstream = *s;
                    d.upstream_value = where(v);
                  }
                }},
               {"rate_limit",
                [&](const Node& k, const Node& v) {
                  d.rate_limit_key = where(k);
                  if (auto s = read_name(v, "rate_limit")) {
                    l.rate_limit = *s;
                    d.rate_limit_value = where(v);
                  }
                }},
               {"max_request_headers", request_limit},
               {"max_request_body", request_limit},
               {"max_request_header_fields", request_limit},
               {"max_connections",
                [&](const Node& v) {
                  if (auto x = read_uint(v, "max_connections", 1, 1000000)) {
                    l.max_connections = static_cast<std::uint32_t>(*x);
                  }
                }},
               {"splice",
                [&](const Node& v) {
                  if (auto b = read_bool(v, "splice")) {
                    l.splice = *b;
                  }
                }},
               {"http2",
                [&](const Node& k, const Node& v) {
                  d.http2_key = where(k);
                  if (auto b = read_bool(v, "http2")) {
                    l.http2 = *b;
                  }
                }},
           });
}

// The request size limits of an http listener (a tcp listener has no requests to limit: that is
// judged in check_listener_protocol, once the protocol is known).
void loader::read_request_limit(const Node& key, const Node& v, listener_draft& d) {
  d.http_only_keys.push_back(where(key));
  const std::string& name = key.Scalar();
  if (name == "max_request_headers") {
    if (auto s = read_size(v, "max_request_headers")) {
      if (*s == 0) {
        add(v, "max_request_headers must be greater than 0");
      } else {
        d.l.max_request_headers = *s;
      }
    }
  } else if (name == "max_request_body") {
    if (auto s = read_size(v, "max_request_body")) {
      d.l.max_request_body = *s;
    }
  } else if (auto x = read_uint(v, "max_request_header_fields", 1, 10000)) {
    d.l.max_request_header_fields = static_cast<std::uint32_t>(*x);
  }
}

// An http listener takes routes, a tcp one an upstream; the upstream names they use are kept for
// check_upstream_refs (load.cpp).
void loader::check_listener_protocol(const Node& n, listener_draft& d) {
  const listener& l = d.l;
  if (d.protocol_ok && l.proto == protocol::http) {
    if (d.upstream_key) {
      add(*d.upstream_key,
          fmt::format("\"upstream\" is for tcp listeners; http listener \"{}\" uses \"routes\"", l.name));
    }
    if (d.rate_limit_key) {
      add(*d.rate_limit_key,
          fmt::format("a listener's \"rate_limit\" counts tcp connections; http listener \"{}\" takes one per route",
                      l.name));
    }
    if (!d.routes_key) {
      add(n, fmt::format("http listener \"{}\" needs at least one route", l.name));
    } else {
      for (auto& ref : d.route_refs) {
        upstream_refs_.push_back({std::move(ref.first), ref.second, "route"});
      }
    }
  } else if (d.protocol_ok && l.proto == protocol::tcp) {
    if (d.routes_key) {
      add(*d.routes_key,
          fmt::format("\"routes\" are for http listeners; tcp listener \"{}\" uses \"upstream\"", l.name));
    }
    for (const auto& k : d.http_only_keys) {
      add(k, fmt::format("request size limits apply to http listeners only; \"{}\" is tcp", l.name));
    }
    if (d.http2_key) {
      add(*d.http2_key, fmt::format("\"http2\" applies to http listeners only; \"{}\" is tcp", l.name));
    }
    if (!d.upstream_key) {
      add(n, fmt::format("tcp listener \"{}\" needs an \"upstream\"", l.name));
    } else if (d.upstream_value) {
      upstream_refs_.push_back({l.upstream, *d.upstream_value, fmt::format("listener \"{}\"", l.name)});
    }
    if (d.rate_limit_value) {
      rate_limit_refs_.push_back({l.rate_limit, *d.rate_limit_value, fmt::format("listener \"{}\"", l.name), true});
    }
  }
}

// nullopt when anything in the block is wrong (a listener must not start without its certificate).
std::optional<listener_tls> loader::read_listener_tls(const Node& v) {
  if (!expect(v, kind::map, "tls")) {
    return std::nullopt;
  }
  listener_tls tls;
  std::optional<mark> single_at;
  std::optional<mark> list_at;
  bool cert_given = false;
  bool key_given = false;
  bool ok = true;
  tls_certificate single;
  auto pem = [&](const Node& k, const Node& value, bool is_cert) {
    (is_cert ? cert_given : key_given) = true;
    single_at = single_at.value_or(where(k));
    (is_cert ? single.cert_at : single.key_at) = where(value);
    auto p = read_file_path(value, is_cert ? "certificate" : "key");
    ok = ok && p.has_value();
    (is_cert ? single.cert : single.key) = p.value_or("");
  };
  read_map(v, "in tls",
           {
               {"cert", [&](const Node& k, const Node& value) { pem(k, value, true); }},
               {"key", [&](const Node& k, const Node& value) { pem(k, value, false); }},
               {"certificates",
                [&](const Node& k, const Node& value) {
                  list_at = where(k);
                  ok = read_certificates(value, tls.certificates) && ok;
                }},
               {"handshake_timeout",
                [&](const Node& value) {
                  auto d = read_duration(value, "handshake_timeout", false);
                  ok = ok && d.has_value();
                  tls.handshake_timeout = d.value_or(tls.handshake_timeout);
                }},
           });
  if (single_at && list_at) {
    add(later(*single_at, *list_at), "tls takes either cert and key, or certificates, not both");
    return std::nullopt;
  }
  if (!single_at && !list_at) {
    add(v, "tls needs a cert and a key (or a list of certificates)");
    return std::nullopt;
  }
  if (single_at) {
    if (!cert_given || !key_given) {
      add(v, fmt::format("tls needs both a cert and a key; \"{}\" is missing", cert_given ? "key" : "cert"));
      return std::nullopt;
    }
    tls.certificates.push_back(std::move(single));
  }
  if (!ok) {
    return std::nullopt;
  }
  return tls;
}

// Returns false when any entry is wrong; `out` gets the good ones.
bool loader::read_certificates(const Node& v, std::vector<tls_certificate>& out) {
  if (!expect(v, kind::list, "certificates")) {
    return false;
  }
  if (v.size() == 0) {
    add(v, "certificates must list at least one { cert, key }");
    return false;
  }
  bool ok = true;
  for (const auto& item : v) {
    if (!expect(item, kind::map, "each certificate")) {
      ok = false;
      continue;
    }
    tls_certificate c;
    bool cert_given = false;
    bool key_given = false;
    auto pem = [&](const Node& value, bool is_cert) {
      (is_cert ? cert_given : key_given) = true;
      (is_cert ? c.cert_at : c.key_at) = where(value);
      auto p = read_file_path(value, is_cert ? "certificate" : "key");
      ok = ok && p.has_value();
      (is_cert ? c.cert : c.key) = p.value_or("");
    };
    read_map(item, "in tls certificate",
             {
                 {"cert", [&](const Node& value) { pem(value, true); }},
                 {"key", [&](const Node& value) { pem(value, false); }},
             });
    if (!cert_given || !key_given) {
      add(item,
          fmt::format("a tls certificate needs both a cert and a key; \"{}\" is missing", cert_given ? "key" : "cert"));
      ok = false;
      continue;
    }
    out.push_back(std::move(c));
  }
  return ok;
}

// `refs` gets each route's upstream and its position, checked once every upstream is known.
void loader::read_routes(const Node& v, std::vector<route>& out, std::vector<std::pair<std::string, mark>>& refs) {
  if (!expect(v, kind::list, "routes")) {
    return;
  }
  if (v.size() == 0) {
    add(v, "routes must list at least one route");
    return;
  }
  for (const auto& item : v) {
    if (!expect(item, kind::map, "each route")) {
      continue;
    }
    route r;
    r.where = where(item);
    bool upstream_given = false;
    read_map(item, "in route",
             {
                 {"match", [&](const Node& value) { read_match(value, r.match); }},
                 {"upstream",
                  [&](const Node& value) {
                    upstream_given = true;
                    if (auto s = read_name(value, "upstream")) {
                      r.upstream = *s;
                      refs.emplace_back(*s, where(value));
                    }
                  }},
                 {"rate_limit",
                  [&](const Node& value) {
                    if (auto s = read_name(value, "rate_limit")) {
                      r.rate_limit = *s;
                      rate_limit_refs_.push_back({*s, where(value), "route", false});
                    }
                  }},
             });
    if (!upstream_given) {
      add(item, "route needs an \"upstream\"");
    }
    out.push_back(std::move(r));
  }
}

void loader::read_match(const Node& v, route_match& m) {
  if (!expect(v, kind::map, "match")) {
    return;
  }
  read_map(v, "in match",
           {
               {"host", [&](const Node& value) { read_match_host(value, m); }},
               {"path_prefix",
                [&](const Node& value) {
                  auto s = read_name(value, "path_prefix");
                  if (!s) {
                    return;
                  }
                  if (s->front() != '/') {
                    add(value, fmt::format("path_prefix {} must start with \"/\"", quote(*s)));
                    return;
                  }
                  m.path_prefix = *s;
                }},
               {"headers", [&](const Node& value) { read_header_matches(value, m.headers); }},
           });
}

void loader::read_match_host(const Node& value, route_match& m) {
  auto s = read_name(value, "match host");
  if (!s) {
    return;
  }
  // Matching ignores the port of the Host header, so a port here could never match.
  bool bracketed = s->front() == '[';
  auto colon = s->rfind(':');
  bool has_port = bracketed ? (s->find("]:") != std::string::npos) : colon != std::string::npos;
  if (has_port) {
    add(value, fmt::format("match host {} must not include a port (the port is ignored when matching)", quote(*s)));
    return;
  }
  if (!bracketed && !valid_hostname(*s) && !looks_like_ipv4(*s)) {
    add(value, fmt::format("invalid match host {}: use letters, digits, '-' and '.'", quote(*s)));
    return;
  }
  m.host = lower(*s);
}

void loader::read_header_matches(const Node& v, std::vector<header_match>& out) {
  if (!expect(v, kind::map, "headers")) {
    return;
  }
  for (auto it = v.begin(); it != v.end(); ++it) {
    const Node key = it->first;  // copies: `it->` yields a temporary proxy
    const Node value = it->second;
    if (!expect(key, kind::scalar, "a header name")) {
      continue;
    }
    // RFC 9110 token characters: anything else could never appear in a request.
    const auto& name = key.Scalar();
    if (!is_token(name)) {
      add(key, fmt::format("invalid header name {}", quote(name)));
      continue;
    }
    std::string lowered = lower(name);
    if (std::any_of(out.begin(), out.end(), [&](const header_match& h) { return h.name == lowered; })) {
      add(key, fmt::format("header {} is matched twice", quote(name)));
      continue;
    }
    if (value.IsNull()) {
      add(key, fmt::format("header {} needs a value to match (quote it, e.g. \"1\")", quote(name)));
      continue;
    }
    if (!expect(value, kind::scalar, fmt::format("the value of header {}", quote(name)))) {
      continue;
    }
    out.push_back({std::move(lowered), value.Scalar()});
  }
}

}  // namespace spillway::config::detail
