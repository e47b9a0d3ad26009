#pragma once
// Where code whose state depends on time reads the time, so that tests move a fake clock instead of
// sleeping. State machines that are handed `now` (the breaker, ejection planning) need none of this;
// objects that read the time themselves (a host dating a run of failures, the journal, a balancer's
// slow start, the host registry's DNS schedule) hold a `const time_source&`, the real one by default.

#include <atomic>
#include <chrono>
#include <cstdint>

namespace spillway {

class time_source {
 public:
  virtual ~time_source() = default;

  // Monotonic time (slow start, schedules). Any thread.
  virtual std::chrono::steady_clock::time_point steady_now() const = 0;
  // Wall time (the journal, the degradation report). Any thread.
  virtual std::chrono::system_clock::time_point wall_now() const = 0;

  // The same, in nanoseconds since each clock's epoch (what hosts keep in their atomics).
  std::int64_t steady_ns() const {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(steady_now().time_since_epoch()).count();
  }
  std::int64_t wall_ns() const {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(wall_now().time_since_epoch()).count();
  }

  // The process's clocks: one static object, usable from any thread for the process's lifetime.
  static const time_source& real();
};

namespace detail {
class real_time_source final : public time_source {
 public:
  std::chrono::steady_clock::time_point steady_now() const override { return std::chrono::steady_clock::now(); }
  std::chrono::system_clock::time_point wall_now() const override { return std::chrono::system_clock::now(); }
};
}  // namespace detail

inline const time_source& time_source::real() {
  static const detail::real_time_source clocks;
  return clocks;
}

// A clock that moves only when told (tests). Both clocks start at a fixed, non-zero point (zero
// means "never" in several host fields) and advance together. Any thread.
class manual_time_source final : public time_source {
 public:
  static constexpr std::chrono::hours start_offset{24 * 365 * 50};  // about 2020 on the wall clock

  std::chrono::steady_clock::time_point steady_now() const override {
    return std::chrono::steady_clock::time_point(start_offset) + elapsed();
  }
  std::chrono::system_clock::time_point wall_now() const override {
    return std::chrono::system_clock::time_point(start_offset) +
           std::chrono::duration_cast<std::chrono::system_clock::duration>(elapsed());
  }

  void advance(std::chrono::nanoseconds d) { elapsed_ns_.fetch_add(d.count(), std::memory_order_relaxed); }

 private:
  std::chrono::nanoseconds elapsed() const {
    return std::chrono::nanoseconds(elapsed_ns_.load(std::memory_order_relaxed));
  }

  std::atomic<std::int64_t> elapsed_ns_{0};
};

}  // namespace spillway
