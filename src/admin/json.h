#pragma once
// The two bits of JSON that the admin renderers share. Pure; any thread.

#include <chrono>
#include <string>
#include <string_view>

namespace spillway::admin {

// `s` as a JSON string, quotes included: quote, backslash and control characters escaped; other
// bytes (UTF-8 included) copied as they are.
std::string json_string(std::string_view s);

// `t` in UTC with milliseconds: "2024-05-01T12:00:00.123Z".
std::string iso8601(std::chrono::system_clock::time_point t);

}  // namespace spillway::admin
