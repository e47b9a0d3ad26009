#include "server/control_events.h"

#include <boost/asio/post.hpp>

namespace spillway::server {

void control_events::breaker_opened(const upstream::host_ptr& h, breaker::clock::time_point until) {
  boost::asio::post(io_, [this, h, until] {
    if (stopped_) {
      return;
    }
    auto& timer = timers_[h.get()];
    if (!timer) {
      timer = std::make_unique<boost::asio::steady_timer>(io_);
    }
    timer->expires_at(until);
    timer->async_wait([this, h](boost::system::error_code ec) {
      if (ec || !h->circuit) {
        return;
      }
      if (auto t = h->circuit->poll(breaker::clock::now())) {
        h->apply(*t);
      }
      timers_.erase(h.get());
    });
  });
}

void control_events::stop() {
  stopped_ = true;
  for (auto& [h, t] : timers_) {
    t->cancel();
  }
  timers_.clear();
}

}  // namespace spillway::server
