#pragma once
// What workers report about hosts, routed to the control thread: outlier reports to the outlier
// detector, opened breakers to a timer that moves them to half-open when their time is up (so that
// a breaker nobody sends traffic to does not stay open).

#include "health/outlier_detector.h"
#include "upstream/events.h"

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>

#include <memory>
#include <unordered_map>

namespace spillway::server {

class control_events final : public upstream::host_events {
 public:
  control_events(boost::asio::io_context& io, health::outlier_detector& outlier) : io_(io), outlier_(outlier) {}

  void consecutive_failures_reached(const upstream::host_ptr& h, const config::outlier_detection& cfg) override {
    outlier_.report(h, cfg);
  }

  void breaker_opened(const upstream::host_ptr& h, breaker::clock::time_point until) override;

  // Cancels pending breaker timers. Control thread.
  void stop();

 private:
  boost::asio::io_context& io_;
  health::outlier_detector& outlier_;
  std::unordered_map<const upstream::host*, std::unique_ptr<boost::asio::steady_timer>> timers_;
  bool stopped_ = false;
};

}  // namespace spillway::server
