#pragma once
// The validated, immutable configuration. Everything else in Spillway is built from a `config`.
// Values here are already checked: a `config` that exists is one the balancer can run.

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace spillway::config {

using duration = std::chrono::milliseconds;

// Where a value came from in the YAML file (1-based, as printed in errors).
struct mark {
  int line = 0;
  int col = 0;
};

// "ip:port" or "hostname:port". `host` is without brackets for IPv6 literals.
struct address {
  std::string host;
  std::uint16_t port = 0;
  bool is_ip = false;  // true when `host` is an IPv4/IPv6 literal (no DNS needed)
  std::string text;    // as written in the file, for logs and /status
  bool srv = false;    // "srv:_http._tcp.NAME": `host` is the SRV name, ports come from its records
};

struct tls_certificate {
  std::string cert;  // PEM path (certificate + chain), resolved against the config file's directory
  std::string key;   // PEM path
  mark cert_at;      // where each was written, for errors found when the files are read
  mark key_at;
};

struct listener_tls {
  std::vector<tls_certificate> certificates;  // one, or several chosen by SNI
  // Spillway extension: a client that has not finished its handshake by then is disconnected.
  duration handshake_timeout = std::chrono::seconds(10);
};

struct header_match {
  std::string name;   // lower-cased
  std::string value;  // exact match
};

struct route_match {
  std::optional<std::string> host;         // lower-cased, exact, port ignored when matching
  std::optional<std::string> path_prefix;  // starts with '/'
  std::vector<header_match> headers;       // all must match
};

struct route {
  route_match match;  // empty match = catch-all
  std::string upstream;
  std::string rate_limit;  // a rate_limits policy name, or empty
  mark where;
};

enum class protocol { http, tcp };

struct listener {
  std::string name;  // default: "listener_<index>" (0-based)
  address listen;
  protocol proto = protocol::http;
  std::optional<listener_tls> tls;
  std::vector<route> routes;  // http only
  std::string upstream;       // tcp only
  std::string rate_limit;     // tcp only: a rate_limits policy for new connections, or empty
  // Spillway extensions (documented in README): request size limits for http listeners.
  std::uint64_t max_request_headers = 64 * 1024;  // bytes; larger header blocks get 431
  std::uint64_t max_request_body = 0;             // bytes; 0 = unlimited; larger bodies get 413
  std::uint32_t max_request_header_fields = 100;  // header (or trailer) fields; more get 431
  // Open downstream connections (all workers); beyond it a new connection is closed at once.
  std::uint32_t max_connections = 10000;
  // Spillway extension: plain (non-TLS) L4 relays move bytes with splice(2) instead of copying.
  bool splice = true;
  // HTTP/2 on http listeners: ALPN h2 (with http/1.1) with TLS, prior knowledge without.
  bool http2 = true;
  mark where;
};

enum class balance_policy { least_request, round_robin, random, consistent_hash };

struct backend {
  address addr;
  std::uint32_t weight = 1;  // 1..1000
  bool backup = false;
  mark where;
};

struct health_check {
  bool enabled = true;  // `health_check: false` turns checks off (backends are then always healthy)
  // tcp: connect; http: GET http_path (over HTTP/2 for a protocol: http2 upstream); grpc: the
  // grpc.health.v1 Check of grpc_service (protocol: http2 upstreams only).
  enum class kind { tcp, http, grpc } type = kind::tcp;
  std::string http_path = "/healthz";
  std::string grpc_service;     // "" asks about the server as a whole
  std::optional<mark> grpc_at;  // where `grpc` was given
  std::vector<int> expect_status = {200};
  std::string http_host;  // Host header for http checks; empty = the backend's address
  duration interval = std::chrono::seconds(2);
  // Default 1s, or the interval when that is shorter (a default never contradicts the user's
  // interval); an explicit timeout longer than the interval is an error.
  duration timeout = std::chrono::seconds(1);
  std::uint32_t healthy_threshold = 2;
  std::uint32_t unhealthy_threshold = 3;
};

struct outlier_detection {
  bool enabled = true;  // `outlier_detection: false` turns it off
  std::uint32_t consecutive_failures = 5;
  duration ejection_time = std::chrono::seconds(10);
  std::uint32_t max_ejection_percent = 50;  // 0..100
};

struct circuit_breaker {
  bool enabled = true;       // `circuit_breaker: false` turns it off
  double failure_rate = 50;  // percent, (0, 100]
  duration slow_call_duration = std::chrono::seconds(2);
  double slow_call_rate = 100;  // percent, (0, 100]
  duration window = std::chrono::seconds(10);
  std::uint32_t minimum_requests = 20;
  duration open_duration = std::chrono::seconds(5);
  std::uint32_t half_open_requests = 3;
  // Spillway extension: backend statuses that count as failures (connect errors, resets and
  // timeouts always do). Empty = every 5xx; 4xx are successes unless listed.
  std::vector<int> failure_status;
};

// Per upstream, across all workers; a request over a limit gets 503 upstream_overloaded.
struct limits {
  std::uint32_t max_connections = 1024;  // open connections to its backends, idle pooled ones included
  // Requests waiting for a connection while max_connections is reached (each up to the connect
  // timeout). 0 = no queue: a request that finds no free connection gets 503 at once.
  std::uint32_t max_pending = 256;
  std::uint32_t max_requests = 1024;  // requests in flight
};

struct retries {
  std::uint32_t attempts = 2;  // extra tries; 0 turns retries off (`retries: false` too)
  bool on_connect_failure = true;
  bool on_reset = true;
  bool on_timeout = false;
  // gRPC calls (any method: the user opts in): grpc_unavailable retries an answer with grpc-status
  // 14 and a call whose backend went away before answering (what gRPC calls UNAVAILABLE);
  // grpc_resource_exhausted an answer with grpc-status 8. Only answers whose status came with their
  // head (trailers-only) can be retried: nothing has reached the client yet.
  bool on_grpc_unavailable = false;
  bool on_grpc_resource_exhausted = false;
  std::vector<int> on_status = {502, 503, 504};
  double budget = 20;  // percent of live requests
  // Spillway extension: deadline of one try (connect to last response byte); 0 = only the request
  // timeout applies. A try that passes it counts as `timeout` for `on`.
  duration per_try_timeout{0};
};

struct timeouts {
  duration connect = std::chrono::seconds(1);
  duration request = std::chrono::seconds(15);
  duration header = std::chrono::seconds(10);
  duration idle = std::chrono::seconds(60);
};

struct degradation {
  double panic_threshold = 50;  // percent; 0 turns panic mode off
  duration retry_after = std::chrono::seconds(5);
};

struct upstream_tls {
  std::string ca;   // PEM path; empty = system default verify paths
  std::string sni;  // empty = the backend's host
  mark ca_at;
  // Spillway extension: `verify: false` skips checking the backend's certificate (tests, private
  // networks). On by default.
  bool verify = true;
};

// What requests speak to an upstream's backends.
enum class upstream_protocol { http1, http2 };

struct upstream {
  std::string name;
  balance_policy balance = balance_policy::least_request;
  // http2: requests are multiplexed as streams over a few connections per backend (TLS with ALPN
  // h2, cleartext with prior knowledge), as gRPC backends want.
  upstream_protocol protocol = upstream_protocol::http1;
  mark protocol_at;
  duration dns_refresh = std::chrono::seconds(5);
  // Spillway extension: a backend that comes back (health up, ejection over) ramps from 10% to its
  // full weight over this window; 0 = off.
  duration slow_start{0};
  std::optional<upstream_tls> tls;
  std::vector<backend> backends;
  health_check health;
  outlier_detection outlier;
  circuit_breaker breaker;
  limits limit;
  retries retry;
  timeouts timeout;
  degradation degrade;
  // Spillway extension: a response head (or trailer section) bigger than this, or with more
  // fields, is the backend's protocol error (502).
  std::uint64_t max_response_headers = 64 * 1024;
  std::uint32_t max_response_header_fields = 100;
  mark where;
};

struct admin {
  address listen;  // default 127.0.0.1:9901
  mark listen_at;  // where listen was written (0:0 when defaulted)
  // Optional bearer token: `token_file` is read when the config is loaded (at start and at every
  // reload); `token` is its content without trailing whitespace. Empty = no token required.
  std::string token_file;
  std::string token;
  mark token_file_at;
  // Spillway extension (`open_probes: true`): GET/HEAD /ready and /live answer without the token,
  // for probes that cannot send one (kubelet). Off by default: with a token, every request needs it.
  bool open_probes = false;
};

// The fields an access log line can carry ({name} in a template; every one in "json").
inline constexpr const char* access_log_fields[] = {
    "time",     "client",  "listener", "route",      "method",      "path",       "host",        "status",
    "upstream", "backend", "bytes_in", "bytes_out",  "duration_ms", "connect_ms", "upstream_ms", "tries",
    "retries",  "reason",  "flags",    "request_id", "tls",         "trace_id"};

// Spillway extension: one line per request (off unless configured).
struct access_log {
  std::string path;             // a file (appended to), or "-" for standard output
  std::string format = "json";  // "json", or a template with {field} placeholders
  double sample = 100;          // percent of requests logged
  mark format_at;
};

// W3C Trace Context and span export (`tracing`). Without the section, traceparent and tracestate
// pass through untouched like any header.
struct tracing_config {
  double sample = 1;  // percent of new traces (no sampled traceparent came in) that are sampled
  // OTLP/HTTP (JSON) collector: "http://HOST:PORT/PATH"; spans are only counted without one.
  std::optional<address> otlp;
  std::string otlp_path = "/v1/traces";
  std::string otlp_text;  // as written
  std::string service_name = "spillway";
  std::uint32_t max_queue = 8192;  // spans waiting for export; beyond it they are dropped (counted)
  mark where;
};

// A rate limit policy (`rate_limits`), referenced by name from routes and tcp listeners. A
// generic cell rate algorithm: one request every `period / count` on average, `burst` at once.
struct rate_limit {
  enum class key_kind { client_ip, header, route, global };
  std::string name;
  key_kind key = key_kind::client_ip;  // client_ip: IPv4 address, IPv6 /64
  std::string header;                  // key: header:NAME (lower-cased)
  std::uint64_t count = 0;             // `rate: COUNT/UNIT`
  duration period = std::chrono::seconds(1);
  std::uint64_t burst = 0;          // default: the rate per second, rounded up (at least 1)
  bool dry_run = false;             // count what would be limited, limit nothing
  std::uint64_t max_keys = 100000;  // keys remembered; beyond it the least useful are evicted
  std::string rate_text;            // as written ("100/s"), for /status and logs
  // `shared: redis://HOST:PORT`: one budget across every Spillway naming this Redis.
  std::optional<address> shared;
  enum class unavailable { local, allow, deny };
  unavailable on_unavailable = unavailable::local;  // Redis down or slower than shared_timeout
  duration shared_timeout{5};                       // per call to Redis
  mark where;
};

struct config {
  std::string path;      // the file it was loaded from (as given on the command line)
  unsigned workers = 0;  // 0 = auto (number of CPUs)
  duration drain_timeout = std::chrono::seconds(10);
  // On SIGTERM/SIGINT, GET /ready answers 503 at once but the listeners keep accepting and serving
  // for this long before the drain (drain_timeout) begins: time for a load balancer or Kubernetes
  // to take the instance out of rotation. 0 = drain at once.
  duration drain_delay{0};
  admin admin_api;
  // Spillway extension: `metrics: false` stops per-request counting (status classes, bytes,
  // latency histograms); only there to measure what counting costs. Gauges the balancer needs stay.
  bool metrics = true;
  std::optional<struct access_log> access_log;
  std::vector<listener> listeners;
  std::vector<upstream> upstreams;
  std::vector<rate_limit> rate_limits;
  std::optional<tracing_config> tracing;

  // Returns the upstream with that name, or nullptr.
  const upstream* find_upstream(const std::string& name) const;
};

// One problem found in a config file, printed as `FILE:LINE:COL: message`.
struct error {
  std::string file;
  int line = 0;
  int col = 0;
  std::string message;

  std::string str() const;
};

struct load_result {
  std::optional<config> cfg;  // set only when `errors` is empty
  std::vector<error> errors;  // every problem found, in file order
};

// Parses and validates a config file. Never throws. Any thread may call it.
load_result load_file(const std::string& path);

// Same, for text already in memory; `file` is the name used in errors (and the base for relative
// certificate paths).
load_result load_string(const std::string& text, const std::string& file);

// "250ms", "2s", "1m", "1h" (a number, which may have a fraction, and a unit). nullopt when malformed.
std::optional<duration> parse_duration(const std::string& text);

// "50%" -> 50. nullopt when malformed or outside [0, 100].
std::optional<double> parse_percent(const std::string& text);

// "ip:port", "[v6]:port" or "host:port". nullopt when malformed; `why` says what is wrong.
std::optional<address> parse_address(const std::string& text, std::string* why = nullptr);

// "SCHEME://HOST[:PORT][/PATH]" of a service Spillway talks to (a shared rate limit's Redis, a
// tracing collector): `default_port` when none is written (0: one must be); a path only where
// `path` is given (set to it, or to "" without one). Never a user, a query or a DNS SRV name.
// nullopt when malformed; `why` says what is wrong.
std::optional<address> parse_service_url(std::string_view text, std::string_view scheme, std::uint16_t default_port,
                                         std::string* path, std::string* why);

// Bytes with an optional unit: "65536", "64k"/"64KiB", "10m"/"10MiB", "1g"/"1GiB". nullopt when malformed.
std::optional<std::uint64_t> parse_size(const std::string& text);

// One-line summary of a valid config, printed by `spillway validate`.
std::string summary(const config& cfg);

// What applying `new_cfg` over a running `old_cfg` would change, one line each (listeners, routes,
// upstreams, backends, and whether each backend's state is kept or reset). Empty when nothing.
std::vector<std::string> diff(const config& old_cfg, const config& new_cfg);

// Settings whose change makes a backend start over (its health, ejection and breaker state reset).
bool same_health_check(const health_check& a, const health_check& b);
bool same_breaker(const circuit_breaker& a, const circuit_breaker& b);
// The rate limit policy named `name`, or nullptr.
const rate_limit* find_rate_limit(const config& cfg, const std::string& name);
// True when two policies give the same budgets (key, rate, burst, max_keys): a reload keeps the
// budgets clients have used. dry_run may differ.
bool same_rate_limit_budget(const rate_limit& a, const rate_limit& b);

}  // namespace spillway::config
