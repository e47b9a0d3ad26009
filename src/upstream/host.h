#pragma once
// A host (backend) and the state that every part of Spillway shares about it.
//
// One `host` object exists per (upstream, address) for as long as the backend is configured (the
// host_registry keeps it across reloads and DNS refreshes); it is shared by all workers through
// shared_ptr and outlives config snapshots that keep it.
//
// Who may call what:
// - Its *state* (in or out of traffic for health, ejection and dns, the breaker mirror, their
//   details, transition counts, when it came back) is private. It changes only through
//   mark_out / mark_in / set_initial (control thread: the health checker, the outlier detector, the
//   host registry), note_health_check (control thread, the health checker) and apply (breaker
//   transitions, whichever thread caused one). These are the only places that take a host out of
//   traffic or put it back, count it, log it and journal it.
// - Everybody else reads it through the accessors (is_healthy, is_ejected, breaker_now, detail,
//   transitions, ...), from any thread unless the accessor says otherwise.
// - Workers bump the public relaxed atomic counters (requests, failures, connections, ...) and call
//   record_outcome / note_retried / note_failure / note_success; the control thread decides.
#include "breaker/circuit_breaker.h"
#include "common/stats.h"
#include "common/time_source.h"
#include "config/config.h"

#include <boost/asio/ip/tcp.hpp>

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace spillway::upstream {

using breaker_state = breaker::state;
using breaker::to_string;

class journal;

// Why a host may be out of traffic, besides its breaker (which has three states, see `apply`).
// health: active health checks; ejection: passive outlier detection; dns: a hostname backend whose
// name has not resolved yet (a name that resolved once keeps its last answer).
enum class out_kind : std::uint8_t { health, ejection, dns };
const char* to_string(out_kind k);
// "10.0.0.1:8080", "[::1]:8080".
std::string endpoint_text(const boost::asio::ip::tcp::endpoint& ep);

class host : public std::enable_shared_from_this<host> {
 public:
  // `clock` dates failure runs and slow start; it must outlive the host.
  host(std::string upstream_name, const config::backend& cfg, boost::asio::ip::tcp::endpoint endpoint,
       const time_source& clock = time_source::real());

  const std::string& upstream_name() const { return upstream_name_; }
  // What the host is known by, in /status, /metrics, logs and the journal: "10.0.0.1:8080" for a
  // backend written as an address and for each address a hostname resolves to ("[::1]:8080" for
  // IPv6); the name as configured ("name:8080") for a hostname with no answer yet.
  const std::string& address() const { return address_; }
  // The backend as configured ("10.0.0.1:8080" or "name:8080"): several hosts share the name of a
  // hostname that resolves to several addresses.
  const std::string& name() const { return cfg_.addr.text; }
  // True for a host made from a hostname (one of its addresses, or the name waiting for one).
  bool from_name() const { return !cfg_.addr.is_ip; }
  // host:port for a Host header where the client gave none, and for health checks: the backend as
  // configured, or an SRV record's target and port.
  const std::string& authority() const { return authority_; }
  const config::backend& cfg() const { return cfg_; }
  // Weight and role can change on reload without losing what is known about the host; a balancer
  // reads them when it is built for a snapshot (and weight on every pick). Any thread.
  std::uint32_t weight() const { return weight_.load(std::memory_order_relaxed); }
  bool backup() const { return backup_.load(std::memory_order_relaxed); }
  // Control thread, before the snapshot that carries the new values is posted.
  void set_weight(std::uint32_t w) { weight_.store(w, std::memory_order_relaxed); }
  void set_backup(bool b) { backup_.store(b, std::memory_order_relaxed); }
  // The endpoint to connect to, fixed for the host's life (a hostname's new address is a new
  // host). Unspecified for a hostname with no answer yet, which is never resolved. Any thread.
  const boost::asio::ip::tcp::endpoint& endpoint() const { return endpoint_; }

  // True when the host may take a new request: healthy, not ejected, breaker not open, address
  // known. Any thread; relaxed reads, so a decision made elsewhere is seen within a few requests.
  bool available() const {
    return healthy_.load(std::memory_order_relaxed) && !ejected_.load(std::memory_order_relaxed) &&
           breaker_.load(std::memory_order_relaxed) != breaker_state::open && resolved_.load(std::memory_order_relaxed);
  }

  // Takes the host out of traffic for `kind` and records why (`detail`: the failed check, the
  // ejection's reason and length, the failed lookup). A change from in counts one transition
  // (transitions(kind)); every change is logged once and, for health and ejection, journaled.
  // Returns false, changing nothing, when it was out for `kind` already. Control thread.
  bool mark_out(out_kind kind, std::string detail);
  // Puts the host back for `kind`: counts a transition (health), clears the detail, logs and
  // journals once (`why` is the journal event's detail), and stamps available_since for slow start
  // (health and ejection: a backend that comes back; a name that resolves for the first time is not
  // one). Returns false, changing nothing, when it was in for `kind` already. Control thread.
  bool mark_in(out_kind kind, std::string why = {});
  // The state of a new host for `kind` before anything is known (a host never checked, a name never
  // looked up: out, "unknown") or for a kind that does not apply (health checks off: in). Nothing
  // is counted, logged or journaled; the next mark_out / mark_in is logged as the first result.
  // Control thread, before or while the host is shared.
  void set_initial(out_kind kind, bool in, std::string detail = {});
  // Records one health check's result (`error`, empty when it passed) whether or not it flips the
  // host: counts a failed check (health_check_failures_total) and keeps `error` as the health detail
  // (a failing check shows before the host is marked down). Call mark_out / mark_in for a flip.
  // Control thread.
  void note_health_check(const std::string& error);
  // Applies a transition returned by `circuit`: mirrors the state, counts it, logs it once.
  // Any thread (whichever caused the transition).
  void apply(const breaker::transition& t);

  // Read-only views of the state above, for code that does not decide it. Any thread, except
  // `known` and `detail` (control thread: the admin API reads them there).
  bool is_healthy() const { return healthy_.load(std::memory_order_relaxed); }
  bool is_ejected() const { return ejected_.load(std::memory_order_relaxed); }
  bool is_resolved() const { return resolved_.load(std::memory_order_acquire); }
  // The breaker's state as last applied (closed for a host without a breaker).
  breaker_state breaker_now() const { return breaker_.load(std::memory_order_relaxed); }
  // True when `kind` has a result (a host never checked or never resolved: false).
  bool known(out_kind kind) const { return known_[static_cast<std::size_t>(kind)]; }
  // Why the host is out for `kind` (health: the last failed check, empty when passing; ejection: why
  // it was last ejected; dns: the failed lookup).
  const std::string& detail(out_kind kind) const;
  // Transitions of `kind` so far: health flips (up<->down, and unknown->up), ejections; dns: 0.
  std::uint64_t transitions(out_kind kind) const;
  // Breaker transitions by kind (index): 0 closed->open, 1 open->half_open, 2 half_open->closed,
  // 3 half_open->open.
  static constexpr std::size_t breaker_transition_kinds = 4;
  std::uint64_t breaker_transitions(std::size_t kind) const {
    return breaker_transitions_[kind].load(std::memory_order_relaxed);
  }
  std::uint64_t health_check_failures_total() const {
    return health_check_failures_total_.load(std::memory_order_relaxed);
  }
  // When the host last came back (steady ns), 0 = never out. Slow start ramps from here.
  std::int64_t available_since() const { return available_since_ns_.load(std::memory_order_relaxed); }
  // The clock this host reads. Any thread.
  const time_source& clock_source() const { return clock_; }

  // Why the host takes no traffic, for /status and the dashboard: "unresolved", "unhealthy",
  // "ejected", "breaker_open", or nullptr when it is available. Any thread.
  const char* out_reason() const {
    if (!resolved_.load(std::memory_order_relaxed)) {
      return "unresolved";
    }
    if (!healthy_.load(std::memory_order_relaxed)) {
      return "unhealthy";
    }
    if (ejected_.load(std::memory_order_relaxed)) {
      return "ejected";
    }
    if (breaker_.load(std::memory_order_relaxed) == breaker_state::open) {
      return "breaker_open";
    }
    return nullptr;
  }

  // --- Counters workers bump (relaxed atomics; any thread may read them) ---
  // In-flight requests on this host from all workers (retries and queued requests included).
  std::atomic<std::int32_t> active_requests{0};
  std::atomic<std::uint64_t> requests_total{0};
  std::atomic<std::uint64_t> failures_total{0};
  std::atomic<std::uint64_t> connect_failures_total{0};
  std::atomic<std::int32_t> connections_active{0};
  // Passive outlier detection: failures of live traffic in a row (connect errors, resets, timeouts,
  // 502/503/504). Workers count (record_outcome); the control thread decides on ejection and resets
  // it when it ejects.
  std::atomic<std::uint32_t> consecutive_failures{0};
  // Per-worker traffic counters (status classes, request durations of tries answered here).
  stats::per_worker<stats::request_traffic> traffic;

  // Tries that failed here and were retried elsewhere (written by note_retried).
  std::uint64_t retried_total() const { return retried_total_.load(std::memory_order_relaxed); }

  // The current run of failures, for the degradation report: when its first failure happened
  // (system_clock ns; 0 = no run), how many requests failed in it and how many of those were retried
  // elsewhere. A run ends with a success that comes `run_quiet_ns` or more after its last failure,
  // or once its successes outnumber its failures `run_success_ratio` to one: a backend failing a
  // good share of its requests (what opens a breaker on failure_rate) stays in one run however many
  // successes are mixed in, while the odd error of a healthy backend under load does not start a
  // run that lasts for hours. Any thread; times are read from the host's clock (wall ns). Written
  // only by the note_* / record_outcome / end_failure_run methods below.
  static constexpr std::int64_t run_quiet_ns = 1'000'000'000;
  static constexpr std::uint64_t run_success_ratio = 10;
  std::int64_t failing_since_ns() const { return failing_since_ns_.load(std::memory_order_relaxed); }
  std::uint64_t run_failures() const { return run_failures_.load(std::memory_order_relaxed); }
  std::uint64_t run_retried() const { return run_retried_.load(std::memory_order_relaxed); }
  // `request`: a request failed (not a health check).
  void note_failure(bool request = true) { note_failure(request, clock_.wall_ns()); }
  void note_failure(bool request, std::int64_t now_ns) {
    if (request) {
      run_failures_.fetch_add(1, std::memory_order_relaxed);
    }
    run_failures_all_.fetch_add(1, std::memory_order_relaxed);
    last_failure_ns_.store(now_ns, std::memory_order_relaxed);
    if (failing_since_ns_.load(std::memory_order_relaxed) != 0) {
      return;
    }
    std::int64_t expected = 0;
    failing_since_ns_.compare_exchange_strong(expected, now_ns, std::memory_order_relaxed);
  }
  // A failed try on this host is retried elsewhere (counted before the failure is reported, so that
  // whoever reacts to the failure sees the retry too).
  void note_retried() {
    retried_total_.fetch_add(1, std::memory_order_relaxed);
    run_retried_.fetch_add(1, std::memory_order_relaxed);
  }
  // The clock is read only while a run is on: a healthy host's successes cost one relaxed load.
  void note_success() {
    if (failing_since_ns_.load(std::memory_order_relaxed) != 0) {
      note_success_in_run(clock_.wall_ns());
    }
  }
  void note_success_in_run(std::int64_t now_ns) {
    const auto successes = run_successes_.fetch_add(1, std::memory_order_relaxed) + 1;
    if (now_ns - last_failure_ns_.load(std::memory_order_relaxed) >= run_quiet_ns ||
        successes > run_success_ratio * run_failures_all_.load(std::memory_order_relaxed)) {
      end_failure_run();
    }
  }
  void end_failure_run() {
    failing_since_ns_.store(0, std::memory_order_relaxed);
    run_failures_.store(0, std::memory_order_relaxed);
    run_failures_all_.store(0, std::memory_order_relaxed);
    run_successes_.store(0, std::memory_order_relaxed);
    run_retried_.store(0, std::memory_order_relaxed);
  }

  // Records the outcome of one request for outlier detection. Returns the new count of consecutive
  // failures (0 after a success). Any thread.
  // `failed_request`: the request failed for its client, which a status the breaker counts (a 500)
  // does too without being an outlier failure; it dates the failure run.
  std::uint32_t record_outcome(bool failure, bool failed_request) {
    if (failed_request || failure) {
      note_failure();
    } else {
      note_success();
    }
    if (failure) {
      return consecutive_failures.fetch_add(1, std::memory_order_relaxed) + 1;
    }
    // Skip the store when already 0, so that a healthy host's cache line stays shared.
    if (consecutive_failures.load(std::memory_order_relaxed) != 0) {
      consecutive_failures.store(0, std::memory_order_relaxed);
    }
    return 0;
  }

  // --- Wiring, set before the host is shared (host_registry) ---
  // The backend's circuit breaker (shared by all workers), or null with `circuit_breaker: false`.
  // breaker_now() mirrors its state for the balancers; apply() keeps the two in step.
  std::unique_ptr<breaker::circuit_breaker> circuit;
  // Where transitions are recorded for people (may be null).
  journal* events_journal = nullptr;

 private:
  // The flag of `kind` (true = in traffic for that kind).
  bool is_in(out_kind kind) const;
  void store_in(out_kind kind, bool in);
  std::string& detail_of(out_kind kind);
  // Logs and journals one change of `kind` (`was_known`: false for a first result).
  void report(out_kind kind, bool in, bool was_known, const std::string& detail);

  const time_source& clock_;

  // State (see the header comment: changed only by mark_out / mark_in / set_initial /
  // note_health_check / apply).
  std::atomic<bool> healthy_{true};
  std::atomic<bool> ejected_{false};
  std::atomic<bool> resolved_{true};                           // release on store: the endpoint is set before
  std::atomic<breaker_state> breaker_{breaker_state::closed};  // mirrors `circuit`
  std::array<bool, 3> known_{true, true, true};                // control thread
  std::string health_detail_;                                  // control thread
  std::string ejection_detail_;                                // control thread
  std::string dns_detail_;                                     // control thread
  std::atomic<std::uint64_t> health_transitions_total_{0};
  std::atomic<std::uint64_t> ejections_total_{0};
  std::atomic<std::uint64_t> health_check_failures_total_{0};
  std::array<std::atomic<std::uint64_t>, breaker_transition_kinds> breaker_transitions_{};
  // When the host last became available again (steady_clock, ns since its epoch); 0 = never out.
  // Written by mark_in, before the flag, so that a balancer that sees the host back sees it ramping.
  std::atomic<std::int64_t> available_since_ns_{0};

  // Counters written only through note_retried and the failure-run methods above.
  std::atomic<std::uint64_t> retried_total_{0};
  std::atomic<std::int64_t> failing_since_ns_{0};
  std::atomic<std::int64_t> last_failure_ns_{0};
  std::atomic<std::uint64_t> run_failures_{0};
  std::atomic<std::uint64_t> run_failures_all_{0};  // health checks included
  std::atomic<std::uint64_t> run_successes_{0};
  std::atomic<std::uint64_t> run_retried_{0};

  std::string upstream_name_;
  config::backend cfg_;
  std::atomic<std::uint32_t> weight_;
  std::atomic<bool> backup_;
  boost::asio::ip::tcp::endpoint endpoint_;
  std::string address_;
  std::string authority_;
};

using host_ptr = std::shared_ptr<host>;

// Counts one in-flight request on a host for as long as it lives (RAII around active_requests).
class active_request {
 public:
  active_request() = default;
  explicit active_request(host* h) : host_(h) { host_->active_requests.fetch_add(1, std::memory_order_relaxed); }
  active_request(active_request&& other) noexcept : host_(other.host_) { other.host_ = nullptr; }
  active_request& operator=(active_request&& other) noexcept {
    if (this != &other) {
      release();
      host_ = other.host_;
      other.host_ = nullptr;
    }
    return *this;
  }
  ~active_request() { release(); }
  void release() {
    if (host_ != nullptr) {
      host_->active_requests.fetch_sub(1, std::memory_order_relaxed);
      host_ = nullptr;
    }
  }

 private:
  host* host_ = nullptr;
};

}  // namespace spillway::upstream
