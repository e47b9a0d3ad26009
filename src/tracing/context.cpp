#include "tracing/context.h"

#include <algorithm>

namespace spillway::tracing {

namespace {

int hex_value(char c) {
  if (c >= '0' && c <= '9') {
    return c - '0';
  }
  if (c >= 'a' && c <= 'f') {
    return c - 'a' + 10;
  }
  return -1;  // upper case is invalid too (the spec's HEXDIGLC)
}

template <std::size_t N>
bool read_hex(std::string_view s, std::array<std::uint8_t, N>& out) {
  if (s.size() != 2 * N) {
    return false;
  }
  for (std::size_t i = 0; i < N; ++i) {
    const int hi = hex_value(s[2 * i]);
    const int lo = hex_value(s[2 * i + 1]);
    if (hi < 0 || lo < 0) {
      return false;
    }
    out[i] = static_cast<std::uint8_t>(hi * 16 + lo);
  }
  return true;
}

template <std::size_t N>
bool all_zero(const std::array<std::uint8_t, N>& a) {
  return std::all_of(a.begin(), a.end(), [](std::uint8_t b) { return b == 0; });
}

template <std::size_t N>
void fill_random(std::array<std::uint8_t, N>& out, const std::function<std::uint64_t()>& random) {
  do {
    for (std::size_t i = 0; i < N; i += 8) {
      const std::uint64_t r = random();
      for (std::size_t j = 0; j < 8 && i + j < N; ++j) {
        out[i + j] = static_cast<std::uint8_t>(r >> (8 * j));
      }
    }
  } while (all_zero(out));
}

}  // namespace

bool parse_traceparent(std::string_view v, context& out) {
  // version "-" trace-id "-" parent-id "-" trace-flags
  if (v.size() < traceparent_size || v[2] != '-' || v[35] != '-' || v[52] != '-') {
    return false;
  }
  std::array<std::uint8_t, 1> version{};
  std::array<std::uint8_t, 1> flags{};
  trace_id trace{};
  span_id parent{};
  if (!read_hex(v.substr(0, 2), version) || version[0] == 0xff || !read_hex(v.substr(3, 32), trace) ||
      !read_hex(v.substr(36, 16), parent) || !read_hex(v.substr(53, 2), flags) || all_zero(trace) || all_zero(parent)) {
    return false;
  }
  // Version 00 is exactly 55 characters; a later one may append fields after a '-'.
  if (v.size() > traceparent_size && (version[0] == 0 || v[traceparent_size] != '-')) {
    return false;
  }
  out.trace = trace;
  out.parent = parent;
  out.sampled = (flags[0] & 1) != 0;
  return true;
}

context begin(std::string_view traceparent, double sample_percent, const std::function<std::uint64_t()>& random) {
  context c;
  if (!traceparent.empty() && parse_traceparent(traceparent, c)) {
    c.continued = true;
  } else {
    fill_random(c.trace, random);
    c.sampled = sample_percent >= 100 || static_cast<double>(random() % 10000) < sample_percent * 100;
  }
  c.span = new_span(random);
  return c;
}

span_id new_span(const std::function<std::uint64_t()>& random) {
  span_id s{};
  fill_random(s, random);
  return s;
}

void to_hex(const std::uint8_t* bytes, std::size_t n, char* out) {
  constexpr char digits[] = "0123456789abcdef";
  for (std::size_t i = 0; i < n; ++i) {
    out[2 * i] = digits[bytes[i] >> 4];
    out[2 * i + 1] = digits[bytes[i] & 15];
  }
}

traceparent_text format_traceparent(const context& c, const span_id& span) {
  traceparent_text out{};
  out[0] = '0';
  out[1] = '0';
  out[2] = '-';
  to_hex(c.trace.data(), c.trace.size(), out.data() + 3);
  out[35] = '-';
  to_hex(span.data(), span.size(), out.data() + 36);
  out[52] = '-';
  out[53] = '0';
  out[54] = c.sampled ? '1' : '0';
  return out;
}

}  // namespace spillway::tracing
