#pragma once
// A connected TCP pair on loopback for tests of socket-level code: `ours` is the side under test
// (the proxy's), `theirs` the peer (a client or a backend). Both run on the given io_context.

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>

namespace spillway::test_support {

struct loopback_pair {
  explicit loopback_pair(boost::asio::io_context& io) : ours(io), theirs(io) {
    using boost::asio::ip::tcp;
    tcp::acceptor acceptor(io, tcp::endpoint(boost::asio::ip::address_v4::loopback(), 0));
    ours.connect(acceptor.local_endpoint());
    theirs = acceptor.accept();
  }
  boost::asio::ip::tcp::socket ours;
  boost::asio::ip::tcp::socket theirs;
};

}  // namespace spillway::test_support
