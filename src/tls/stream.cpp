#include "tls/stream.h"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/ssl/error.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

#include <openssl/ssl.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include <algorithm>
#include <cerrno>
#include <span>

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

asio::awaitable<std::tuple<boost::system::error_code, std::size_t>> stream::write_list(buffer_list buffers) {
  std::size_t total = 0;
  for (std::size_t i = 0; i < buffers.count; ++i) {
    total += buffers.at[i].size();
  }
  std::size_t sent = 0;
  if (!tls_ && total > 0) {
    std::array<iovec, std::tuple_size_v<decltype(buffers.at)>> iov;
    std::size_t n = 0;
    for (std::size_t i = 0; i < buffers.count; ++i) {
      if (buffers.at[i].size() > 0) {
        iov[n++] = {const_cast<void*>(buffers.at[i].data()), buffers.at[i].size()};
      }
    }
    msghdr msg{};
    msg.msg_iov = iov.data();
    msg.msg_iovlen = n;
    ssize_t r = 0;
    do {
      r = ::sendmsg(socket_.native_handle(), &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
    } while (r < 0 && errno == EINTR);
    if (r < 0 && errno != EAGAIN && errno != EWOULDBLOCK) {
      co_return std::tuple{boost::system::error_code(errno, boost::system::system_category()), std::size_t{0}};
    }
    sent = r > 0 ? static_cast<std::size_t>(r) : 0;
    if (sent == total) {
      co_return std::tuple{boost::system::error_code{}, total};
    }
  }
  // What is left: the socket's buffer was full (the reactor waits for room), or TLS.
  std::size_t skip = sent;
  buffer_list rest;
  for (std::size_t i = 0; i < buffers.count; ++i) {
    auto b = buffers.at[i];
    const auto drop = std::min(skip, b.size());
    b += drop;
    skip -= drop;
    if (b.size() > 0) {
      rest.at[rest.count++] = b;
    }
  }
  auto [ec, n] = co_await asio::async_write(*this, std::span<const asio::const_buffer>(rest.at.data(), rest.count),
                                            asio::as_tuple(asio::use_awaitable));
  co_return std::tuple{ec, sent + n};
}

bool is_eof(const boost::system::error_code& ec) {
  // A TLS peer that closed its TCP connection without a close_notify: the same end of data to a
  // relay (HTTP framing, where it matters, is checked separately).
  return ec == asio::error::eof || ec == asio::ssl::error::stream_truncated;
}

}  // namespace spillway::tls
