#pragma once
// A connection's byte stream: plain TCP, or TLS over it. Sessions read and write through it without
// knowing which; it is an Asio AsyncReadStream and AsyncWriteStream, so asio::async_write works on
// it. The branch per operation costs nothing next to the system call behind it.
//
// TLS is OpenSSL straight on the non-blocking socket, as HAProxy and NGINX drive it: a read is
// SSL_read_ex made by the reactor when the socket is readable (a reactor operation of our own, like
// read_some_exhausting's), a write SSL_write_ex when it is writable; whichever way OpenSSL says it
// must wait (WANT_READ, WANT_WRITE) is the way the operation waits. OpenSSL reads from and writes to
// the socket itself (a BIO of ours: recv and send with MSG_NOSIGNAL), with SSL_MODE_RELEASE_BUFFERS,
// so an idle TLS connection holds no record buffer. Asio's ssl::stream, used before, puts a BIO pair
// and two 17 KiB buffers of its own between OpenSSL and the socket, for every connection, for its
// whole life: an idle TLS client connection held 80 KiB (HAProxy 2.6: 15.5).

#include "common/reactor_access.h"

#include <boost/asio/associated_cancellation_slot.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/buffer.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/ssl/error.hpp>
#include <boost/asio/ssl/stream_base.hpp>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include <algorithm>
#include <array>
#include <cstddef>
#include <memory>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>

namespace spillway::tls {

namespace detail {

namespace asio = boost::asio;

// What a TLS operation asks of OpenSSL, again each time the socket is ready the way it last asked.
enum class tls_call { read, write, handshake, shutdown };

// What the BIO saw of the socket, for the operation that made the OpenSSL call.
struct bio_state {
  int sys_errno = 0;        // the errno of the last failed recv or send
  bool peer_eof = false;    // a recv found the end of the peer's data
  bool drained = false;     // the last recv returned less than it asked for: the socket was empty
  bool watch_ends = false;  // the socket is registered for EPOLLRDHUP (see read_some_exhausting)
};

// The error a failed OpenSSL call means, as Asio's ssl::stream reported it (so that messages and
// is_eof() stay the same): the peer's close_notify is eof; the connection ending without one is
// stream_truncated; a failed system call its errno (`sys_errno`, kept by the BIO); anything else
// OpenSSL's own error, in Asio's ssl category.
boost::system::error_code map_error(int ssl_error, int sys_errno);

// One TLS operation on a non-blocking socket: the OpenSSL call is made by the reactor (perform),
// first at once and then whenever the socket is ready in the queue (read or write) the call last
// asked for. A call that asks for the other direction is moved to that queue (by complete(), on
// the io_context's thread). Completes `handler(error_code, bytes)` on the socket's io_context.
// The stream outlives its operations, as with Asio's ssl::stream (whose operations used it between
// their steps too): every owner keeps it alive from its handlers.
template <typename Handler>
struct tls_op : asio::detail::reactor_op {
  using reactor = reactor_access::reactor;

  // Cancels the operation when the handler's cancellation slot is signalled (awaitable operators).
  struct cancellation {
    void operator()(asio::cancellation_type_t type) {
      if (!!(type &
             (asio::cancellation_type::terminal | asio::cancellation_type::partial | asio::cancellation_type::total))) {
        op->r->cancel_ops_by_key(op->fd, op->state, op->queue, op);
      }
    }
    tls_op* op;
  };

  tls_op(SSL* ssl, bio_state* bio, int fd, reactor& r, reactor_access::descriptor& d, tls_call call, void* data,
         std::size_t size, std::string gathered, Handler&& h)
      : reactor_op(boost::system::error_code(), &tls_op::perform, &tls_op::complete),
        ssl(ssl),
        bio(bio),
        fd(fd),
        r(&r),
        state(d),
        call(call),
        data(data),
        size(size),
        gathered(std::move(gathered)),
        handler(std::move(h)) {
    if (!this->gathered.empty()) {
      this->data = this->gathered.data();
      this->size = this->gathered.size();
    }
  }

  static status perform(reactor_op* base) {
    auto* self = static_cast<tls_op*>(base);
    ERR_clear_error();
    self->bio->sys_errno = 0;
    self->bio->drained = false;
    std::size_t n = 0;
    int rc = 0;
    bool ok = false;
    switch (self->call) {
      case tls_call::read:
        rc = SSL_read_ex(self->ssl, self->data, self->size, &n);
        if (rc == 1) {
          self->bytes_transferred_ = n;
          // The socket was left empty and OpenSSL holds nothing more: the next read waits for
          // epoll instead of a recv that finds nothing (as read_some_exhausting, whose conditions
          // about a FIN behind the bytes hold here too).
          const bool exhausted = self->bio->drained && self->bio->watch_ends && SSL_has_pending(self->ssl) == 0 &&
                                 (reactor_access::last_events(self->state) & reactor_access::ends_or_urgent) == 0;
          return exhausted ? done_and_exhausted : done;
        }
        break;
      case tls_call::write:
        rc = SSL_write_ex(self->ssl, self->data, self->size, &n);
        ok = rc == 1;
        break;
      case tls_call::handshake:
        rc = SSL_do_handshake(self->ssl);
        ok = rc == 1;
        break;
      case tls_call::shutdown:
        rc = SSL_shutdown(self->ssl);
        ok = rc >= 0;  // our close_notify went (the peer's is not waited for)
        break;
    }
    if (ok) {
      self->bytes_transferred_ = n;
      return done;
    }
    const int err = SSL_get_error(self->ssl, rc);
    const int wants = err == SSL_ERROR_WANT_READ    ? reactor::read_op
                      : err == SSL_ERROR_WANT_WRITE ? reactor::write_op
                                                    : -1;
    if (wants < 0) {
      self->ec_ = map_error(err, self->bio->sys_errno);
      return done;
    }
    if (wants == self->queue) {
      return not_done;
    }
    self->move_to = wants;  // complete() moves it to the queue it wants
    return done;
  }

  // As reactor_access::read_op::complete.
  static void complete(void* owner, asio::detail::scheduler_operation* base, const boost::system::error_code&,
                       std::size_t) {
    auto* self = static_cast<tls_op*>(base);
    if (owner != nullptr && self->move_to >= 0 && !self->ec_) {
      self->queue = std::exchange(self->move_to, -1);
      self->r->start_op(self->queue, self->fd, self->state, self, true, true);
      return;
    }
    auto slot = asio::get_associated_cancellation_slot(self->handler);
    if (slot.is_connected()) {
      slot.clear();
    }
    Handler h(std::move(self->handler));
    const auto ec = self->ec_;
    const auto n = self->bytes_transferred_;
    reactor_access::free_op(self);
    if (owner != nullptr) {
      std::move(h)(ec, n);
    }
  }

  // Starts the operation in the queue of `first` (read_op or write_op).
  void start(int first) {
    queue = first;
    auto slot = asio::get_associated_cancellation_slot(handler);
    if (slot.is_connected()) {
      cancellation_key_ = this;  // what cancel_ops_by_key matches
      slot.template emplace<cancellation>(cancellation{this});
    }
    r->start_op(queue, fd, state, this, false, true);
  }

  SSL* ssl;
  bio_state* bio;
  int fd;
  reactor* r;
  reactor_access::descriptor& state;
  tls_call call;
  void* data;
  std::size_t size;
  int queue = reactor::read_op;
  int move_to = -1;
  std::string gathered;  // a write of several buffers, copied into one record's worth
  Handler handler;
};

}  // namespace detail

class stream {
 public:
  using tcp = boost::asio::ip::tcp;
  using executor_type = tcp::socket::executor_type;

  explicit stream(tcp::socket s) : socket_(std::move(s)) {}
  ~stream();
  stream(stream&&) = delete;  // OpenSSL's BIO refers to this object

  // Puts TLS over the socket, with `ctx` (which must outlive the stream). Before any I/O.
  void start_tls(boost::asio::ssl::context& ctx);

  bool is_tls() const { return ssl_ != nullptr; }
  // TLS: OpenSSL holds bytes from the peer (a record read and not yet all returned, or more read
  // than one record), which the socket will not signal again: a wait for readability would miss them.
  bool holds_bytes() const { return ssl_ != nullptr && SSL_has_pending(ssl_) == 1; }
  SSL* native_tls() { return ssl_; }
  tcp::socket& socket() { return socket_; }
  // Two addresses whose lines the reader touches first when the next read completes: prefetched
  // while the read's recv(2) runs (see reactor_access::resumes). Plain TCP reads only.
  void warm_on_read(const void* a, const void* b) { read_lines_ = {a, b}; }
  executor_type get_executor() { return socket_.get_executor(); }

  // One initiation whichever way the read goes, so that any completion token works, including
  // asio::deferred (one operation type for both branches).
  template <typename Buffers, typename Token>
  auto async_read_some(const Buffers& buffers, Token&& token) {
    return boost::asio::async_initiate<Token, void(boost::system::error_code, std::size_t)>(
        [this](auto handler, const Buffers& buffers) {
          if (ssl_) {
            auto b = first_buffer<boost::asio::mutable_buffer>(buffers);
            tls_async(detail::tls_call::read, b.data(), b.size(), std::move(handler));
          } else if constexpr (std::is_convertible_v<const Buffers&, boost::asio::mutable_buffer>) {
            // A short read tells the reactor the socket is empty (common/reactor_access.h).
            // The hints are for this read only (a pooled stream's next reader is somebody else).
            const auto hints = std::exchange(read_lines_, {});
            reactor_access::read_some_exhausting(socket_, reactor_, boost::asio::mutable_buffer(buffers),
                                                 std::move(handler), hints.data());
          } else {
            socket_.async_read_some(buffers, std::move(handler));
          }
        },
        token, buffers);
  }

  template <typename Buffers, typename Token>
  auto async_write_some(const Buffers& buffers, Token&& token) {
    if (ssl_) {
      // Several buffers (a head and a body) go as one record, as much of them as a record holds:
      // one SSL_write and one send(2) instead of one of each per buffer. A first buffer of a
      // record's worth or more goes as it is (try_write_tls makes the same choice: a record OpenSSL
      // holds is retried with the bytes it was made from).
      const auto begin = boost::asio::buffer_sequence_begin(buffers);
      const auto end = boost::asio::buffer_sequence_end(buffers);
      boost::asio::const_buffer first;
      std::size_t nonempty = 0, total = 0;
      for (auto it = begin; it != end; ++it) {
        const boost::asio::const_buffer b(*it);
        if (b.size() > 0 && nonempty++ == 0) {
          first = b;
        }
        total += b.size();
      }
      std::string gathered;
      if (nonempty > 1 && first.size() < max_record) {
        gathered.reserve(std::min(total, max_record));
        for (auto it = begin; it != end && gathered.size() < max_record; ++it) {
          const boost::asio::const_buffer b(*it);
          gathered.append(static_cast<const char*>(b.data()), std::min(b.size(), max_record - gathered.size()));
        }
      }
      return tls_async(detail::tls_call::write, const_cast<void*>(first.data()), first.size(),
                       std::forward<Token>(token), std::move(gathered));
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

    // The non-empty rest of the list once its first `n` bytes are gone.
    buffer_list after(std::size_t n) const {
      buffer_list rest;
      for (std::size_t i = 0; i < count; ++i) {
        auto b = at[i];
        const auto drop = std::min(n, b.size());
        b += drop;
        n -= drop;
        if (b.size() > 0) {
          rest.at[rest.count++] = b;
        }
      }
      return rest;
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

  // The TLS handshake (nothing on a plain stream), as a server or as a client. Returns the error, if
  // any.
  boost::asio::awaitable<boost::system::error_code> handshake(boost::asio::ssl::stream_base::handshake_type type);

  // Ends this side's sending: a FIN on plain TCP; on TLS a close_notify, sent without waiting for
  // the peer's (whatever the peer sends after it is not read).
  boost::asio::awaitable<void> shutdown_send();

  boost::asio::awaitable<std::tuple<boost::system::error_code, std::size_t>> write_list(buffer_list buffers);

  // write_all in two steps, for a hot path: start_write() makes the first, on the spot (try_write),
  // and only when the socket did not take everything does the caller await finish_write() for the
  // rest. Most heads and small answers go at once, without the coroutine frame write_all costs:
  //   auto w = stream.start_write(bufs);
  //   if (w.pending()) { co_await stream.finish_write(w); }
  //   ... w.ec, w.written
  struct write_progress {
    boost::system::error_code ec;
    std::size_t written = 0;
    buffer_list rest;  // what is left to write
    bool pending() const { return !ec && rest.count > 0; }
  };
  template <typename Buffers>
  write_progress start_write(const Buffers& buffers) {
    return start_write_list(buffer_list::of(buffers));
  }
  write_progress start_write_list(const buffer_list& list) {
    write_progress w;
    std::tie(w.ec, w.written) = try_write(list);
    if (!w.ec) {
      w.rest = list.after(w.written);
    } else {
      w.written = 0;
    }
    return w;
  }
  boost::asio::awaitable<void> finish_write(write_progress& w);

  // write_all's first step on its own, for a caller with its own loop: made on the spot, one
  // non-blocking send (one buffer) or sendmsg (several) on plain TCP, SSL_write_ex record by record
  // on TLS. Says how much went: all of it, part, or nothing (the socket's buffer is full), or the
  // error. On TLS, what is left must be written next (OpenSSL may hold its first record).
  std::tuple<boost::system::error_code, std::size_t> try_write(const buffer_list& buffers);

  void close() {
    boost::system::error_code ignored;
    socket_.close(ignored);
  }

 private:
  // The first non-empty buffer of a sequence (TLS reads and writes take one at a time, as Asio's
  // ssl::stream did).
  template <typename Buffer, typename Buffers>
  static Buffer first_buffer(const Buffers& buffers) {
    for (auto it = boost::asio::buffer_sequence_begin(buffers); it != boost::asio::buffer_sequence_end(buffers); ++it) {
      Buffer b(*it);
      if (b.size() > 0) {
        return b;
      }
    }
    return Buffer();
  }

  static constexpr std::size_t max_record = 16384;  // the plaintext one TLS record carries at most

  std::tuple<boost::system::error_code, std::size_t> try_write_tls(const buffer_list& buffers);

  template <typename Token>
  auto tls_async(detail::tls_call call, void* data, std::size_t size, Token&& token, std::string gathered = {}) {
    return boost::asio::async_initiate<Token, void(boost::system::error_code, std::size_t)>(
        [this, call, data, size](auto handler, std::string gathered) {
          this->start_tls_op(call, data, size, std::move(gathered), std::move(handler));
        },
        token, std::move(gathered));
  }

  template <typename Handler>
  void start_tls_op(detail::tls_call call, void* data, std::size_t size, std::string gathered, Handler handler) {
    auto& impl = reactor_access::socket_access::implementation(socket_);
    if (!socket_.is_open() || impl.reactor_data_ == nullptr) {
      boost::asio::post(
          socket_.get_executor(),
          boost::asio::append(std::move(handler), boost::system::error_code(boost::asio::error::bad_descriptor),
                              std::size_t{0}));
      return;
    }
    if (reactor_ == nullptr) {
      reactor_ = &reactor_access::reactor_of(socket_);
    }
    if (!bio_.watch_ends && call == detail::tls_call::read) {
      bio_.watch_ends = reactor_access::watch_rdhup(*reactor_, impl.reactor_data_, impl.socket_);
    }
    using op_type = detail::tls_op<Handler>;
    auto* op = reactor_access::make_op<op_type>(ssl_, &bio_, impl.socket_, *reactor_, impl.reactor_data_, call, data,
                                                size, std::move(gathered), std::move(handler));
    const bool sends = call == detail::tls_call::write || call == detail::tls_call::shutdown;
    op->start(sends ? reactor_access::reactor::write_op : reactor_access::reactor::read_op);
  }

  friend struct socket_bio;

  tcp::socket socket_;
  SSL* ssl_ = nullptr;  // with TLS
  detail::bio_state bio_;
  std::array<const void*, reactor_access::caller_line_count> read_lines_{};
  reactor_access::reactor* reactor_ = nullptr;  // socket_'s, once a read looked it up
};

// True for an orderly end of the peer's data: a FIN, or a TLS connection closed with or without a
// close_notify.
bool is_eof(const boost::system::error_code& ec);

}  // namespace spillway::tls
