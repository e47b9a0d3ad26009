#pragma once
// Counters and histograms that cost the hot path next to nothing: each worker writes its own slot
// (plain relaxed load + store, no locked instruction, no shared cache line), and a scrape sums the
// slots. Readers on other threads may see a slot a few increments behind; never torn.
//
//   per_worker<T> ──slot(worker 0)── T { counter, histogram, ... }   written by worker 0 only
//                 ──slot(worker 1)── T                                written by worker 1 only
//   scrape: for each slot, add up.

#include "common/error.h"

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <string_view>

namespace spillway::stats {

// The number of worker slots every per_worker<> gets. Set once, before the workers start and
// before any per_worker<> is made; 1 until then (unit tests).
void set_worker_count(unsigned n);
unsigned worker_count();

// A counter with one writer thread. add() is a relaxed load and store.
class counter {
 public:
  void add(std::uint64_t n = 1) { v_.store(v_.load(std::memory_order_relaxed) + n, std::memory_order_relaxed); }
  void sub(std::uint64_t n = 1) { v_.store(v_.load(std::memory_order_relaxed) - n, std::memory_order_relaxed); }
  std::uint64_t get() const { return v_.load(std::memory_order_relaxed); }

 private:
  std::atomic<std::uint64_t> v_{0};
};

// Upper bounds of the latency buckets, in microseconds (Prometheus `le`, in seconds, when printed).
// 50 us to 10 s: loopback and LAN connects land in the first buckets, a stuck backend in the last.
inline constexpr std::array<std::uint64_t, 17> latency_bounds_us = {50,     100,     250,     500,     1000,    2500,
                                                                    5000,   10000,   25000,   50000,   100000,  250000,
                                                                    500000, 1000000, 2500000, 5000000, 10000000};

class histogram {
 public:
  static constexpr std::size_t buckets = latency_bounds_us.size() + 1;  // the last one is +Inf

  void observe(std::chrono::steady_clock::duration d) {
    auto us = static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::microseconds>(d).count());
    std::size_t i = 0;
    while (i < latency_bounds_us.size() && us > latency_bounds_us[i]) {
      ++i;
    }
    counts_[i].add();
    sum_us_.add(us);
  }
  std::uint64_t count(std::size_t bucket) const { return counts_[bucket].get(); }
  std::uint64_t sum_us() const { return sum_us_.get(); }

 private:
  std::array<counter, buckets> counts_;
  counter sum_us_;
};

// The sum of histograms, as read by a scrape.
struct histogram_totals {
  std::array<std::uint64_t, histogram::buckets> counts{};  // per bucket, not cumulative
  std::uint64_t sum_us = 0;

  void add(const histogram& h) {
    for (std::size_t i = 0; i < histogram::buckets; ++i) {
      counts[i] += h.count(i);
    }
    sum_us += h.sum_us();
  }
  std::uint64_t total() const {
    std::uint64_t n = 0;
    for (auto c : counts) {
      n += c;
    }
    return n;
  }
  // The q-quantile in seconds, interpolated inside its bucket the way Prometheus'
  // histogram_quantile does; 0 when empty. The +Inf bucket answers with the largest bound.
  double quantile(double q) const;
};

// Responses by status class: 1xx..5xx, and index 0 for "no response" (the client left first).
struct status_classes {
  std::array<counter, 6> by_class;
  void add(int status) { by_class[status >= 100 && status < 600 ? status / 100 : 0].add(); }
};

template <typename T>
class per_worker {
 public:
  per_worker() : n_(worker_count()), slots_(std::make_unique<slot[]>(n_)) {}

  // The calling worker's slot. Only that worker may write it.
  T& local(unsigned worker) { return slots_[worker < n_ ? worker : 0].value; }

  template <typename Fn>
  void each(Fn&& fn) const {
    for (unsigned i = 0; i < n_; ++i) {
      fn(slots_[i].value);
    }
  }

 private:
  struct alignas(64) slot {
    T value;
  };
  unsigned n_;
  std::unique_ptr<slot[]> slots_;
};

}  // namespace spillway::stats

namespace spillway::stats {

// Counts one unit on a gauge (an in-flight count) for as long as it lives; with `adopt`, takes over
// a unit the caller already added (after checking a limit with the same fetch_add). Any thread.
class gauge_hold {
 public:
  explicit gauge_hold(std::atomic<std::int64_t>& g, bool adopt = false) : g_(g) {
    if (!adopt) {
      g_.fetch_add(1, std::memory_order_relaxed);
    }
  }
  ~gauge_hold() { g_.fetch_sub(1, std::memory_order_relaxed); }
  gauge_hold(const gauge_hold&) = delete;
  gauge_hold& operator=(const gauge_hold&) = delete;

 private:
  std::atomic<std::int64_t>& g_;
};

// What is counted per request, at each level that has it (listener, upstream, backend).
struct request_traffic {
  status_classes responses;  // by the status sent to the client (or tried on the backend)
  counter bytes_in;          // request bytes from the client (head and body as received)
  counter bytes_out;         // response bytes to the client
  histogram duration;        // first request byte in to last response byte out
};

// Why Spillway answered a request itself (the x-spillway-reason values): the rows of the error
// table that have a status, in its order, then "other"; counted per listener.
inline constexpr auto local_reply_reasons = [] {
  std::array<const char*, local_reply_count + 1> names{};
  for (std::size_t i = 0; i < local_reply_count; ++i) {
    names[i] = error_table[i].name.data();  // the table's names are string literals
  }
  names[local_reply_count] = "other";
  return names;
}();

// Why Spillway refused an HTTP/2 stream or ended an HTTP/2 connection (the
// spillway_listener_h2_refusals_total label).
inline constexpr std::array<std::string_view, 5> h2_refusal_reasons = {
    "protocol_error",     // the client broke the protocol: GOAWAY or RST_STREAM with an error
    "rapid_reset",        // streams opened and reset before an answer, over and over
    "flood",              // control frames (PING, SETTINGS, PRIORITY, empty DATA) beyond their budget
    "headers_too_large",  // a header list over max_request_headers or max_request_header_fields
    "refused_stream",     // beyond the connection's max concurrent streams
};
enum class h2_refusal : std::size_t { protocol_error, rapid_reset, flood, headers_too_large, refused_stream };

struct listener_traffic : request_traffic {
  std::array<counter, local_reply_reasons.size()> local_replies;
  counter h2_connections;  // connections that spoke HTTP/2
  counter h2_streams;      // HTTP/2 streams (requests) begun
  std::array<counter, h2_refusal_reasons.size()> h2_refusals;
  counter connections_total;
  counter connections_closed;    // active = total - closed
  counter connections_rejected;  // closed at accept: the listener's max_connections was reached
  counter tls_handshake_failures;
};

// What a rate limit policy decided (requests, or a tcp listener's connections).
struct rate_limit_traffic {
  counter admitted;
  counter limited;          // answered 429 (or the connection closed)
  counter dry_run_limited;  // would have been limited: admitted by dry_run
  // Shared policies: how each call to Redis ended (ok, or why on_unavailable decided instead).
  counter redis_ok;
  counter redis_timeout;      // no answer within shared_timeout
  counter redis_unavailable;  // no connection (refused, lost, or Redis stopped answering)
  counter redis_error;        // an answer that was an error
};

struct upstream_traffic : request_traffic {
  histogram connect_time;  // new connections to backends (TCP, plus TLS when spoken)
};

struct route_traffic {
  status_classes responses;
};

}  // namespace spillway::stats
