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

std::tuple<boost::system::error_code, std::size_t> stream::try_write(const buffer_list& buffers) {
  if (tls_) {
    return {boost::system::error_code{}, 0};
  }
  std::array<iovec, std::tuple_size_v<decltype(buffers.at)>> iov;
  std::size_t n = 0;
  for (std::size_t i = 0; i < buffers.count; ++i) {
    if (buffers.at[i].size() > 0) {
      iov[n++] = {const_cast<void*>(buffers.at[i].data()), buffers.at[i].size()};
    }
  }
  if (n == 0) {
    return {boost::system::error_code{}, 0};
  }
  msghdr msg{};
  msg.msg_iov = iov.data();
  msg.msg_iovlen = n;
  ssize_t r = 0;
  do {
    // One buffer takes send(2): the kernel's sendmsg first copies and checks the message header
    // and the iovec array, work for nothing with one buffer.
    r = n == 1 ? ::send(socket_.native_handle(), iov[0].iov_base, iov[0].iov_len, MSG_NOSIGNAL | MSG_DONTWAIT)
               : ::sendmsg(socket_.native_handle(), &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
  } while (r < 0 && errno == EINTR);
  if (r < 0) {
    if (errno == EAGAIN || errno == EWOULDBLOCK) {
      return {boost::system::error_code{}, 0};
    }
    return {boost::system::error_code(errno, boost::system::system_category()), 0};
  }
  return {boost::system::error_code{}, static_cast<std::size_t>(r)};
}

asio::awaitable<std::tuple<boost::system::error_code, std::size_t>> stream::write_list(buffer_list buffers) {
  std::size_t total = 0;
  for (std::size_t i = 0; i < buffers.count; ++i) {
    total += buffers.at[i].size();
  }
  auto [ec, sent] = try_write(buffers);
  if (ec) {
    co_return std::tuple{ec, std::size_t{0}};
  }
  if (sent == total) {
    co_return std::tuple{boost::system::error_code{}, total};
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
  auto [wec, n] = co_await asio::async_write(*this, std::span<const asio::const_buffer>(rest.at.data(), rest.count),
                                             asio::as_tuple(asio::use_awaitable));
  co_return std::tuple{wec, sent + n};
}

bool is_eof(const boost::system::error_code& ec) {
  // A TLS peer that closed its TCP connection without a close_notify: the same end of data to a
  // relay (HTTP framing, where it matters, is checked separately).
  return ec == asio::error::eof || ec == asio::ssl::error::stream_truncated;
}

}  // namespace spillway::tls
