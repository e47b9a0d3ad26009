#pragma once
// One direction of a byte tunnel (an L4 connection, or an HTTP connection after 101 Switching
// Protocols): copies until the sender's EOF, which is passed on as a half-close while the other
// direction keeps flowing, or until an error, which closes both streams so that the other
// direction ends too.

#include "tls/stream.h"

#include <boost/asio/awaitable.hpp>

#include <chrono>
#include <cstdint>

namespace spillway::proxy {

// Each chunk moved pushes `idle_deadline` to now + `idle` (the caller's watchdog enforces it) and
// adds to `*bytes` when given. Returns true when `from` ended with a clean EOF.
boost::asio::awaitable<bool> relay(tls::stream& from, tls::stream& to,
                                   std::chrono::steady_clock::time_point& idle_deadline,
                                   std::chrono::steady_clock::duration idle, std::uint64_t* bytes = nullptr);

}  // namespace spillway::proxy
