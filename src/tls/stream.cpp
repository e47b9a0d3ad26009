#include "tls/stream.h"

#include "common/completion.h"
#include "common/socket_calls.h"

#include <boost/asio/ssl/error.hpp>
#include <boost/asio/write.hpp>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <new>
#include <span>

namespace spillway::tls {

namespace asio = boost::asio;

// OpenSSL reads and writes the socket through this BIO: recv and send made non-blocking (the
// socket may not be in non-blocking mode: Asio sets it lazily), send with MSG_NOSIGNAL (a peer
// gone must not raise SIGPIPE), the errno of a failed call, the peer's end and whether a read left
// the socket empty kept on the stream (detail::bio_state).
struct socket_bio {
  static BIO_METHOD* method() {
    static BIO_METHOD* const m = [] {
      BIO_METHOD* made = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "spillway socket");
      if (made == nullptr || BIO_meth_set_read_ex(made, read_ex) != 1 || BIO_meth_set_write_ex(made, write_ex) != 1 ||
          BIO_meth_set_ctrl(made, ctrl) != 1 || BIO_meth_set_create(made, create) != 1) {
        throw std::bad_alloc();
      }
      return made;
    }();
    return m;
  }

  static stream& of(BIO* b) { return *static_cast<stream*>(BIO_get_data(b)); }

  static int create(BIO* b) {
    BIO_set_init(b, 1);
    return 1;
  }

  // A recv or send that failed (not EINTR): to be retried once the socket is ready (EAGAIN), or an
  // error whose errno map_error() reports.
  static int failed(BIO* b, bool reading) {
    if (errno == EAGAIN || errno == EWOULDBLOCK) {
      if (reading) {
        BIO_set_retry_read(b);
      } else {
        BIO_set_retry_write(b);
      }
    } else {
      of(b).bio_.sys_errno = errno;
    }
    return 0;
  }

  static int read_ex(BIO* b, char* buf, std::size_t len, std::size_t* got) {
    auto& s = of(b);
    BIO_clear_retry_flags(b);
    *got = 0;
    for (;;) {
      const ssize_t n = socket_calls::recv(s.socket_.native_handle(), buf, len, MSG_DONTWAIT);
      if (n > 0) {
        *got = static_cast<std::size_t>(n);
        s.bio_.drained = *got < len;
        return 1;
      }
      if (n == 0) {
        s.bio_.peer_eof = true;
        return 0;
      }
      if (errno != EINTR) {
        return failed(b, true);
      }
    }
  }

  static int write_ex(BIO* b, const char* buf, std::size_t len, std::size_t* put) {
    auto& s = of(b);
    BIO_clear_retry_flags(b);
    *put = 0;
    for (;;) {
      const ssize_t n = socket_calls::send(s.socket_.native_handle(), buf, len, MSG_NOSIGNAL | MSG_DONTWAIT);
      if (n >= 0) {
        *put = static_cast<std::size_t>(n);
        return 1;
      }
      if (errno != EINTR) {
        return failed(b, false);
      }
    }
  }

  static long ctrl(BIO* b, int cmd, long /*num*/, void* /*ptr*/) {
    switch (cmd) {
      case BIO_CTRL_FLUSH:
        return 1;  // nothing is held back
      case BIO_CTRL_EOF:
        return of(b).bio_.peer_eof ? 1 : 0;
      default:
        return 0;
    }
  }
};

stream::~stream() {
  if (ssl_ != nullptr) {
    SSL_free(ssl_);  // and its BIO
  }
}

void stream::start_tls(asio::ssl::context& ctx) {
  ssl_ = SSL_new(ctx.native_handle());
  BIO* bio = ssl_ != nullptr ? BIO_new(socket_bio::method()) : nullptr;
  if (bio == nullptr) {
    SSL_free(ssl_);
    ssl_ = nullptr;
    throw std::bad_alloc();
  }
  BIO_set_data(bio, this);
  SSL_set_bio(ssl_, bio, bio);
  // Writes may return after part of what they were given (a record at a time) and be retried with
  // the rest from another address; the record buffers go back while nothing is pending.
  SSL_set_mode(ssl_, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER | SSL_MODE_RELEASE_BUFFERS);
  // Read what the socket has, not a record header and then its body (two recv per record).
  SSL_set_read_ahead(ssl_, 1);
}

namespace detail {

boost::system::error_code map_error(int ssl_error, int sys_errno) {
  if (ssl_error == SSL_ERROR_ZERO_RETURN) {
    return asio::error::eof;  // the peer's close_notify
  }
  const unsigned long e = ERR_get_error();
  ERR_clear_error();
  if (ssl_error == SSL_ERROR_SSL && ERR_GET_LIB(e) == ERR_LIB_SSL &&
      ERR_GET_REASON(e) == SSL_R_UNEXPECTED_EOF_WHILE_READING) {
    return asio::ssl::error::stream_truncated;
  }
  if (e != 0) {
    return boost::system::error_code(static_cast<int>(e), asio::error::get_ssl_category());
  }
  if (sys_errno != 0) {
    return boost::system::error_code(sys_errno, asio::error::get_system_category());
  }
  return asio::ssl::error::stream_truncated;  // the connection ended without a close_notify
}

}  // namespace detail

asio::awaitable<boost::system::error_code> stream::handshake(asio::ssl::stream_base::handshake_type type) {
  if (!ssl_) {
    co_return boost::system::error_code{};
  }
  if (type == asio::ssl::stream_base::client) {
    SSL_set_connect_state(ssl_);
  } else {
    SSL_set_accept_state(ssl_);
  }
  auto [ec, n] = co_await tls_async(detail::tls_call::handshake, nullptr, 0, nothrow);
  co_return ec;
}

asio::awaitable<void> stream::shutdown_send() {
  if (!ssl_) {
    boost::system::error_code ignored;
    socket_.shutdown(tcp::socket::shutdown_send, ignored);
    co_return;
  }
  // SSL_shutdown sends our close_notify and then waits for the peer's unless told it came already:
  // this sends it and completes once it is written.
  SSL_set_shutdown(ssl_, SSL_get_shutdown(ssl_) | SSL_RECEIVED_SHUTDOWN);
  co_await tls_async(detail::tls_call::shutdown, nullptr, 0, nothrow);
  boost::system::error_code ignored;
  socket_.shutdown(tcp::socket::shutdown_send, ignored);
}

std::tuple<boost::system::error_code, std::size_t> stream::try_write_tls(const buffer_list& buffers) {
  // Record by record, each from the buffers' next bytes (up to a record's worth, copied together
  // when they span buffers), until all went or OpenSSL must wait. A record OpenSSL could not send
  // whole stays with it and is not counted: the asynchronous write that follows starts at the same
  // bytes, as a retried SSL_write must.
  thread_local std::array<char, max_record> scratch;
  std::size_t total = 0;
  for (std::size_t i = 0; i < buffers.count; ++i) {
    total += buffers.at[i].size();
  }
  std::size_t sent = 0;
  while (sent < total) {
    // What is left, buffer by buffer. A first one of a record's worth or more goes as it is (OpenSSL
    // cuts it into records); smaller ones are gathered up to a record's worth (as async_write_some
    // does with the same bytes).
    const auto rest = buffers.after(sent);
    const auto& left = rest.at;
    const std::size_t count = rest.count;
    const void* data = left[0].data();
    std::size_t len = left[0].size();
    if (count > 1 && len < max_record) {
      len = 0;
      for (std::size_t i = 0; i < count && len < max_record; ++i) {
        const auto take = std::min(left[i].size(), max_record - len);
        std::memcpy(scratch.data() + len, left[i].data(), take);
        len += take;
      }
      data = scratch.data();
    }
    ERR_clear_error();
    bio_.sys_errno = 0;
    std::size_t n = 0;
    const int rc = SSL_write_ex(ssl_, data, len, &n);
    if (rc == 1) {
      sent += n;
      continue;
    }
    const int err = SSL_get_error(ssl_, rc);
    if (err == SSL_ERROR_WANT_WRITE || err == SSL_ERROR_WANT_READ) {
      break;
    }
    return {detail::map_error(err, bio_.sys_errno), sent};
  }
  return {boost::system::error_code{}, sent};
}

std::tuple<boost::system::error_code, std::size_t> stream::try_write(const buffer_list& buffers) {
  if (ssl_) {
    return try_write_tls(buffers);
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
    r = n == 1
            ? socket_calls::send(socket_.native_handle(), iov[0].iov_base, iov[0].iov_len, MSG_NOSIGNAL | MSG_DONTWAIT)
            : socket_calls::sendmsg(socket_.native_handle(), &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
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
  auto w = start_write_list(buffers);
  if (w.pending()) {
    co_await finish_write(w);
  }
  co_return std::tuple{w.ec, w.written};
}

asio::awaitable<void> stream::finish_write(write_progress& w) {
  // What is left: the socket's buffer was full (the reactor waits for room).
  auto [ec, n] =
      co_await asio::async_write(*this, std::span<const asio::const_buffer>(w.rest.at.data(), w.rest.count), nothrow);
  w.ec = ec;
  w.written += n;
  w.rest = {};
}

bool is_eof(const boost::system::error_code& ec) {
  // A TLS peer that closed its TCP connection without a close_notify: the same end of data to a
  // relay (HTTP framing, where it matters, is checked separately).
  return ec == asio::error::eof || ec == asio::ssl::error::stream_truncated;
}

}  // namespace spillway::tls
