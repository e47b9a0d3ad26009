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

#include "common/socket_calls.h"

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/append.hpp>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/associated_cancellation_slot.hpp>
#include <boost/asio/associated_executor.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/buffer.hpp>
#include <boost/asio/detail/reactor.hpp>
#include <boost/asio/detail/reactor_op.hpp>
#include <boost/asio/error.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/recycling_allocator.hpp>

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
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
// Marks `d` as wanting EPOLLRDHUP without a system call: for the moment before an operation
// that re-arms the descriptor's registration anyway (start_op without a speculative attempt does
// one epoll_ctl with what is marked).
void mark_rdhup(descriptor d);

// The memory a read's completion touches first. When its handler resumes a coroutine (co_await of
// a deferred read, as_tuple), that is the awaitable thread's entry frame, the frame on top of its
// stack (the coroutine that awaits) and that frame's head, then the awaiting code's own state
// (named by the caller: see tls::stream::warm_on_read). After a wait among hundreds of connections
// these are cold lines, and the first ones are loaded one after the other (each address is read
// from the one before). The read's perform prefetches them all before its recv(2), whose kernel
// work the loads then overlap: about 2% less CPU per request at wrk -c256, where 255 other
// connections ran since (bench/README.md; nothing measurable at -c64).
// The addresses are found when the read starts, while the frames are hot; the caller's are for
// that read only (tls::stream hands them over once). A prefetch never faults.
using entry_frame = asio::detail::awaitable_frame<asio::detail::awaitable_thread_entry_point, asio::any_io_executor>;
inline constexpr std::size_t resume_line_count = 4;  // the frames'
inline constexpr std::size_t caller_line_count = 2;  // the caller's
void resume_lines(entry_frame* bottom, const void** lines);

template <typename Handler>
struct resumes {
  static void lines(Handler&, const void**) {}
};
template <typename Signature>
struct resumes<
    asio::detail::as_tuple_handler<asio::detail::awaitable_async_op_handler<Signature, asio::any_io_executor>>> {
  template <typename Handler>
  static void lines(Handler& h, const void** out) {
    resume_lines(h.handler_.entry_point(), out);
  }
};

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
  read_op(int fd, descriptor d, asio::mutable_buffer buf, Handler&& h, const void* const* hints)
      : reactor_op(boost::system::error_code(), &read_op::perform, &read_op::complete),
        fd(fd),
        state(d),
        buf(buf),
        handler(std::move(h)) {
    resumes<Handler>::lines(handler, warm);
    if (hints != nullptr) {
      std::copy_n(hints, caller_line_count, warm + resume_line_count);
    }
  }

  static status perform(reactor_op* base) {
    auto* self = static_cast<read_op*>(base);
    for (const void* line : self->warm) {
      if (line != nullptr) {
        __builtin_prefetch(line, 1);  // for writing: the resumption stores into the frames
      }
    }
    for (;;) {
      // MSG_DONTWAIT: the socket may not have been made non-blocking by an Asio operation yet.
      const ssize_t n = socket_calls::recv(self->fd, self->buf.data(), self->buf.size(), MSG_DONTWAIT);
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
  const void* warm[resume_line_count + caller_line_count] = {};  // prefetched by perform
};

// A TCP connect that connect(2) left under way (EINPROGRESS), completed with `handler(error_code)`
// on the socket's io_context thread. Edge-triggered epoll reports a connecting socket once, when
// the handshake ended: writable and without an error is connected (no system call); an error or
// a hang-up asks the socket which error (SO_ERROR). Asio's own connect makes a poll(2) and a
// getsockopt(2) for every connection, in case of a spurious wake-up, which a socket registered
// for EPOLLOUT only after connect(2) started cannot have (tcp_poll reports nothing while SYN_SENT).
template <typename Handler>
struct connect_op : asio::detail::reactor_op {
  connect_op(int fd, descriptor d, Handler&& h)
      : reactor_op(boost::system::error_code(), &connect_op::perform, &connect_op::complete),
        fd(fd),
        state(d),
        handler(std::move(h)) {}

  static status perform(reactor_op* base) {
    auto* self = static_cast<connect_op*>(base);
    const auto events = last_events(self->state);
    if ((events & (EPOLLERR | EPOLLHUP)) != 0) {
      int error = 0;
      socklen_t len = sizeof error;
      if (::getsockopt(self->fd, SOL_SOCKET, SO_ERROR, &error, &len) != 0) {
        error = errno;
      }
      if (error != 0) {
        self->ec_ = boost::system::error_code(error, asio::error::get_system_category());
        return done;
      }
    }
    return (events & EPOLLOUT) != 0 ? done : not_done;
  }

  // As read_op::complete.
  static void complete(void* owner, asio::detail::scheduler_operation* base, const boost::system::error_code&,
                       std::size_t) {
    auto* self = static_cast<connect_op*>(base);
    Handler h(std::move(self->handler));
    const auto ec = self->ec_;
    free_op(self);
    if (owner != nullptr) {
      std::move(h)(ec);
    }
  }

  int fd;
  descriptor state;
  Handler handler;
};

// A wait until `s` is readable (or closed, or cancelled), for an idle connection that may wait for
// minutes: socket.async_wait(wait_read, handler) with the same outcome (one epoll_ctl re-arms the
// registration, no speculative test), holding less while it pends. Asio's operation carries the
// socket's type-erased executor and the handler's work guard (about 190 bytes with a shared_ptr
// for a handler); this one is the reactor's operation and the handler, sized exactly from
// operator new (not a recycled block, see plain_allocator.h): 88 bytes. `handler(error_code)`
// runs on the socket's io_context thread; it is only destroyed when the io_context is destroyed
// with the wait pending. A socket without a reactor registration takes Asio's async_wait.
template <typename Handler>
struct wait_op : asio::detail::reactor_op {
  explicit wait_op(Handler&& h)
      : reactor_op(boost::system::error_code(), &wait_op::perform, &wait_op::complete), handler(std::move(h)) {}

  static status perform(reactor_op*) { return done; }

  // As read_op::complete.
  static void complete(void* owner, asio::detail::scheduler_operation* base, const boost::system::error_code&,
                       std::size_t) {
    auto* self = static_cast<wait_op*>(base);
    Handler h(std::move(self->handler));
    const auto ec = self->ec_;
    delete self;
    if (owner != nullptr) {
      std::move(h)(ec);
    }
  }

  Handler handler;
};

template <typename Handler>
void async_wait_readable(asio::ip::tcp::socket& s, Handler handler) {
  auto& impl = socket_access::implementation(s);
  if (!s.is_open() || impl.reactor_data_ == nullptr) {
    s.async_wait(asio::ip::tcp::socket::wait_read, std::move(handler));
    return;
  }
  auto* op = new wait_op<Handler>(std::move(handler));
  reactor_of(s).start_op(reactor::read_op, impl.socket_, impl.reactor_data_, op, false, false);
}

// Opens the closed socket `s` non-blocking with TCP_NODELAY and connects it to `ep`, completing
// with `handler(error_code)`: socket.async_connect(ep, token) with the same outcome in fewer system
// calls per connection (socket with SOCK_NONBLOCK instead of socket then ioctl; one epoll_ctl for
// EPOLLOUT and EPOLLRDHUP instead of one for each; no poll and getsockopt once connected): 5
// instead of 9 (socket, setsockopt, Asio's epoll registration, connect, one epoll_ctl re-arm).
// A handler with a connected cancellation slot or another executor than the socket's takes Asio's
// async_connect (after opening the socket with TCP_NODELAY); a socket already open is connected by
// Asio as it is.
template <typename Token>
auto async_connect_nodelay(asio::ip::tcp::socket& s, const asio::ip::tcp::endpoint& ep, Token&& token) {
  return asio::async_initiate<Token, void(boost::system::error_code)>(
      [&s](auto handler, asio::ip::tcp::endpoint ep) {
        if (s.is_open() || asio::get_associated_cancellation_slot(handler).is_connected() ||
            asio::get_associated_executor(handler, s.get_executor()) != s.get_executor()) {
          if (!s.is_open()) {
            boost::system::error_code ignored;  // async_connect reports a failed open itself
            s.open(ep.protocol(), ignored);
            s.set_option(asio::ip::tcp::no_delay(true), ignored);
          }
          s.async_connect(ep, std::move(handler));
          return;
        }
        auto fail = [&](boost::system::error_code ec) {
          asio::post(s.get_executor(), asio::append(std::move(handler), ec));
        };
        const int fd = ::socket(ep.protocol().family(), SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, IPPROTO_TCP);
        if (fd < 0) {
          fail(boost::system::error_code(errno, asio::error::get_system_category()));
          return;
        }
        const int one = 1;
        ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        boost::system::error_code ec;
        s.assign(ep.protocol(), fd, ec);  // Asio's registration with epoll
        if (ec) {
          ::close(fd);
          fail(ec);
          return;
        }
        auto& impl = socket_access::implementation(s);
        impl.state_ |= asio::detail::socket_ops::internal_non_blocking;  // so Asio makes no ioctl
        int r = 0;
        do {
          r = ::connect(fd, ep.data(), static_cast<socklen_t>(ep.size()));
        } while (r != 0 && errno == EINTR);
        if (r == 0) {
          fail({});  // connected at once
          return;
        }
        if (errno != EINPROGRESS && errno != EALREADY) {
          fail(boost::system::error_code(errno, asio::error::get_system_category()));
          return;
        }
        // No speculative attempt (a descriptor state Asio reuses may still hold its last socket's
        // events): the reactor re-arms the registration with EPOLLOUT, and EPOLLRDHUP with it (for
        // read_some_exhausting), in one epoll_ctl made while the socket is in SYN_SENT.
        mark_rdhup(impl.reactor_data_);
        auto* op = make_op<connect_op<decltype(handler)>>(fd, impl.reactor_data_, std::move(handler));
        reactor_of(s).start_op(reactor::connect_op, fd, impl.reactor_data_, op, false, false);
      },
      token, ep);
}

// socket.async_read_some(buf, token), except that a short read is marked exhausted (above).
// `cached`: the socket's reactor, looked up on the first read and kept by the caller. `hints`:
// null or caller_line_count addresses to prefetch when the read is tried (see resumes).
template <typename Token>
auto read_some_exhausting(asio::ip::tcp::socket& s, reactor*& cached, asio::mutable_buffer buf, Token&& token,
                          const void* const* hints = nullptr) {
  return asio::async_initiate<Token, void(boost::system::error_code, std::size_t)>(
      [&s, &cached, hints](auto handler, asio::mutable_buffer buf) {
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
        auto* op =
            make_op<read_op<decltype(handler)>>(impl.socket_, impl.reactor_data_, buf, std::move(handler), hints);
        cached->start_op(reactor::read_op, impl.socket_, impl.reactor_data_, op, false, true);
      },
      token, buf);
}

}  // namespace spillway::reactor_access
