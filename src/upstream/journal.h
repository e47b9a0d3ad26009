#pragma once
// What happened to backends, for people: the recent state transitions (health flips, ejections,
// breaker transitions, reloads) shown on the dashboard, and the degradation report — per backend
// and per incident, when it started failing, how long until Spillway took it out of rotation, how
// many requests failed or were retried meanwhile, when it came back and when it took traffic again.
//
// Transitions are rare, so one mutex guards it all; the request path never touches it (workers only
// mark the start of a failure run on the host, see host::note_failure).

#include "upstream/host.h"

#include <chrono>
#include <cstdint>
#include <deque>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

namespace spillway::upstream {

struct journal_event {
  std::chrono::system_clock::time_point at;
  std::string kind;  // "health", "ejection", "breaker", "reload"
  std::string upstream;
  std::string backend;
  std::string from;
  std::string to;
  std::string detail;
};

struct incident {
  std::string upstream;
  std::string backend;
  std::string reason;                               // what took it out first: "unhealthy", "ejected", "breaker_open"
  std::chrono::system_clock::time_point failed_at;  // first failure of the run that led here
  std::chrono::system_clock::time_point marked_out_at;                  // out of rotation
  std::optional<std::chrono::system_clock::time_point> came_back_at;    // first sign of life after
  std::optional<std::chrono::system_clock::time_point> in_rotation_at;  // taking traffic again
  std::optional<std::chrono::system_clock::time_point> removed_at;      // gone while out (reload, DNS): it ends there
  std::uint64_t failed_before_out = 0;   // requests that failed on it between failed_at and marked_out_at
  std::uint64_t retried_before_out = 0;  // of those, retried on another backend
  std::uint64_t failed_while_out = 0;    // failures after it was out (e.g. half-open trials)
  std::uint64_t failures_at_out = 0;     // failures_total when marked out (internal)
};

class journal {
 public:
  static constexpr std::size_t max_events = 200;
  static constexpr std::size_t max_incidents = 500;

  // Events are dated by `clock` (wall time), which must outlive the journal. Hosts date their
  // failure runs by their own clock: give both the same one.
  explicit journal(const time_source& clock = time_source::real()) : clock_(clock) {}

  // A transition of `h` just applied (its atomics already show the new state). Any thread.
  void transition(host& h, const char* kind, std::string from, std::string to, std::string detail = {});
  // A health check passed on `h` while it was marked down. Any thread.
  void sign_of_life(host& h);
  // `h` is gone (a reload removed its backend, or DNS its address): an incident it had open ends,
  // never to come back into rotation. Any thread.
  void removed(host& h);
  // A reload was applied or refused. Any thread.
  void reload(bool applied, std::string detail);

  // Newest last. Any thread.
  std::vector<journal_event> recent(std::size_t n = 50) const;
  std::vector<incident> incidents() const;
  void clear_incidents();

 private:
  void update_incident(host& h, std::chrono::system_clock::time_point now);
  void close(std::map<std::string, incident>::iterator it);

  const time_source& clock_;
  mutable std::mutex mutex_;
  std::deque<journal_event> events_;
  std::deque<incident> incidents_;
  std::map<std::string, incident> open_;  // by "upstream\naddress"
};

}  // namespace spillway::upstream
