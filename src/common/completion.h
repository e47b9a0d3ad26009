#pragma once

// The completion tokens the coroutines use: errors come back as the first tuple element instead of
// an exception (a closed peer is the normal case, not an exceptional one).
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/deferred.hpp>
#include <boost/asio/use_awaitable.hpp>

namespace spillway {

// An awaitable operation started through its own initiation coroutine.
inline constexpr auto nothrow = boost::asio::as_tuple(boost::asio::use_awaitable);
// The same awaited in the caller's frame (a deferred operation: no initiation coroutine), for the
// reads and writes every request makes.
inline constexpr auto nothrow_deferred = boost::asio::as_tuple(boost::asio::deferred);

}  // namespace spillway
