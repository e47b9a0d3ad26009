#pragma once

// Command line and runtime settings of spillway-testd, and the value parsers shared by the command
// line, the query-string overrides and /_testd/set (so "250ms" means the same thing everywhere).

#include <atomic>
#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace spillway::testd {

// Sentinel for body_size: answer "NAME\n" instead of N bytes of 'x'.
inline constexpr std::int64_t name_body = -1;

struct options {
  std::string listen_host = "127.0.0.1";
  std::uint16_t listen_port = 0;
  std::string name = "testd";
  std::chrono::microseconds latency{0};
  int status = 200;
  double error_rate = 0;  // percent, 0..100
  int error_status = 503;
  std::int64_t body_size = name_body;
  bool chunked = false;
  bool healthy = true;
  int threads = 1;
};

// Parses argv. On --help prints usage and exits 0; on a bad argument prints one line to stderr and
// exits 2, because a test harness should fail loudly rather than run a backend it did not ask for.
options parse_command_line(int argc, char** argv);

// "250ms", "2s", "1.5s", "1m", "100us", or "0". Returns nullopt when malformed or negative.
std::optional<std::chrono::microseconds> parse_duration(std::string_view text);

// Decimal byte count with an optional binary suffix: "1000", "16k", "4m", "2g" (KiB, MiB, GiB).
std::optional<std::int64_t> parse_size(std::string_view text);

// A plain decimal integer in [low, high].
std::optional<std::int64_t> parse_integer(std::string_view text, std::int64_t low, std::int64_t high);

// A percentage in [0, 100]; "12.5" and "12.5%" are both accepted.
std::optional<double> parse_percent(std::string_view text);

// "0"/"1" (also "false"/"true").
std::optional<bool> parse_flag(std::string_view text);

// The defaults that /_testd/set may change while requests are in flight. Every field is a relaxed
// atomic read once per request: a request that races a change sees either the old or the new value
// of each field, which is all a test can observe anyway.
struct runtime_settings {
  explicit runtime_settings(const options& initial);

  std::atomic<std::int64_t> latency_us;
  std::atomic<int> status;
  std::atomic<std::uint32_t> error_rate_ppm;  // parts per million, so the hot path compares integers
  std::atomic<int> error_status;
  std::atomic<std::int64_t> body_size;
  std::atomic<bool> chunked;
  std::atomic<bool> healthy;
};

// Counters of one worker thread; only that thread increments them, readers sum over workers.
// Aligned so that workers never share a cache line.
struct alignas(64) worker_stats {
  std::atomic<std::uint64_t> requests{0};
  std::atomic<std::uint64_t> healthz_requests{0};
  std::atomic<std::uint64_t> errors_injected{0};
  std::atomic<std::uint64_t> connections_accepted{0};
  std::atomic<std::int64_t> connections_active{0};
};

}  // namespace spillway::testd
