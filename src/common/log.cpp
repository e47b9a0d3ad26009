#include "common/log.h"

#include <unistd.h>

#include <chrono>
#include <ctime>

namespace spillway::log {
namespace {

std::atomic<int> min_level{static_cast<int>(level::info)};

const char* name_of(level lvl) {
  switch (lvl) {
    case level::debug:
      return "debug";
    case level::info:
      return "info ";
    case level::warn:
      return "warn ";
    case level::error:
      return "error";
  }
  return "?    ";
}

}  // namespace

void set_level(level lvl) { min_level.store(static_cast<int>(lvl), std::memory_order_relaxed); }

bool parse_level(std::string_view text, level& out) {
  if (text == "debug") {
    out = level::debug;
  } else if (text == "info") {
    out = level::info;
  } else if (text == "warn") {
    out = level::warn;
  } else if (text == "error") {
    out = level::error;
  } else {
    return false;
  }
  return true;
}

bool enabled(level lvl) { return static_cast<int>(lvl) >= min_level.load(std::memory_order_relaxed); }

void write(level lvl, std::string_view message) {
  auto now = std::chrono::system_clock::now();
  auto secs = std::chrono::system_clock::to_time_t(now);
  auto millis = std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count() % 1000;
  std::tm tm{};
  gmtime_r(&secs, &tm);
  fmt::memory_buffer line;
  fmt::format_to(std::back_inserter(line), "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z {} {}\n", tm.tm_year + 1900,
                 tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, millis, name_of(lvl), message);
  // One write per line keeps lines whole across threads; a short write to stderr is not retried.
  [[maybe_unused]] auto n = ::write(STDERR_FILENO, line.data(), line.size());
}

}  // namespace spillway::log
