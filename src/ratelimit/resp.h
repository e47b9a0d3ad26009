#pragma once
// RESP2, the Redis protocol, as much of it as a rate limit needs: commands out as arrays of bulk
// strings, and replies in (simple strings, errors, integers, bulk strings, arrays, nulls), parsed
// from a buffer that may hold part of a reply, several, or garbage. Bounded: a reply nests at
// most `max_depth` arrays of at most `max_items` items, and a string is at most `max_string`
// bytes; beyond that (or on anything malformed) the connection is beyond repair. Pure; any thread.

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace spillway::ratelimit::resp {

inline constexpr std::size_t max_depth = 4;
inline constexpr std::size_t max_items = 64;
inline constexpr std::size_t max_string = 64 * 1024;

struct value {
  enum class kind { simple, error, integer, bulk, null, array };
  kind type = kind::null;
  std::string text;  // simple, error, bulk
  std::int64_t number = 0;
  std::vector<value> items;  // array
};

enum class status { done, incomplete, malformed };

// Parses the reply at the start of `in`: `done` with `consumed` bytes and `out`, or `incomplete`
// (wait for more bytes), or `malformed`.
status parse(std::string_view in, std::size_t& consumed, value& out);

// Appends `args` as one command (an array of bulk strings).
void append_command(std::string& out, const std::vector<std::string_view>& args);

}  // namespace spillway::ratelimit::resp
