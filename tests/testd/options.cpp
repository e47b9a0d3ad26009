#include "options.h"

#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstdlib>

#include <fmt/core.h>

namespace spillway::testd {

namespace {

constexpr std::string_view usage_text =
    R"(usage: spillway-testd --listen HOST:PORT [options]

An HTTP/1.1 test backend for Spillway's integration tests, chaos tests and benchmarks.

options:
  --listen HOST:PORT   address to listen on; port 0 picks a free port (required)
  --name NAME          backend name, sent as x-backend and as the default body (default testd)
  --latency DUR        delay before every answer, e.g. 250ms, 2s (default 0)
  --status N           status of the default answer (default 200)
  --error-rate P       percent of requests answered with --error-status instead (default 0)
  --error-status N     status of injected errors (default 503)
  --body-size N        answer N bytes of 'x' instead of "NAME\n" (suffixes k, m, g)
  --chunked            send the default answer with Transfer-Encoding: chunked
  --unhealthy          start with /healthz answering 503
  --threads N          worker threads, each with its own SO_REUSEPORT acceptor (default 1)
  --help               this text

Once listening it prints "listening HOST:PORT". Per-request query overrides, special paths and
/_testd/* control endpoints are described in tests/testd/README.md.
)";

[[noreturn]] void fail(std::string_view message) {
  fmt::print(stderr, "spillway-testd: {}\n", message);
  std::exit(2);
}

}  // namespace

std::optional<std::int64_t> parse_integer(std::string_view text, std::int64_t low, std::int64_t high) {
  std::int64_t value = 0;
  const char* end = text.data() + text.size();
  auto [ptr, ec] = std::from_chars(text.data(), end, value);
  if (text.empty() || ec != std::errc{} || ptr != end || value < low || value > high) {
    return std::nullopt;
  }
  return value;
}

std::optional<std::chrono::microseconds> parse_duration(std::string_view text) {
  if (text == "0") {
    return std::chrono::microseconds{0};
  }
  double number = 0;
  const char* end = text.data() + text.size();
  auto [ptr, ec] = std::from_chars(text.data(), end, number);
  if (text.empty() || ec != std::errc{} || !std::isfinite(number) || number < 0) {
    return std::nullopt;
  }
  std::string_view unit{ptr, static_cast<std::size_t>(end - ptr)};
  double scale = 0;
  if (unit == "us") {
    scale = 1;
  } else if (unit == "ms") {
    scale = 1e3;
  } else if (unit == "s") {
    scale = 1e6;
  } else if (unit == "m") {
    scale = 60e6;
  } else {
    return std::nullopt;
  }
  // Cap at a day: anything longer is a typo, and it keeps the timer arithmetic far from overflow.
  double micros = number * scale;
  if (micros > 86400e6) {
    return std::nullopt;
  }
  return std::chrono::microseconds{static_cast<std::int64_t>(std::llround(micros))};
}

std::optional<std::int64_t> parse_size(std::string_view text) {
  std::int64_t scale = 1;
  if (!text.empty()) {
    switch (text.back()) {
      case 'k':
      case 'K':
        scale = std::int64_t{1} << 10;
        break;
      case 'm':
      case 'M':
        scale = std::int64_t{1} << 20;
        break;
      case 'g':
      case 'G':
        scale = std::int64_t{1} << 30;
        break;
      default:
        break;
    }
    if (scale != 1) {
      text.remove_suffix(1);
    }
  }
  // 1 TiB is far beyond any test, and keeps value * scale from overflowing.
  auto value = parse_integer(text, 0, (std::int64_t{1} << 40) / scale);
  if (!value) {
    return std::nullopt;
  }
  return *value * scale;
}

std::optional<double> parse_percent(std::string_view text) {
  if (!text.empty() && text.back() == '%') {
    text.remove_suffix(1);
  }
  double value = 0;
  const char* end = text.data() + text.size();
  auto [ptr, ec] = std::from_chars(text.data(), end, value);
  if (text.empty() || ec != std::errc{} || ptr != end || !(value >= 0 && value <= 100)) {
    return std::nullopt;
  }
  return value;
}

std::optional<bool> parse_flag(std::string_view text) {
  if (text == "1" || text == "true") {
    return true;
  }
  if (text == "0" || text == "false") {
    return false;
  }
  return std::nullopt;
}

options parse_command_line(int argc, char** argv) {
  options result;
  bool have_listen = false;
  for (int i = 1; i < argc; ++i) {
    std::string_view arg = argv[i];
    auto value = [&]() -> std::string_view {
      if (i + 1 >= argc) {
        fail(fmt::format("{} needs a value", arg));
      }
      return argv[++i];
    };
    if (arg == "--help" || arg == "-h") {
      fmt::print("{}", usage_text);
      std::exit(0);
    } else if (arg == "--listen") {
      std::string_view text = value();
      auto colon = text.rfind(':');
      if (colon == std::string_view::npos) {
        fail("--listen wants HOST:PORT");
      }
      std::string_view host = text.substr(0, colon);
      if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
        host = host.substr(1, host.size() - 2);
      }
      auto port = parse_integer(text.substr(colon + 1), 0, 65535);
      if (host.empty() || !port) {
        fail(fmt::format("bad --listen address '{}'", text));
      }
      result.listen_host = std::string{host};
      result.listen_port = static_cast<std::uint16_t>(*port);
      have_listen = true;
    } else if (arg == "--name") {
      std::string_view text = value();
      // The name goes verbatim into a header and into JSON; keep it to token characters.
      for (char c : text) {
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '_' ||
                  c == '.' || c == ':';
        if (!ok) {
          fail("--name may only contain letters, digits and - _ . :");
        }
      }
      if (text.empty()) {
        fail("--name must not be empty");
      }
      result.name = std::string{text};
    } else if (arg == "--latency") {
      auto d = parse_duration(value());
      if (!d) {
        fail("bad --latency (want e.g. 250ms, 2s)");
      }
      result.latency = *d;
    } else if (arg == "--status") {
      auto n = parse_integer(value(), 200, 599);
      if (!n) {
        fail("bad --status (want 200..599)");
      }
      result.status = static_cast<int>(*n);
    } else if (arg == "--error-rate") {
      auto p = parse_percent(value());
      if (!p) {
        fail("bad --error-rate (want a percentage 0..100)");
      }
      result.error_rate = *p;
    } else if (arg == "--error-status") {
      auto n = parse_integer(value(), 200, 599);
      if (!n) {
        fail("bad --error-status (want 200..599)");
      }
      result.error_status = static_cast<int>(*n);
    } else if (arg == "--body-size") {
      auto n = parse_size(value());
      if (!n) {
        fail("bad --body-size (want bytes, e.g. 1024 or 64k)");
      }
      result.body_size = *n;
    } else if (arg == "--chunked") {
      result.chunked = true;
    } else if (arg == "--unhealthy") {
      result.healthy = false;
    } else if (arg == "--threads") {
      auto n = parse_integer(value(), 1, 256);
      if (!n) {
        fail("bad --threads (want 1..256)");
      }
      result.threads = static_cast<int>(*n);
    } else {
      fail(fmt::format("unknown argument '{}' (see --help)", arg));
    }
  }
  if (!have_listen) {
    fail("--listen HOST:PORT is required (see --help)");
  }
  return result;
}

runtime_settings::runtime_settings(const options& initial)
    : latency_us{initial.latency.count()},
      status{initial.status},
      error_rate_ppm{static_cast<std::uint32_t>(std::llround(initial.error_rate * 10000))},
      error_status{initial.error_status},
      body_size{initial.body_size},
      chunked{initial.chunked},
      healthy{initial.healthy} {}

}  // namespace spillway::testd
