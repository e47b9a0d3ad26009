#pragma once
// One deadline, enforced by a timer: when it passes, the listener's deadline_passed() runs (once
// per deadline set). A downstream connection has one (idle, header, connect and request
// deadlines, see downstream.h); so has each HTTP/2 stream, whose request has deadlines of its own
// while its connection lives on. upstream_attempt sets the connect and per-try deadlines on the
// watchdog of the request it serves.

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>

#include <chrono>
#include <memory>

namespace spillway::proxy {

class deadline_listener {
 public:
  // The deadline passed. Worker thread.
  virtual void deadline_passed() = 0;

 protected:
  ~deadline_listener() = default;
};

class watchdog {
 public:
  using clock = std::chrono::steady_clock;

  explicit watchdog(boost::asio::io_context& io) : timer_(io) {}
  watchdog(const watchdog&) = delete;
  watchdog& operator=(const watchdog&) = delete;

  // Sets the one deadline; the listener is told once it passes, then the watchdog waits for the
  // next deadline set. Worker thread.
  void set_deadline(clock::time_point at);
  clock::time_point& deadline() { return deadline_; }  // relays push it forward as bytes move
  // Set when the deadline passed, until clear_expired().
  bool expired() const { return expired_; }
  void clear_expired() { expired_ = false; }

  // Watches the deadline until stop(), telling `listener` and keeping `keep` (which owns the
  // listener) alive while a deadline is pending. Worker thread.
  void start(const std::shared_ptr<void>& keep, deadline_listener* listener);
  // Ends the watch. Worker thread.
  void stop();

  // A timer wait is pending (a deadline is set, or one was and its wait has not ended yet).
  bool waiting() const { return waiting_; }

 private:
  void arm(std::shared_ptr<void> keep);

  boost::asio::steady_timer timer_;
  deadline_listener* listener_ = nullptr;
  // The owner, taken again when a deadline is set while no wait is pending: a watchdog with no
  // deadline (an HTTP/2 stream before its request deadline, say) has no timer wait at all.
  std::weak_ptr<void> owner_;
  clock::time_point deadline_ = clock::time_point::max();
  bool expired_ = false;
  bool stopped_ = false;
  bool waiting_ = false;
};

}  // namespace spillway::proxy
