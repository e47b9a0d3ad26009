#include "upstream/journal.h"

#include <algorithm>

namespace spillway::upstream {

using system_clock = std::chrono::system_clock;

void journal::transition(host& h, const char* kind, std::string from, std::string to, std::string detail) {
  const auto now = clock_.wall_now();
  std::lock_guard lock(mutex_);
  events_.push_back({now, kind, h.upstream_name(), h.address(), std::move(from), std::move(to), std::move(detail)});
  if (events_.size() > max_events) {
    events_.pop_front();
  }
  update_incident(h, now);
}

void journal::update_incident(host& h, system_clock::time_point now) {
  const std::string key = h.upstream_name() + "\n" + h.address();
  auto it = open_.find(key);
  const bool available = h.available();
  const auto failures = h.failures_total.load(std::memory_order_relaxed);
  if (!available && it == open_.end()) {
    incident inc;
    inc.upstream = h.upstream_name();
    inc.backend = h.address();
    const char* reason = h.out_reason();
    inc.reason = reason != nullptr ? reason : "unknown";
    inc.marked_out_at = now;
    inc.failed_at = now;
    const auto since = h.failing_since_ns();
    if (since != 0) {
      auto at =
          system_clock::time_point(std::chrono::duration_cast<system_clock::duration>(std::chrono::nanoseconds(since)));
      if (at <= now) {
        inc.failed_at = at;
        inc.failed_before_out = h.run_failures();
        inc.retried_before_out = h.run_retried();
      }
    }
    inc.failures_at_out = failures;
    open_.emplace(key, std::move(inc));
    return;
  }
  if (it == open_.end()) {
    return;
  }
  auto& inc = it->second;
  inc.failed_while_out = failures > inc.failures_at_out ? failures - inc.failures_at_out : 0;
  if (!available) {
    return;
  }
  if (!inc.came_back_at) {
    inc.came_back_at = now;  // e.g. an ejection that simply ended
  }
  inc.in_rotation_at = now;
  // Back in rotation: the next incident dates from its own first failure, not this one's.
  h.end_failure_run();
  close(it);
}

void journal::close(std::map<std::string, incident>::iterator it) {
  incidents_.push_back(std::move(it->second));
  open_.erase(it);
  if (incidents_.size() > max_incidents) {
    incidents_.pop_front();
  }
}

void journal::removed(host& h) {
  std::lock_guard lock(mutex_);
  auto it = open_.find(h.upstream_name() + "\n" + h.address());
  if (it == open_.end()) {
    return;
  }
  const auto failures = h.failures_total.load(std::memory_order_relaxed);
  auto& inc = it->second;
  inc.failed_while_out = failures > inc.failures_at_out ? failures - inc.failures_at_out : 0;
  inc.removed_at = clock_.wall_now();
  close(it);
}

void journal::sign_of_life(host& h) {
  std::lock_guard lock(mutex_);
  auto it = open_.find(h.upstream_name() + "\n" + h.address());
  if (it != open_.end() && !it->second.came_back_at) {
    it->second.came_back_at = clock_.wall_now();
  }
}

void journal::reload(bool applied, std::string detail) {
  std::lock_guard lock(mutex_);
  events_.push_back({clock_.wall_now(), "reload", "", "", "", applied ? "applied" : "rejected", std::move(detail)});
  if (events_.size() > max_events) {
    events_.pop_front();
  }
}

std::vector<journal_event> journal::recent(std::size_t n) const {
  std::lock_guard lock(mutex_);
  const auto first = events_.size() > n ? events_.size() - n : 0;
  return {events_.begin() + static_cast<std::ptrdiff_t>(first), events_.end()};
}

std::vector<incident> journal::incidents() const {
  std::lock_guard lock(mutex_);
  std::vector<incident> out(incidents_.begin(), incidents_.end());
  for (const auto& [key, inc] : open_) {
    out.push_back(inc);
  }
  std::sort(out.begin(), out.end(), [](const incident& a, const incident& b) { return a.failed_at < b.failed_at; });
  return out;
}

void journal::clear_incidents() {
  std::lock_guard lock(mutex_);
  incidents_.clear();
  open_.clear();
}

}  // namespace spillway::upstream
