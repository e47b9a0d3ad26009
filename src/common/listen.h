#pragma once
// Listening sockets as Spillway binds them: SO_REUSEADDR and SO_REUSEPORT, so that every worker
// (and a new process during a zero-downtime restart) can bind the same address and the kernel
// spreads new connections over them.

#include <boost/asio/ip/tcp.hpp>

namespace spillway {

// Opens `acceptor` for `endpoint`'s protocol, sets both options and binds. Does not listen.
// Returns the first error. Any thread.
boost::system::error_code open_and_bind(boost::asio::ip::tcp::acceptor& acceptor,
                                        const boost::asio::ip::tcp::endpoint& endpoint);

}  // namespace spillway
