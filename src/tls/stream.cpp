#include "tls/stream.h"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/ssl/error.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <openssl/ssl.h>

namespace spillway::tls {

namespace asio = boost::asio;

asio::awaitable<boost::system::error_code> stream::handshake(asio::ssl::stream_base::handshake_type type) {
  if (!tls_) {
    co_return boost::system::error_code{};
  }
  auto [ec] = co_await tls_->async_handshake(type, asio::as_tuple(asio::use_awaitable));
  co_return ec;
}

asio::awaitable<void> stream::shutdown_send() {
  if (!tls_) {
    boost::system::error_code ignored;
    socket_.shutdown(tcp::socket::shutdown_send, ignored);
    co_return;
  }
  // SSL_shutdown sends our close_notify and then waits for the peer's unless told it came already:
  // this sends it and completes once it is written.
  SSL_set_shutdown(tls_->native_handle(), SSL_get_shutdown(tls_->native_handle()) | SSL_RECEIVED_SHUTDOWN);
  co_await tls_->async_shutdown(asio::as_tuple(asio::use_awaitable));
  boost::system::error_code ignored;
  socket_.shutdown(tcp::socket::shutdown_send, ignored);
}

bool is_eof(const boost::system::error_code& ec) {
  // A TLS peer that closed its TCP connection without a close_notify: the same end of data to a
  // relay (HTTP framing, where it matters, is checked separately).
  return ec == asio::error::eof || ec == asio::ssl::error::stream_truncated;
}

}  // namespace spillway::tls
