#pragma once
// A connection's byte stream: plain TCP, or TLS over it. Sessions read and write through it without
// knowing which; it is an Asio AsyncReadStream and AsyncWriteStream, so asio::async_write works on
// it. The branch per operation costs nothing next to the system call behind it.

#include "common/reactor_access.h"

#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/stream.hpp>

#include <array>
#include <cstddef>
#include <memory>
#include <tuple>
#include <type_traits>
#include <utility>

namespace spillway::tls {

class stream {
 public:
  using tcp = boost::asio::ip::tcp;
  using executor_type = tcp::socket::executor_type;
  using tls_stream = boost::asio::ssl::stream<tcp::socket&>;

  explicit stream(tcp::socket s) : socket_(std::move(s)) {}
  stream(stream&&) = delete;  // the TLS layer refers to socket_

  // Puts TLS over the socket, with `ctx` (which must outlive the stream). Before any I/O.
  void start_tls(boost::asio::ssl::context& ctx) { tls_ = std::make_unique<tls_stream>(socket_, ctx); }

  bool is_tls() const { return tls_ != nullptr; }
  SSL* native_tls() { return tls_ ? tls_->native_handle() : nullptr; }
  tcp::socket& socket() { return socket_; }
  executor_type get_executor() { return socket_.get_executor(); }

  template <typename Buffers, typename Token>
  auto async_read_some(const Buffers& buffers, Token&& token) {
    if (tls_) {
      return tls_->async_read_some(buffers, std::forward<Token>(token));
    }
    if constexpr (std::is_convertible_v<const Buffers&, boost::asio::mutable_buffer>) {
      // A short read tells the reactor the socket is empty (common/reactor_access.h).
      return reactor_access::read_some_exhausting(socket_, reactor_, boost::asio::mutable_buffer(buffers),
                                                  std::forward<Token>(token));
    } else {
      return socket_.async_read_some(buffers, std::forward<Token>(token));
    }
  }

  template <typename Buffers, typename Token>
  auto async_write_some(const Buffers& buffers, Token&& token) {
    if (tls_) {
      return tls_->async_write_some(buffers, std::forward<Token>(token));
    }
    return socket_.async_write_some(buffers, std::forward<Token>(token));
  }

  // Up to this many buffers, written together (a head, a chunk-size line, a body, a CRLF, ...).
  struct buffer_list {
    std::array<boost::asio::const_buffer, 6> at{};
    std::size_t count = 0;

    template <typename Buffers>
    static buffer_list of(const Buffers& buffers) {
      buffer_list l;
      if constexpr (std::is_convertible_v<const Buffers&, boost::asio::const_buffer>) {
        l.at[l.count++] = boost::asio::const_buffer(buffers);
      } else {
        static_assert(std::tuple_size_v<Buffers> <= std::tuple_size_v<decltype(at)>);
        for (const auto& b : buffers) {
          l.at[l.count++] = boost::asio::const_buffer(b);
        }
      }
      return l;
    }
  };
  // Writes all of `buffers` (a buffer, or a std::array of at most six) and says how much went: on
  // plain TCP first with one non-blocking sendmsg made on the spot, then, for whatever the socket
  // did not take (or on TLS), with Asio's composed write. A write the socket takes whole (nearly
  // every head and small answer) costs that one system call: no reactor operation, no completion
  // posted and run later, no allocation. One writer at a time, as for any stream. Coroutines.
  template <typename Buffers>
  boost::asio::awaitable<std::tuple<boost::system::error_code, std::size_t>> write_all(const Buffers& buffers) {
    return write_list(buffer_list::of(buffers));
  }

  // The TLS handshake (nothing on a plain stream). Returns the error, if any.
  boost::asio::awaitable<boost::system::error_code> handshake(boost::asio::ssl::stream_base::handshake_type type);

  // Ends this side's sending: a FIN on plain TCP; on TLS a close_notify, sent without waiting for
  // the peer's (whatever the peer sends after it is not read).
  boost::asio::awaitable<void> shutdown_send();

  boost::asio::awaitable<std::tuple<boost::system::error_code, std::size_t>> write_list(buffer_list buffers);

  // write_all's first step on its own, for a caller with its own loop: one non-blocking send (one
  // buffer) or sendmsg (several) made on the spot, on plain TCP. Says how much the socket took:
  // all of it, part, or nothing (its buffer is full; and always nothing on TLS), or the error.
  std::tuple<boost::system::error_code, std::size_t> try_write(const buffer_list& buffers);

  void close() {
    boost::system::error_code ignored;
    socket_.close(ignored);
  }

 private:
  tcp::socket socket_;
  std::unique_ptr<tls_stream> tls_;
  reactor_access::reactor* reactor_ = nullptr;  // socket_'s, once a plain read looked it up
};

// True for an orderly end of the peer's data: a FIN, or a TLS connection closed with or without a
// close_notify.
bool is_eof(const boost::system::error_code& ec);

}  // namespace spillway::tls
