#include "proxy/idle_watch.h"

#include "common/reactor_access.h"
#include "common/socket_calls.h"

#include <sys/socket.h>

#include <cerrno>

namespace spillway::proxy {

namespace asio = boost::asio;
using reactor = reactor_access::reactor;

using reactor_access::reactor_of;
using reactor_access::socket_access;

// The watch in the socket's read queue. It and its idle_watch point at each other until either
// ends; both live on one thread, so whichever goes first unhooks the other.
struct idle_watch_op : asio::detail::reactor_op {
  idle_watch_op(idle_watch* w, int fd, reactor& r)
      : reactor_op(boost::system::error_code(), &idle_watch_op::perform, &idle_watch_op::complete),
        watch(w),
        fd(fd),
        owner(r) {}

  // Run when epoll reported the socket since the read that emptied it (also from start(), when
  // that came before it): something arrived, or the event was one left from the response.
  static status perform(reactor_op* base) {
    auto* self = static_cast<idle_watch_op*>(base);
    char byte;
    const ssize_t n = socket_calls::recv(self->fd, &byte, 1, MSG_PEEK | MSG_DONTWAIT);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
      return not_done;
    }
    self->fired = true;  // bytes, a FIN (0) or an error: the connection is not to be reused
    return done;
  }

  // Run when the watch fired, was cancelled (stop(), the socket closed), or is destroyed with the
  // reactor (owner null).
  static void complete(void* /*owner*/, asio::detail::scheduler_operation* base, const boost::system::error_code&,
                       std::size_t) {
    auto* self = static_cast<idle_watch_op*>(base);
    if (self->watch != nullptr) {
      // Still hooked: stop() has not run, so the completion is the fire or the socket's end.
      self->watch->op_ = nullptr;
      self->watch->stirred_ = true;
    }
    reactor_access::free_op(self);
  }

  idle_watch* watch;
  int fd;
  reactor& owner;  // whose queue it is in
  bool fired = false;
};

idle_watch::~idle_watch() {
  if (op_ != nullptr) {
    op_->watch = nullptr;  // the reactor completes it when the socket closes, right after
  }
}

void idle_watch::start(asio::ip::tcp::socket& s) {
  if (op_ != nullptr || !s.is_open()) {
    return;
  }
  stirred_ = false;
  auto& impl = socket_access::implementation(s);
  if (reactor_ == nullptr) {
    // once per connection: use_service locks and searches
    reactor_ = &reactor_of(s);
    scheduler_ = &asio::use_service<asio::detail::scheduler>(asio::query(s.get_executor(), asio::execution::context));
  }
  auto& r = *reactor_;
  auto* op = reactor_access::make_op<idle_watch_op>(this, s.native_handle(), r);
  op->cancellation_key_ = op;
  op_ = op;
  // allow_speculative: the reactor runs perform() now only if epoll reported the socket since the
  // read that emptied it (a read_some_exhausting read marks the socket for no speculation);
  // otherwise the op is queued, asking the kernel nothing.
  r.start_op(reactor::read_op, impl.socket_, impl.reactor_data_, op, false, true);
}

idle_watch::state idle_watch::stop(asio::ip::tcp::socket& s) {
  if (op_ == nullptr) {
    const bool stirred = stirred_;
    stirred_ = false;
    return stirred ? state::stirred : state::off;
  }
  auto* op = op_;
  const bool fired = op->fired;  // fired and posted, its completion not run yet
  op->watch = nullptr;
  op_ = nullptr;
  stirred_ = false;
  if (fired || !s.is_open()) {
    return state::stirred;  // a closed socket aborted the watch already
  }
  auto& impl = socket_access::implementation(s);
  // Out of the read queue and freed here: cancelling it would post its completion only to free it,
  // a scheduler round per reuse. Queued, it counted as the scheduler's outstanding work.
  if (reactor_access::withdraw_read(impl.reactor_data_, op)) {
    scheduler_->work_finished();
    reactor_access::free_op(op);
    return state::quiet;
  }
  op->owner.cancel_ops_by_key(impl.socket_, impl.reactor_data_, reactor::read_op, op);  // not queued: never seen
  return state::quiet;
}

}  // namespace spillway::proxy
