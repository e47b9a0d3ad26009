#include "proxy/watchdog.h"

#include "common/plain_allocator.h"

#include <boost/asio/bind_allocator.hpp>

namespace spillway::proxy {

namespace asio = boost::asio;

void watchdog::set_deadline(clock::time_point at) {
  deadline_ = at;
  if (waiting_) {
    // The timer sleeps until the old deadline; wake it only when the new one is earlier.
    if (at < timer_.expiry()) {
      timer_.cancel();
    }
  } else if (at != clock::time_point::max() && listener_ != nullptr && !stopped_) {
    if (auto keep = owner_.lock()) {
      arm(std::move(keep));
    }
  }
}

void watchdog::start(const std::shared_ptr<void>& keep, deadline_listener* listener) {
  listener_ = listener;
  owner_ = keep;
  if (deadline_ != clock::time_point::max()) {
    arm(keep);
  }
}

void watchdog::arm(std::shared_ptr<void> keep) {
  // A completion handler rather than a coroutine: an idle connection holds one pending timer wait
  // (a few dozen bytes) instead of a coroutine frame and its spawn state. `keep` (the owner) rides
  // along, so that the owner outlives the wait.
  waiting_ = true;
  timer_.expires_at(deadline_);
  // plain_allocator: the wait's memory is its own size, not a recycled block (see its header).
  timer_.async_wait(
      asio::bind_allocator(plain_allocator<void>(), [this, keep = std::move(keep)](boost::system::error_code) mutable {
        waiting_ = false;
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
        // Woken to re-arm (an earlier deadline), the deadline moved later, or the next one (unless
        // the listener set it, which armed already). With no deadline, no wait: set_deadline() arms.
        if (!waiting_ && deadline_ != clock::time_point::max()) {
          arm(std::move(keep));
        }
      }));
}

void watchdog::stop() {
  stopped_ = true;
  if (waiting_) {
    timer_.cancel();
  }
}

}  // namespace spillway::proxy
