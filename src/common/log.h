#pragma once
// Logging: one line per event on stderr, written with a single write(2) so that lines from
// different threads never interleave. Any thread may call these.

#include <fmt/format.h>

#include <atomic>
#include <string_view>
#include <utility>

namespace spillway::log {

enum class level { debug = 0, info = 1, warn = 2, error = 3 };

// Sets the lowest level that is written (default info).
void set_level(level lvl);

// Parses "debug" | "info" | "warn" | "error"; returns false when unknown.
bool parse_level(std::string_view text, level& out);

bool enabled(level lvl);

// Writes one line: "2026-11-22T08:30:00.123Z info  message".
void write(level lvl, std::string_view message);

template <typename... Args>
void debug(fmt::format_string<Args...> format, Args&&... args) {
  if (enabled(level::debug)) {
    write(level::debug, fmt::format(format, std::forward<Args>(args)...));
  }
}

template <typename... Args>
void info(fmt::format_string<Args...> format, Args&&... args) {
  if (enabled(level::info)) {
    write(level::info, fmt::format(format, std::forward<Args>(args)...));
  }
}

template <typename... Args>
void warn(fmt::format_string<Args...> format, Args&&... args) {
  if (enabled(level::warn)) {
    write(level::warn, fmt::format(format, std::forward<Args>(args)...));
  }
}

template <typename... Args>
void error(fmt::format_string<Args...> format, Args&&... args) {
  if (enabled(level::error)) {
    write(level::error, fmt::format(format, std::forward<Args>(args)...));
  }
}

}  // namespace spillway::log
