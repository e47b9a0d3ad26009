#include "proxy/watchdog.h"

#include "common/plain_allocator.h"

#include <boost/asio/bind_allocator.hpp>

namespace spillway::proxy {

namespace asio = boost::asio;

watchdog::~watchdog() {
  if (joined_) {
    group_->leave(*this);
  }
}

bool watchdog::waiting() const {
  return group_ != nullptr ? joined_ && deadline_ != clock::time_point::max() : waiting_;
}

void watchdog::set_deadline(clock::time_point at) {
  deadline_ = at;
  dozing_ = false;
  if (group_ != nullptr) {
    if (joined_ && at != clock::time_point::max()) {
      group_->moved(at);
    }
    return;
  }
  if (waiting_) {
    // The timer sleeps until the old deadline; wake it only when the new one is earlier.
    if (at < timer_->expiry()) {
      timer_->cancel();
    }
  } else if (at != clock::time_point::max() && listener_ != nullptr && !stopped_) {
    if (auto keep = owner_.lock()) {
      arm(std::move(keep));
    }
  }
}

void watchdog::start(const std::shared_ptr<void>& keep, deadline_listener* listener) {
  listener_ = listener;
  if (group_ != nullptr) {
    group_->join(*this);
    if (deadline_ != clock::time_point::max()) {
      group_->moved(deadline_);
    }
    return;
  }
  owner_ = keep;
  if (deadline_ != clock::time_point::max()) {
    arm(keep);
  }
}

void watchdog::pass() {
  expired_ = true;
  deadline_ = clock::time_point::max();
  listener_->deadline_passed();
}

void watchdog::arm(std::shared_ptr<void> keep) {
  // A completion handler rather than a coroutine: an idle connection holds one pending timer wait
  // (a few dozen bytes) instead of a coroutine frame and its spawn state. `keep` (the owner) rides
  // along, so that the owner outlives the wait.
  waiting_ = true;
  auto at = deadline_;
  if (horizon_.count() > 0) {
    if (const auto now = clock::now(); at - now > horizon_) {
      at = now + horizon_;
    }
  }
  timer_->expires_at(at);
  // plain_allocator: the wait's memory is its own size, not a recycled block (see its header).
  timer_->async_wait(
      asio::bind_allocator(plain_allocator<void>(), [this, keep = std::move(keep)](boost::system::error_code) mutable {
        waiting_ = false;
        if (stopped_) {
          return;  // `keep` may be the owner's last reference: nothing of *this is touched after
        }
        if (clock::now() >= deadline_) {
          pass();
          if (stopped_) {
            return;
          }
        }
        // Woken to re-arm (an earlier deadline), the deadline moved later, or the next one (unless
        // the listener set it, which armed already). With no deadline, no wait: set_deadline() arms.
        if (!waiting_ && !dozing_ && deadline_ != clock::time_point::max()) {
          arm(std::move(keep));
        }
      }));
}

void watchdog::doze(clock::time_point now) {
  if (group_ != nullptr || stopped_ || deadline_ == clock::time_point::max() || deadline_ - now <= doze_margin) {
    return;
  }
  dozing_ = true;
  if (waiting_) {
    timer_->cancel();  // its completion sees dozing_ and does not re-arm
  }
}

void watchdog::swept(clock::time_point now) {
  if (!dozing_ || deadline_ - now > doze_margin) {
    return;
  }
  dozing_ = false;
  // A wait still pending (the cancelled one, not yet completed) re-arms when it completes.
  if (!waiting_ && !stopped_ && listener_ != nullptr && deadline_ != clock::time_point::max()) {
    if (auto keep = owner_.lock()) {
      arm(std::move(keep));
    }
  }
}

void watchdog::stop() {
  stopped_ = true;
  if (group_ != nullptr) {
    if (joined_) {
      group_->leave(*this);
    }
    return;
  }
  if (waiting_) {
    timer_->cancel();
  }
}

// --- deadline_group ---

deadline_group::~deadline_group() {
  // Members are gone first (a stream ends before its connection); unlink any left so that none
  // points here.
  while (head_ != nullptr) {
    leave(*head_);
  }
}

void deadline_group::join(watchdog& m) {
  if (m.joined_ || m.stopped_) {
    return;
  }
  m.joined_ = true;
  m.prev_ = nullptr;
  m.next_ = head_;
  if (head_ != nullptr) {
    head_->prev_ = &m;
  }
  head_ = &m;
  ++members_;
}

void deadline_group::leave(watchdog& m) {
  if (!m.joined_) {
    return;
  }
  (m.prev_ != nullptr ? m.prev_->next_ : head_) = m.next_;
  if (m.next_ != nullptr) {
    m.next_->prev_ = m.prev_;
  }
  m.prev_ = m.next_ = nullptr;
  m.joined_ = false;
  --members_;
  if (members_ == 0 && closed_ && waiting_) {
    timer_.cancel();  // its completion lets the owner go
  }
}

void deadline_group::close() {
  closed_ = true;
  if (members_ == 0 && waiting_) {
    timer_.cancel();
  }
}

void deadline_group::moved(clock::time_point at) {
  // A later deadline than the one the timer waits for is found when it wakes (it looks at every
  // member then); only a sooner one must wake it now.
  if (!waiting_ || at < armed_for_) {
    arm(at);
  }
}

void deadline_group::arm(clock::time_point at) {
  if (waiting_) {
    timer_.cancel();  // on_timer() re-arms for the soonest deadline
    return;
  }
  auto keep = owner_.lock();
  if (!keep) {
    return;  // the owner is going: nothing is left to enforce
  }
  waiting_ = true;
  armed_for_ = at;
  timer_.expires_at(at);
  timer_.async_wait(
      asio::bind_allocator(plain_allocator<void>(), [this, keep = std::move(keep)](boost::system::error_code) {
        waiting_ = false;
        armed_for_ = clock::time_point::max();
        on_timer();
      }));
}

void deadline_group::on_timer() {
  const auto now = clock::now();
  // A listener may stop members (any of them) or set its own next deadline: after each one told,
  // the scan starts again. A member is told once per wake-up; a deadline it sets that has passed
  // already is told at the next one (the timer is armed for it at once).
  const auto round = ++round_;
  for (;;) {
    watchdog* due = nullptr;
    for (auto* m = head_; m != nullptr; m = m->next_) {
      if (m->deadline_ <= now && m->told_ != round) {
        due = m;
        break;
      }
    }
    if (due == nullptr) {
      break;
    }
    due->told_ = round;
    due->pass();
  }
  auto soonest = clock::time_point::max();
  for (auto* m = head_; m != nullptr; m = m->next_) {
    soonest = std::min(soonest, m->deadline_);
  }
  if (soonest != clock::time_point::max() && !(members_ == 0 && closed_)) {
    moved(soonest);
  }
}

}  // namespace spillway::proxy
