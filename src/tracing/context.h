#pragma once
// W3C Trace Context (https://www.w3.org/TR/trace-context/), as a proxy takes part in it:
//
//   client --traceparent: 00-T-P-01-->  Spillway (span S, child of P)  --00-T-Ti-01-->  backend
//
// A request that comes with a valid `traceparent` continues trace T, its sampled flag honoured
// whatever Spillway's own sampling says; one without (or with an invalid one) starts a new trace,
// sampled at `tracing.sample`, and its `tracestate` (which belonged to the invalid parent) is
// dropped. Spillway's request span S is the parent of every try: each try Ti has a span id of its
// own, and that is the parent the backend sees. Pure functions; any thread.

#include <array>
#include <cstdint>
#include <functional>
#include <string_view>

namespace spillway::tracing {

using trace_id = std::array<std::uint8_t, 16>;
using span_id = std::array<std::uint8_t, 8>;

// What a request carries.
struct context {
  trace_id trace{};
  span_id parent{};  // the caller's span; all zero for a trace started here
  span_id span{};    // Spillway's span for the request
  bool sampled = false;
  bool continued = false;  // a valid traceparent came in
};

inline constexpr std::size_t traceparent_size = 55;  // "00-" 32 "-" 16 "-" 2
using traceparent_text = std::array<char, traceparent_size>;

// Reads a traceparent value: version 00 exactly, or a later version (not ff) whose first four
// fields have the version 00 layout. Lower-case hex only; the all-zero trace and span ids are
// invalid. Fills out.trace, out.parent and out.sampled; false (out untouched) when invalid.
bool parse_traceparent(std::string_view value, context& out);

// The request's context: continued from `traceparent` when it is valid, else a new trace, sampled
// when `random() % 10000 < sample_percent * 100`. Spillway's span id is new either way.
context begin(std::string_view traceparent, double sample_percent, const std::function<std::uint64_t()>& random);

// A new non-zero span id.
span_id new_span(const std::function<std::uint64_t()>& random);

// "00-TRACE-SPAN-FLAGS" for the next hop, whose parent is `span`.
traceparent_text format_traceparent(const context& c, const span_id& span);

// Lower-case hex of `n` bytes into `out` (2n characters).
void to_hex(const std::uint8_t* bytes, std::size_t n, char* out);
template <std::size_t N>
std::array<char, 2 * N> hex(const std::array<std::uint8_t, N>& id) {
  std::array<char, 2 * N> out{};
  to_hex(id.data(), N, out.data());
  return out;
}

}  // namespace spillway::tracing
