#pragma once
// The few internals of Boost 1.81's epoll reactor that Spillway reaches into (the build pins that
// version): a socket's reactor registration, its reactor, and a read that tells the reactor when it
// left the socket empty.
//
// Why that read: Asio's reactor tries a socket's next read at once (a "speculative" read) unless
// the last one was marked exhausted, and Boost 1.81 marks a read exhausted only at end of file. So
// after every request or response the next read on that socket is a recv(2) that usually finds
// nothing yet (EAGAIN), and only then waits for epoll: measured with wrk -c64, 0.74 of those per
// request on the client's socket and 0.45 on the backend's. read_some_exhausting marks a read that
// returned less than it asked for as exhausted, as HAProxy does (a short read drained the socket):
// the next read waits for epoll, which (edge-triggered) reports whatever arrives after the read,
// and one that epoll reported meanwhile is tried at once (the reactor's own flag, set by the event
// under the descriptor's lock). Reads whose handler has a connected cancellation slot take Asio's
// own path (per-operation cancellation is Asio's to honour).
//
// What a short read cannot tell: a FIN (or an error) that came with the bytes it took. The event
// that reported those bytes reported it too, and nothing comes after it, so a read waiting for the
// next event would wait for ever. As HAProxy does, the socket is registered for EPOLLRDHUP (once,
// at its first such read), and a short read is marked exhausted only while the socket's last
// reported events hold no RDHUP, HUP, ERR or PRI (urgent data: recv stops before the urgent byte);
// otherwise the next read is tried at once and sees the end. (The reactor keeps a descriptor's last
// reported events with it until the next report.) The operation completes its handler on the
// reactor's thread: reads whose handler has another executor than the socket's (a strand, another
// io_context) take Asio's path too.

#include <boost/asio/associated_cancellation_slot.hpp>
#include <boost/asio/associated_executor.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/buffer.hpp>
#include <boost/asio/detail/reactor.hpp>
#include <boost/asio/detail/reactor_op.hpp>
#include <boost/asio/error.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/recycling_allocator.hpp>

#include <sys/epoll.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstdint>
#include <new>
#include <type_traits>
#include <utility>

namespace spillway::reactor_access {

namespace asio = boost::asio;
using reactor = asio::detail::reactor;
static_assert(std::is_same_v<reactor, asio::detail::epoll_reactor>, "Spillway reaches into Asio's epoll reactor");
using descriptor = reactor::per_descriptor_data;  // the reactor's state for one socket

// The events epoll last reported for `d` (kept by the reactor until the next report; a descriptor
// state the reactor reuses for a new socket starts with its last socket's, which at worst makes a
// short read tried again at once).
std::uint32_t last_events(descriptor d);
// Takes `op` out of `d`'s read queue without completing it; true if it was there (then the caller
// owns it, and the scheduler's count of outstanding work still includes it: see
// scheduler::work_finished). False if it was not queued (it completed, or the socket closed). The
// thread running the reactor's io_context.
bool withdraw_read(descriptor d, asio::detail::reactor_op* op);
// Adds EPOLLRDHUP to `d`'s registration with `r` (`fd`) unless it has it (no system call then);
// false if epoll refused. The thread running r's io_context.
bool watch_rdhup(reactor& r, descriptor d, int fd);

// Asio keeps a socket's reactor registration in the implementation of basic_socket, a protected
// member; a pointer to it formed through a derived class reaches it (no object of that class is
// ever made).
struct socket_access : asio::ip::tcp::socket {
  static auto& implementation(asio::ip::tcp::socket& s) { return (s.*(&socket_access::impl_)).get_implementation(); }
};

// The socket's reactor. use_service locks the context's registry and searches it: look it up once
// per socket.
inline reactor& reactor_of(asio::ip::tcp::socket& s) {
  return asio::use_service<reactor>(asio::query(s.get_executor(), asio::execution::context));
}

// Operations of our own come from Asio's recycling allocator, as Asio's own do: the block an
// operation frees before its handler runs is the one the handler's next operation takes, from a
// per-thread cache and not the heap (measured: one operator new and delete per read otherwise).
template <typename Op, typename... Args>
Op* make_op(Args&&... args) {
  asio::recycling_allocator<Op> alloc;
  Op* p = alloc.allocate(1);
  try {
    return ::new (static_cast<void*>(p)) Op(std::forward<Args>(args)...);
  } catch (...) {
    alloc.deallocate(p, 1);
    throw;
  }
}
template <typename Op>
void free_op(Op* op) {
  op->~Op();
  asio::recycling_allocator<Op>().deallocate(op, 1);
}

// Events after which a short read may not have emptied the socket: a FIN or an error behind the
// bytes, or urgent data (recv stops before the urgent byte with bytes queued behind it).
inline constexpr std::uint32_t ends_or_urgent = EPOLLRDHUP | EPOLLHUP | EPOLLERR | EPOLLPRI;

// One read of up to `buf.size()` bytes, completed with `handler(error_code, bytes)` on the
// socket's io_context thread.
template <typename Handler>
struct read_op : asio::detail::reactor_op {
  read_op(int fd, descriptor d, asio::mutable_buffer buf, Handler&& h)
      : reactor_op(boost::system::error_code(), &read_op::perform, &read_op::complete),
        fd(fd),
        state(d),
        buf(buf),
        handler(std::move(h)) {}

  static status perform(reactor_op* base) {
    auto* self = static_cast<read_op*>(base);
    for (;;) {
      // MSG_DONTWAIT: the socket may not have been made non-blocking by an Asio operation yet.
      const ssize_t n = ::recv(self->fd, self->buf.data(), self->buf.size(), MSG_DONTWAIT);
      if (n > 0) {
        self->bytes_transferred_ = static_cast<std::size_t>(n);
        const bool short_read = self->bytes_transferred_ < self->buf.size();
        return short_read && (last_events(self->state) & ends_or_urgent) == 0 ? done_and_exhausted : done;
      }
      if (n == 0) {
        self->ec_ = asio::error::eof;
        return done_and_exhausted;
      }
      if (errno == EINTR) {
        continue;
      }
      if (errno == EAGAIN || errno == EWOULDBLOCK) {
        return not_done;
      }
      self->ec_ = boost::system::error_code(errno, asio::error::get_system_category());
      return done;
    }
  }

  // Run with an owner when the read completed or was cancelled (the reactor sets ec_ then); without
  // one when the reactor is destroyed with the read pending (the handler is only destroyed, as
  // Asio's own operations do).
  static void complete(void* owner, asio::detail::scheduler_operation* base, const boost::system::error_code&,
                       std::size_t) {
    auto* self = static_cast<read_op*>(base);
    Handler h(std::move(self->handler));
    const auto ec = self->ec_;
    const auto n = self->bytes_transferred_;
    free_op(self);
    if (owner != nullptr) {
      std::move(h)(ec, n);
    }
  }

  int fd;
  descriptor state;
  asio::mutable_buffer buf;
  Handler handler;
};

// socket.async_read_some(buf, token), except that a short read is marked exhausted (above).
// `cached`: the socket's reactor, looked up on the first read and kept by the caller.
template <typename Token>
auto read_some_exhausting(asio::ip::tcp::socket& s, reactor*& cached, asio::mutable_buffer buf, Token&& token) {
  return asio::async_initiate<Token, void(boost::system::error_code, std::size_t)>(
      [&s, &cached](auto handler, asio::mutable_buffer buf) {
        auto& impl = socket_access::implementation(s);
        const bool ours = s.is_open() && impl.reactor_data_ != nullptr && buf.size() > 0 &&
                          !asio::get_associated_cancellation_slot(handler).is_connected() &&
                          asio::get_associated_executor(handler, s.get_executor()) == s.get_executor();
        if (ours && cached == nullptr) {
          cached = &reactor_of(s);
        }
        if (!ours || !watch_rdhup(*cached, impl.reactor_data_, impl.socket_)) {
          s.async_read_some(buf, std::move(handler));
          return;
        }
        auto* op = make_op<read_op<decltype(handler)>>(impl.socket_, impl.reactor_data_, buf, std::move(handler));
        cached->start_op(reactor::read_op, impl.socket_, impl.reactor_data_, op, false, true);
      },
      token, buf);
}

}  // namespace spillway::reactor_access
