#pragma once
// One deadline, enforced by a timer: when it passes, the listener's deadline_passed() runs (once
// per deadline set). A downstream connection has one (idle, header, connect and request
// deadlines, see downstream.h); so has each HTTP/2 stream, whose request has deadlines of its own
// while its connection lives on: the streams of a connection share one timer (deadline_group).
// upstream_attempt sets the connect and per-try deadlines on the watchdog of the request it serves.

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>

namespace spillway::proxy {

class deadline_listener {
 public:
  // The deadline passed. Worker thread.
  virtual void deadline_passed() = 0;

 protected:
  ~deadline_listener() = default;
};

class deadline_group;

class watchdog {
 public:
  using clock = std::chrono::steady_clock;
  // Bound to the io_context's own executor type rather than any_io_executor: 48 bytes smaller in
  // every connection, and so is each pending wait.
  using timer =
      boost::asio::basic_waitable_timer<clock, boost::asio::wait_traits<clock>, boost::asio::io_context::executor_type>;

  // A watchdog with a timer of its own.
  explicit watchdog(boost::asio::io_context& io) : timer_(std::in_place, io) {}
  // A watchdog whose deadline `group`'s timer enforces (see deadline_group); `group` outlives it.
  explicit watchdog(deadline_group& group) : group_(&group) {}
  ~watchdog();
  watchdog(const watchdog&) = delete;
  watchdog& operator=(const watchdog&) = delete;

  // Sets the one deadline; the listener is told once it passes, then the watchdog waits for the
  // next deadline set. Worker thread.
  void set_deadline(clock::time_point at);
  clock::time_point& deadline() { return deadline_; }  // relays push it forward as bytes move
  // The timer waits at most `h` at a time (0: until the deadline). A connection whose deadlines
  // take turns, a far idle deadline then a nearer header deadline at the next request's first
  // byte, would otherwise cancel and re-arm the timer for every request; with the header timeout
  // as its horizon the timer never waits past the next header deadline, at the price of one
  // wake-up per horizon while a later deadline pends. Deadlines are never told late. Own timer only.
  void set_horizon(clock::duration h) { horizon_ = h; }
  // For a connection that may idle for minutes (a parked HTTP/1 connection): lets the timer go
  // (its pending wait is about 200 bytes) while the deadline is more than doze_margin away;
  // swept(), run by the worker's sweep every second, arms it again once the deadline comes within
  // that margin, and setting a deadline arms it at once. Deadlines are still told on time. Own
  // timer only.
  void doze(clock::time_point now);
  void swept(clock::time_point now);
  static constexpr clock::duration doze_margin = std::chrono::seconds(3);
  bool dozing() const { return dozing_; }
  // Set when the deadline passed, until clear_expired().
  bool expired() const { return expired_; }
  void clear_expired() { expired_ = false; }

  // Watches the deadline until stop(), telling `listener` and keeping `keep` (which owns the
  // listener) alive while a deadline is pending (a group's watchdog: the group keeps its owner
  // instead). Worker thread.
  void start(const std::shared_ptr<void>& keep, deadline_listener* listener);
  // Ends the watch. Worker thread.
  void stop();

  // A timer wait is pending (a deadline is set, or one was and its wait has not ended yet); for a
  // group's watchdog, a deadline is set and watched.
  bool waiting() const;

 private:
  friend class deadline_group;

  void arm(std::shared_ptr<void> keep);
  // The deadline passed: tells the listener (which may set the next deadline).
  void pass();

  std::optional<timer> timer_;  // its own; none in a group
  deadline_group* group_ = nullptr;
  deadline_listener* listener_ = nullptr;
  // The owner, taken again when a deadline is set while no wait is pending: a watchdog with no
  // deadline (an HTTP/2 stream before its request deadline, say) has no timer wait at all.
  std::weak_ptr<void> owner_;
  clock::time_point deadline_ = clock::time_point::max();
  clock::duration horizon_{};
  bool expired_ = false;
  bool stopped_ = false;
  bool waiting_ = false;
  // In a group, between start() and stop(): a link in its list of members.
  bool joined_ = false;
  bool dozing_ = false;
  watchdog* prev_ = nullptr;
  watchdog* next_ = nullptr;
  std::uint64_t told_ = 0;  // the group's wake-up that last told it
};

// One timer for the deadlines of many watchdogs: an HTTP/2 connection's streams, each with a
// request deadline of its own, where a timer per stream cost a timer-queue insertion, a removal and
// a cancelled wait's completion for every request. A member that sets, moves or drops its deadline
// touches no timer unless the new deadline is sooner than the one the timer waits for; the timer
// wakes for the soonest deadline it was armed with, tells the members whose deadlines passed, and
// sleeps until the soonest one left (a scan of the members, a few hundred at most, once per
// wake-up, not per request).
class deadline_group {
 public:
  using clock = watchdog::clock;

  explicit deadline_group(boost::asio::io_context& io) : timer_(io) {}
  ~deadline_group();
  deadline_group(const deadline_group&) = delete;
  deadline_group& operator=(const deadline_group&) = delete;

  // What a pending wait keeps alive (the group's owner); without it (expired), nothing is armed.
  // Worker thread.
  void set_owner(std::weak_ptr<void> owner) { owner_ = std::move(owner); }
  // No wait is left pending once no member is left (the owner is going): call when no new member
  // will join. Worker thread.
  void close();

  std::size_t members() const { return members_; }
  bool waiting() const { return waiting_; }

 private:
  friend class watchdog;

  void join(watchdog& m);
  void leave(watchdog& m);
  // A member's deadline is now `at`: wakes the timer sooner if it must.
  void moved(clock::time_point at);
  void arm(clock::time_point at);
  void on_timer();

  watchdog::timer timer_;
  std::weak_ptr<void> owner_;
  watchdog* head_ = nullptr;
  std::size_t members_ = 0;
  clock::time_point armed_for_ = clock::time_point::max();
  bool waiting_ = false;
  bool closed_ = false;
  std::uint64_t round_ = 0;  // wake-ups so far
};

}  // namespace spillway::proxy
