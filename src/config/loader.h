#pragma once
// Internal to spillway_config (nothing outside src/config includes it): the loader that walks a
// config file's YAML tree once, filling a `config` and collecting every problem as file:line:col.
//
// The loader is one class whose member functions live with the section they read:
//   reader.cpp       positions, errors, read_map (unknown and repeated keys) and the typed readers
//   top_level.cpp    workers, drain_timeout, drain_delay, metrics, admin, access_log
//   listeners.cpp    listeners, their tls, routes and matches
//   upstreams.cpp    upstreams, their tls and backends
//   policies.cpp     per-upstream health_check, outlier_detection, circuit_breaker, limits,
//                    retries, timeouts and degradation
//   rate_limits.cpp  rate_limits policies and the checks of the routes and listeners using them
//   load.cpp         the public entry points (load_file, load_string, summary), the loader's
//                    driver and the checks across sections (listen-address clashes, upstream names)
// and the free functions below in:
//   values.cpp       text helpers and parsing of durations, percentages, sizes and addresses
//   suggestions.cpp  "did you mean" for misspelled keys and values
// Everything here runs on whichever thread called load_string(); nothing is shared.

#include <fmt/format.h>
#include <yaml-cpp/yaml.h>

#include <array>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <initializer_list>
#include <limits>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "config/config.h"

namespace spillway::config::detail {

using YAML::Node;

inline constexpr std::string_view default_admin_listen = "127.0.0.1:9901";
inline constexpr std::uint32_t uint32_max = std::numeric_limits<std::uint32_t>::max();

// --- values.cpp: text helpers ---

// ASCII lower case (config keys and host names; no locale).
std::string lower(std::string_view s);
bool is_digit(char c);
// True for a non-empty run of 0-9.
bool all_digits(std::string_view s);
// True for an RFC 9110 token (a header name): anything else could never appear in a request.
bool is_token(std::string_view s);
// `s` in double quotes, cut short with "..." when long, for echoing a value in a message.
std::string quote(std::string_view s);
// "a, b, c or d"
std::string one_of(const std::vector<std::string_view>& names);
// A duration the way a user would write it ("1s", "500ms", "2m").
std::string duration_text(duration d);
// Digits only: no sign, spaces or exponent. nullopt when malformed or out of range.
std::optional<std::uint64_t> parse_unsigned(std::string_view s);
// RFC 1123 host name: dot-separated labels of letters, digits and '-'.
bool valid_hostname(std::string_view host);
// Digits and dots only: meant as an IPv4 address, whether or not it is a valid one.
bool looks_like_ipv4(std::string_view host);
// True for an IP literal in 127.0.0.0/8 or ::1 (or ::ffff:127.x.y.z).
bool is_loopback(const std::string& ip);
// Empty when `path` can be opened for reading, else why not.
std::string unreadable_reason(const std::string& path);

// An IP listen address reduced to what the kernel compares when binding.
struct bind_key {
  bool v6 = false;
  std::array<unsigned char, 16> bytes{};
  std::uint16_t port = 0;
  bool wildcard = false;
};

// nullopt for a hostname (only IP literals are bound).
std::optional<bind_key> bind_key_of(const address& a);
// True when two sockets bound to `a` and `b` could not both own the port.
bool clashes(const bind_key& a, const bind_key& b);

// --- suggestions.cpp ---

// " (did you mean \"NAME\"?)" for the candidate closest to `word` when it is close enough to be the
// likely intent, else empty.
std::string did_you_mean(std::string_view word, const std::vector<std::string_view>& candidates);

// --- reader.cpp: positions of nodes ---

// yaml-cpp's 0-based mark as the 1-based one printed in errors (0:0 when unknown).
mark to_mark(const YAML::Mark& m);
// The later of two positions in the file (where an error about two conflicting keys belongs).
mark later(mark a, mark b);
// What a node is, for "must be X, got Y" messages: "an empty value", "a list", a quoted scalar...
std::string describe(const Node& n);
// True for the YAML 1.2 false (sections that `false` turns off).
bool is_false(const Node& v);

// One accepted key of a map and what to do with its value. Handlers take the value, or the key
// and the value when they need the key's position.
class field {
 public:
  template <typename Fn>
  field(std::string_view key, Fn fn) : key_(key) {
    if constexpr (std::is_invocable_v<Fn, const Node&, const Node&>) {
      fn_ = std::move(fn);
    } else {
      fn_ = [fn = std::move(fn)](const Node&, const Node& value) { fn(value); };
    }
  }

  std::string_view key() const { return key_; }
  void operator()(const Node& key, const Node& value) const { fn_(key, value); }

 private:
  std::string_view key_;
  std::function<void(const Node&, const Node&)> fn_;
};

enum class kind { map, list, scalar };

class loader {
 public:
  // `file` names the config in errors; relative paths in it are resolved against its directory.
  explicit loader(std::string file);

  // Reads `text`; the config is set only when there is no error. Call once.
  load_result load(const std::string& text);

 private:
  // Filled while reading one listener, judged once all its keys are read (listeners.cpp).
  struct listener_draft;

  // A socket the config asks for (a listener or the admin API), checked for clashes at the end.
  struct binding {
    address addr;
    mark at;
    std::string owner;
    bool explicit_in_file = false;  // false for the default admin address
  };

  // A use of an upstream's name, checked once every upstream is known.
  struct upstream_ref {
    std::string name;
    mark at;
    std::string who;
  };

  // A use of a rate limit policy's name (by a route, or by a tcp listener), checked at the end.
  struct rate_limit_ref {
    std::string name;
    mark at;
    std::string who;
    bool connections = false;  // a tcp listener's: the policy counts connections
  };

  // --- reader.cpp: errors and positions ---
  mark where(const Node& n) const;
  void add(mark m, std::string message);
  void add(const Node& n, std::string message);
  bool expect(const Node& n, kind k, std::string_view what);
  bool expect_map_or_false(const Node& v, std::string_view what);
  void read_map(const Node& map, std::string_view section, std::initializer_list<field> fields);

  // --- reader.cpp: typed readers; each reports its own error and returns nullopt on a bad value ---
  std::optional<std::string> read_string(const Node& v, std::string_view what);
  std::optional<std::string> read_name(const Node& v, std::string_view what);
  std::optional<std::uint64_t> read_uint(const Node& v, std::string_view what, std::uint64_t min, std::uint64_t max);
  std::optional<bool> read_bool(const Node& v, std::string_view what);
  std::optional<duration> read_duration(const Node& v, std::string_view what, bool allow_zero);
  std::optional<double> read_percent(const Node& v, std::string_view what, bool allow_zero);
  std::optional<std::uint64_t> read_size(const Node& v, std::string_view what);
  std::optional<address> read_address(const Node& v, std::string_view what, bool must_be_ip);
  std::optional<std::string> read_file_path(const Node& v, std::string_view what);

  template <typename Enum>
  std::optional<Enum> read_enum(const Node& v, std::string_view what,
                                const std::vector<std::pair<std::string_view, Enum>>& values) {
    if (!expect(v, kind::scalar, what)) {
      return std::nullopt;
    }
    std::vector<std::string_view> names;
    for (const auto& [name, value] : values) {
      if (name == v.Scalar()) {
        return value;
      }
      names.push_back(name);
    }
    add(v, fmt::format("unknown {} {}: expected {}{}", what, quote(v.Scalar()), one_of(names),
                       did_you_mean(v.Scalar(), names)));
    return std::nullopt;
  }

  // Field handlers that store a checked value, leaving the default in place on error.
  std::function<void(const Node&)> to_duration(duration& out, std::string_view what, bool allow_zero = false);
  std::function<void(const Node&)> to_percent(double& out, std::string_view what, bool allow_zero);
  template <typename Int>
  std::function<void(const Node&)> to_uint(Int& out, std::string_view what, std::uint64_t min, std::uint64_t max) {
    return [this, &out, what, min, max](const Node& v) {
      if (auto n = read_uint(v, what, min, max)) {
        out = static_cast<Int>(*n);
      }
    };
  }

  // --- top_level.cpp ---
  void read_top(const Node& root);
  void read_workers(const Node& v);
  void read_admin(const Node& v);
  void read_admin_token(const Node& value);
  void use_default_admin_listen();
  void read_access_log(const Node& v);
  void check_log_template(const Node& v, const std::string& format);
  void read_tracing(const Node& v);

  // --- listeners.cpp ---
  void read_listeners(const Node& v);
  void read_listener(const Node& n, std::size_t index);
  void read_listener_keys(const Node& n, listener_draft& d);
  void read_request_limit(const Node& key, const Node& v, listener_draft& d);
  void check_listener_protocol(const Node& n, listener_draft& d);
  std::optional<listener_tls> read_listener_tls(const Node& v);
  bool read_certificates(const Node& v, std::vector<tls_certificate>& out);
  void read_routes(const Node& v, std::vector<route>& out, std::vector<std::pair<std::string, mark>>& refs);
  void read_match(const Node& v, route_match& m);
  void read_match_host(const Node& value, route_match& m);
  void read_header_matches(const Node& v, std::vector<header_match>& out);

  // --- upstreams.cpp ---
  void read_upstreams(const Node& v);
  void read_upstream(const Node& n);
  void read_response_limit(const Node& key, const Node& v, upstream& up);
  std::optional<upstream_tls> read_upstream_tls(const Node& v);
  void read_backends(const Node& v, upstream& up);
  std::optional<backend> read_backend(const Node& n);

  // --- policies.cpp ---
  void read_health_check(const Node& v, health_check& hc);
  void read_http_check(const Node& v, health_check& hc);
  void read_grpc_check(const Node& v, health_check& hc);
  void read_outlier_detection(const Node& v, outlier_detection& od);
  void read_status_list(const Node& value, std::string_view what, unsigned lowest, std::vector<int>& out);
  void read_circuit_breaker(const Node& v, circuit_breaker& cb);
  void read_limits(const Node& v, limits& lim);
  void read_retries(const Node& v, retries& r);
  void read_retry_on(const Node& v, retries& r);
  void read_timeouts(const Node& v, timeouts& t);
  void read_degradation(const Node& v, degradation& d);

  // --- rate_limits.cpp ---
  void read_rate_limits(const Node& v);
  void read_rate_limit(const Node& n);
  void read_rate(const Node& v, rate_limit& rl);
  void read_shared(const Node& v, rate_limit& rl);
  void check_rate_limit_refs();

  // --- load.cpp: checks across sections, once everything is read ---
  void check_bindings();
  void check_upstream_refs();

  std::string file_;
  std::filesystem::path base_dir_;
  config cfg_;
  std::vector<error> errors_;
  // Empty values and the position of their key (see where()).
  std::vector<std::pair<Node, mark>> null_values_;
  bool admin_given_ = false;
  std::vector<binding> bindings_;
  std::map<std::string, mark> listener_names_;
  std::map<std::string, mark> upstream_names_;
  std::vector<upstream_ref> upstream_refs_;
  std::map<std::string, mark> rate_limit_names_;
  std::vector<rate_limit_ref> rate_limit_refs_;
};

}  // namespace spillway::config::detail
