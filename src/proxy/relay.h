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

// How one direction ended: `from` sent its EOF (passed on), reading `from` failed (e.g. a reset),
// writing to `to` failed, or it was cut off because the streams were closed under it (by the other
// direction's failure, or a timeout). A failure closes both streams.
enum class relay_end { eof, read_failed, write_failed, aborted };

// Each chunk moved pushes `idle_deadline` to now + `idle` (the caller's watchdog enforces it) and
// adds to `*bytes` when given.
//
// Bytes go through a 16 KiB buffer. Between two plain TCP streams, with `zero_copy`, a direction
// that carries bulk data (a read fills the buffer) switches to splice(2) through a pipe: the kernel
// moves pages from one socket to the other and they never reach this process.
boost::asio::awaitable<relay_end> relay(tls::stream& from, tls::stream& to,
                                        std::chrono::steady_clock::time_point& idle_deadline,
                                        std::chrono::steady_clock::duration idle, std::uint64_t* bytes = nullptr,
                                        bool zero_copy = false);

// Moves exactly `count` bytes from `from` to `to` with splice(2), for a body of known length
// between two plain TCP streams, adding what moved to `moved`: `done`, or how it stopped short
// (`from` ended or failed, writing to `to` failed, or a stream was closed under it, e.g. by a
// deadline), or `no_pipe` when no pipe could be made, with nothing moved (the caller copies
// instead). It closes nothing: the caller decides what a failure costs.
enum class splice_result { done, truncated, read_failed, write_failed, aborted, no_pipe };
boost::asio::awaitable<splice_result> splice_exact(tls::stream& from, tls::stream& to, std::uint64_t count,
                                                   std::uint64_t& moved);

}  // namespace spillway::proxy
