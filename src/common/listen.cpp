#include "common/listen.h"

#include <sys/socket.h>

#include <cerrno>

namespace spillway {

boost::system::error_code open_and_bind(boost::asio::ip::tcp::acceptor& acceptor,
                                        const boost::asio::ip::tcp::endpoint& endpoint) {
  boost::system::error_code ec;
  acceptor.open(endpoint.protocol(), ec);
  if (!ec) {
    acceptor.set_option(boost::asio::ip::tcp::acceptor::reuse_address(true), ec);
  }
  if (!ec) {
    int one = 1;
    if (::setsockopt(acceptor.native_handle(), SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) != 0) {
      ec = boost::system::error_code(errno, boost::system::system_category());
    }
  }
  if (!ec) {
    acceptor.bind(endpoint, ec);
  }
  return ec;
}

}  // namespace spillway
