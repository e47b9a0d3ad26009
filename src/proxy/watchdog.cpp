#include "proxy/watchdog.h"

#include "common/plain_allocator.h"

#include <boost/asio/bind_allocator.hpp>

namespace spillway::proxy {

namespace asio = boost::asio;

void watchdog::set_deadline(clock::time_point at) {
  deadline_ = at;
  // The timer sleeps until the old deadline; wake it only when the new one is earlier.
  if (at < timer_.expiry()) {
    timer_.cancel();
  }
}

void watchdog::start(std::shared_ptr<void> keep, deadline_listener* listener) {
  listener_ = listener;
  arm(std::move(keep));
}

void watchdog::arm(std::shared_ptr<void> keep) {
  // A completion handler rather than a coroutine: an idle connection holds one pending timer wait
  // (a few dozen bytes) instead of a coroutine frame and its spawn state. `keep` (the owner) rides
  // along, so that the owner outlives the wait.
  timer_.expires_at(deadline_);
  // plain_allocator: the wait's memory is its own size, not a recycled block (see its header).
  timer_.async_wait(
      asio::bind_allocator(plain_allocator<void>(), [this, keep = std::move(keep)](boost::system::error_code) mutable {
        if (stopped_) {
          return;  // `keep` may be the owner's last reference: nothing of *this is touched after
        }
        if (clock::now() >= deadline_) {
          expired_ = true;
          deadline_ = clock::time_point::max();
          listener_->deadline_passed();
          if (stopped_) {
            return;
          }
        }
        // Woken to re-arm (an earlier deadline), the deadline moved later, or the next one.
        arm(std::move(keep));
      }));
}

void watchdog::stop() {
  stopped_ = true;
  timer_.cancel();
}

}  // namespace spillway::proxy
