#include "proxy/upstream_attempt.h"

#include "balancer/consistent_hash.h"
#include "common/log.h"
#include "proxy/grpc.h"
#include "upstream/connect.h"

#include <boost/asio/ip/tcp.hpp>

#include <algorithm>

namespace spillway::proxy {

namespace asio = boost::asio;

namespace {

bool contains(const std::vector<int>& v, int x) { return std::find(v.begin(), v.end(), x) != v.end(); }

}  // namespace

upstream_attempt::upstream_attempt(worker& w, const worker_view& view, std::size_t cluster_index, watchdog& watch,
                                   std::string_view hash_key, bool idempotent, bool pooled)
    : worker_(w),
      cluster_(*view.snap->clusters[cluster_index]),
      lb_(*view.balancers[cluster_index]),
      watch_(watch),
      stats_(*cluster_.stats),
      metrics_(view.snap->cfg->metrics),
      policy_(cluster_.cfg.retry, idempotent),
      pooled_(pooled) {
  if (cluster_.cfg.balance == config::balance_policy::consistent_hash) {
    ctx_.hash = balancer::hash64(hash_key);
  }
}

upstream_attempt::~upstream_attempt() {
  if (traced_ != nullptr && !traced_->empty()) {
    auto& last = traced_->back();
    if (last.failed && last.status == 0 && last.error.empty()) {
      last.error = to_string(failure_);
    }
  }
  release_ticket();
  if (retry_gauge_) {
    stats_.active_retries.fetch_sub(1, std::memory_order_relaxed);
  }
  if (admitted_) {
    stats_.active_requests.fetch_sub(1, std::memory_order_relaxed);
  }
}

bool upstream_attempt::admit() {
  // A request is admitted only if the count it raised was below the limit, so the admitted ones
  // never exceed it; the counter itself may read up to (workers - 1) over for an instant while
  // refused requests back out.
  if (stats_.active_requests.fetch_add(1, std::memory_order_relaxed) >= cluster_.cfg.limit.max_requests) {
    stats_.active_requests.fetch_sub(1, std::memory_order_relaxed);
    stats_.overflow_max_requests.fetch_add(1, std::memory_order_relaxed);
    failure_ = error_kind::upstream_overloaded;
    return false;
  }
  admitted_ = true;
  return true;
}

void upstream_attempt::release_ticket() {
  if (ticket_ && ticket_host_ != nullptr && ticket_host_->circuit) {
    ticket_host_->circuit->release(ticket_);
  }
  ticket_ = {};
  ticket_host_ = nullptr;
}

upstream::host* upstream_attempt::choose(clock::time_point now) {
  release_ticket();  // a try that ended without a verdict gives its trial slot back
  // A half-open breaker with every trial slot taken refuses the call: that host is skipped without
  // using up a try, on every front end alike. Bounded, since a refusing host joins `tried_`.
  for (std::size_t refusals = 0; refusals <= tried_.size(); ++refusals) {
    ctx_.exclude = std::span<upstream::host* const>(tried_.data(), tried_count_);
    auto* h = lb_.choose_host(ctx_);
    if (h == nullptr) {
      return nullptr;
    }
    if (tried_count_ < tried_.size() &&
        std::find(tried_.begin(), tried_.begin() + tried_count_, h) == tried_.begin() + tried_count_) {
      tried_[tried_count_++] = h;
    }
    if (!h->circuit) {
      return h;
    }
    ticket_ = h->circuit->try_acquire(now);
    if (ticket_) {
      ticket_host_ = h;
      return h;
    }
  }
  return nullptr;
}

void upstream_attempt::begin_try(upstream::host* h, clock::time_point now) {
  host_ = h;
  tried_available_ = tried_available_ || h->available();
  load_ = upstream::active_request(h);  // retries count as load too
  if (retry_gauge_ != is_retry_) {
    stats_.active_retries.fetch_add(is_retry_ ? 1 : -1, std::memory_order_relaxed);
    retry_gauge_ = is_retry_;
  }
  h->requests_total.fetch_add(1, std::memory_order_relaxed);
  ++tries_;
  try_started_ = now;
  head_at_ = {};
  if (traced_ != nullptr) {
    if (!traced_->empty()) {
      auto& prev = traced_->back();
      if (prev.failed && prev.status == 0 && prev.error.empty()) {
        prev.error = to_string(failure_);  // what ended it (set once it was judged)
      }
    }
    traced_->push_back({tracing::new_span(worker_.random()), h, try_started_});
  }
}

asio::awaitable<std::optional<error_kind>> upstream_attempt::start_try(clock::time_point request_deadline,
                                                                       bool can_resend) {
  while (true) {
    upstream::host* h = same_host_;
    same_host_ = nullptr;
    const auto now = clock::now();  // one reading for the breaker's ticket and the try's start
    if (h == nullptr) {
      h = choose(now);
      if (h == nullptr) {
        co_return failure();
      }
      is_retry_ = !first_try_;
      first_try_ = false;
    }
    begin_try(h, now);
    const auto per_try = cluster_.cfg.retry.per_try_timeout;
    try_deadline_ = per_try.count() > 0 ? std::min(request_deadline, try_started_ + per_try) : request_deadline;
    watch_.clear_expired();
    h2_.reset();
    if (cluster_.cfg.protocol == config::upstream_protocol::http2) {
      // A connection to the host with room for another stream, or the one another request is
      // making, or a new one.
      auto& pool = worker_.h2_upstreams();
      const auto* tls = cluster_.tls.get();
      bool retry = false;
      bool failed = false;
      while (!(h2_ = pool.find(host_, tls))) {
        auto making = pool.joinable(host_, tls);
        if (!making) {
          break;  // this request makes one
        }
        co_await h2_pool::wait_connect(worker_.io(), making,
                                       std::min(try_deadline_, clock::now() + cluster_.cfg.timeout.connect));
        using outcome = h2_connecting::outcome;
        if (making->result == outcome::failed || making->result == outcome::pending) {
          // It failed to connect, or took the whole connect timeout: this try's connect did.
          connect_failed(request_deadline, can_resend, retry);
          failed = true;
          break;
        }
        // Made (and maybe full already, taken by requests that came meanwhile), or its maker gave
        // up on it: look again.
      }
      if (failed) {
        if (!retry) {
          co_return failure();
        }
        continue;
      }
      reused_ = h2_ != nullptr;
      if (reused_) {
        watch_.set_deadline(try_deadline_);
        co_return std::nullopt;
      }
      auto making = pool.begin_connect(host_, tls);
      // Whatever happens to this coroutine, the requests waiting are told.
      struct finish_guard {
        h2_pool& pool;
        h2_connecting& p;
        ~finish_guard() { pool.finish_connect(p, h2_connecting::outcome::given_up); }
      } finish{pool, *making};
      connect_failed_ = false;
      if (!co_await connect(request_deadline, can_resend, retry)) {
        if (h2_upstream::alpn_ok(*conn_)) {
          h2_ = std::make_shared<h2_upstream>(worker_.io(), std::move(conn_), &pool, cluster_.cfg.max_response_headers,
                                              cluster_.cfg.max_response_header_fields);
          h2_->start();
          pool.add(h2_);
          pool.finish_connect(*making, h2_connecting::outcome::made, h2_);
          co_return std::nullopt;
        }
        log::debug("backend {} ({}) did not agree to h2 by ALPN", host_->address(), cluster_.cfg.name);
        retry = try_failed(try_end::protocol_error, can_resend, clock::now() < request_deadline) != retry_verdict::no;
      } else if (connect_failed_) {
        pool.finish_connect(*making, h2_connecting::outcome::failed);
      }
      if (!retry) {
        co_return failure();
      }
      continue;
    }
    // The common case, a pooled connection, needs no coroutine of its own.
    conn_ = pooled_ ? worker_.pool().take(host_, cluster_.tls.get(), has_body_) : nullptr;
    reused_ = conn_ != nullptr;
    if (reused_) {
      watch_.set_deadline(try_deadline_);
      conn_->requests++;
      co_return std::nullopt;
    }
    bool retry = false;
    if (!co_await connect(request_deadline, can_resend, retry)) {
      co_return std::nullopt;
    }
    if (!retry) {
      co_return failure();
    }
  }
}

asio::awaitable<std::optional<error_kind>> upstream_attempt::connect(clock::time_point request_deadline,
                                                                     bool can_resend, bool& retry) {
  const auto& up = cluster_.cfg;
  auto& pool = worker_.pool();
  bool reserved = stats_.try_reserve_connection(up.limit.max_connections);
  if (!reserved) {
    // max_connections reached: wait as a pending request (at most max_pending; 0 = no queue) for a
    // connection to come free, until the connect timeout; never queue without a deadline.
    if (stats_.pending.fetch_add(1, std::memory_order_relaxed) >= up.limit.max_pending) {
      stats_.pending.fetch_sub(1, std::memory_order_relaxed);
      stats_.overflow_max_pending.fetch_add(1, std::memory_order_relaxed);
      co_return failure_ = error_kind::upstream_overloaded;
    }
    stats::gauge_hold pending(stats_.pending, true);
    const auto give_up = std::min(try_deadline_, clock::now() + up.timeout.connect);
    auto got = co_await pool.wait(worker_.io(), pooled_ ? host_ : nullptr, cluster_.tls.get(), stats_,
                                  up.limit.max_connections, give_up);
    if (got.conn) {
      conn_ = std::move(got.conn);
      reused_ = true;
    } else if (!got.reserved) {
      stats_.overflow_max_connections.fetch_add(1, std::memory_order_relaxed);
      co_return failure_ = error_kind::upstream_overloaded;
    }
  }
  if (!reused_) {
    // The reservation made above passes to the connection, which gives it back when it closes.
    conn_ = std::make_unique<upstream_connection>(asio::ip::tcp::socket(worker_.io()), host_->shared_from_this(),
                                                  cluster_.stats, cluster_.tls);
    pool.adopt(*conn_);
    watch_.set_deadline(std::min(try_deadline_, clock::now() + up.timeout.connect));
    const auto connect_start = clock::now();
    connecting_ = true;
    auto ec = co_await upstream::connect(conn_->stream, *host_, cluster_.tls.get());
    connecting_ = false;
    if (ec) {
      host_->connect_failures_total.fetch_add(1, std::memory_order_relaxed);
      log::debug("connect to {} ({}) failed: {}", host_->address(), up.name,
                 watch_.expired() ? "timeout" : ec.message());
      // Closed by this side (the client left) unless the deadline passed: not the host's doing.
      connect_failed_ = ec != asio::error::operation_aborted || watch_.expired();
      co_return connect_failed(request_deadline, can_resend, retry);
    }
    connect_time_ = clock::now() - connect_start;  // of a connection made: a failed one has none
    if (metrics_) {
      stats_.traffic.local(worker_.index()).connect_time.observe(connect_time_);
    }
  }
  watch_.set_deadline(try_deadline_);
  conn_->requests++;
  co_return std::nullopt;
}

std::optional<error_kind> upstream_attempt::connect_failed(clock::time_point request_deadline, bool can_resend,
                                                           bool& retry) {
  // Nothing was sent: any method may go elsewhere.
  const bool before_deadline = clock::now() < request_deadline;
  retry = try_failed(try_end::connect_failure, can_resend, before_deadline) == retry_verdict::retry;
  if (!before_deadline) {
    failure_ = error_kind::upstream_timeout;
  }
  return failure_;
}

bool upstream_attempt::budget_allows() {
  if (stats_.retry_allowed(cluster_.cfg.retry.budget)) {
    return true;
  }
  stats_.retry_budget_exhausted.fetch_add(1, std::memory_order_relaxed);
  return false;
}

retry_verdict upstream_attempt::try_failed(try_end end, bool can_resend, bool before_deadline) {
  conn_.reset();
  if (end == try_end::stale_connection && can_resend) {
    // A pooled connection the backend closed just as we sent: not the backend's fault and nothing
    // was processed, so the same host gets the request again on a new connection.
    same_host_ = host_;
    return retry_verdict::same_host;
  }
  if (end == try_end::stale_connection) {
    end = try_end::reset;
  }
  const auto verdict = policy_.decide(end, 0, can_resend, before_deadline, [this] { return budget_allows(); });
  if (verdict == retry_verdict::retry) {
    // Counted before the failure is reported, so that whoever sees the failure (the control thread
    // ejecting the host) sees its retry too: the degradation report compares the two.
    host_->note_retried();
  }
  report(true, 0, end != try_end::connect_failure, clock::now());
  if (is_retry_) {
    stats_.retries_failure.fetch_add(1, std::memory_order_relaxed);
  }
  switch (end) {
    case try_end::connect_failure:
      failure_ = error_kind::upstream_connect_failure;
      break;
    case try_end::protocol_error:
      failure_ = error_kind::upstream_protocol_error;
      break;
    case try_end::timeout:
      failure_ = error_kind::upstream_timeout;
      break;
    default:
      failure_ = error_kind::upstream_reset;
      break;
  }
  return verdict;
}

retry_verdict upstream_attempt::got_response(int status, bool can_resend, bool may_retry) {
  const bool gateway_error = status >= 502 && status <= 504;
  auto verdict = retry_verdict::no;
  if (may_retry) {
    verdict = policy_.decide(try_end::status, status, can_resend, true, [this] { return budget_allows(); });
  }
  if (verdict == retry_verdict::retry) {
    host_->note_retried();
  }
  // dated by the head's arrival when the caller took it (head_arrived()): one clock reading less
  report(gateway_error, status, true, head_at_ != clock::time_point{} ? head_at_ : clock::now());
  if (status >= 500 && !gateway_error) {
    host_->failures_total.fetch_add(1, std::memory_order_relaxed);
  }
  if (verdict == retry_verdict::retry) {
    if (is_retry_) {
      stats_.retries_failure.fetch_add(1, std::memory_order_relaxed);
    }
    conn_.reset();  // its body is not read: the connection cannot be reused
    return verdict;
  }
  if (is_retry_) {
    (contains(cluster_.cfg.retry.on_status, status) ? stats_.retries_failure : stats_.retries_success)
        .fetch_add(1, std::memory_order_relaxed);
  }
  return verdict;
}

retry_verdict upstream_attempt::got_grpc_status(int grpc_status, bool can_resend) {
  const int status = http_status_of_grpc(grpc_status);
  auto verdict =
      policy_.decide(try_end::grpc_status, grpc_status, can_resend, true, [this] { return budget_allows(); });
  if (verdict == retry_verdict::retry) {
    host_->note_retried();
  }
  report(status >= 500, status, true, clock::now());
  if (is_retry_) {
    (verdict == retry_verdict::retry || status >= 500 ? stats_.retries_failure : stats_.retries_success)
        .fetch_add(1, std::memory_order_relaxed);
  }
  return verdict;
}

retry_verdict upstream_attempt::h2_try_failed(const h2_call& call, bool expired, bool can_resend,
                                              bool before_deadline) {
  const auto end = expired          ? try_end::timeout
                   : call.refused   ? try_end::stale_connection
                   : call.too_large ? try_end::protocol_error
                                    : try_end::reset;
  return try_failed(end, can_resend, before_deadline);
}

retry_verdict upstream_attempt::got_h2_response(const h2_call& call, bool can_resend) {
  const int early = call.early_grpc_status();
  return early >= 0 ? got_grpc_status(early, can_resend) : got_response(call.status, can_resend);
}

void upstream_attempt::h2_response_ended(const h2_call& call, bool cut_off) {
  if (cut_off) {
    if (call.error != 0) {
      response_failed();  // the backend (or its connection) broke the answer
    }
    return;
  }
  if (call.early_grpc_status() < 0 && is_grpc(call.header("content-type")) &&
      http_status_of_grpc(parse_grpc_status(call.trailer("grpc-status"))) >= 500) {
    response_failed();  // a failing grpc-status in the trailers: outlier detection's to count
  }
}

void upstream_attempt::response_failed() {
  conn_.reset();
  report(true, 0, false, clock::now());
}

void upstream_attempt::connection_ended(bool failure) {
  report(failure, 0, false, clock::now());
  conn_.reset();
}

error_kind upstream_attempt::failure() {
  if (!tried_available_ && failure_ != error_kind::upstream_timeout && failure_ != error_kind::upstream_overloaded) {
    // Nothing available was tried (only panic picks, or no host at all): the cause is that no
    // healthy backend exists, whatever the last connect said.
    failure_ = error_kind::no_healthy_upstream;
  }
  if (failure_ == error_kind::no_healthy_upstream) {
    stats_.no_healthy_upstream.fetch_add(1, std::memory_order_relaxed);
  }
  return failure_;
}

upstream_attempt::clock::duration upstream_attempt::head_arrived() {
  head_at_ = clock::now();
  return head_at_ - try_started_;
}

void upstream_attempt::report(bool failure, int status, bool timed, clock::time_point now) {
  if (traced_ != nullptr && !traced_->empty() && traced_->back().end == clock::time_point{}) {
    auto& t = traced_->back();
    t.end = now;
    t.status = status;
    t.failed = failure;
  }
  auto& h = *host_;
  const auto& up = cluster_.cfg;
  if (failure) {
    h.failures_total.fetch_add(1, std::memory_order_relaxed);
  }
  // The breaker's verdict: connect errors, resets, timeouts, and the configured failure statuses
  // (every 5xx by default); a call is slow when its response head took longer than
  // slow_call_duration. One verdict per try: a failure later in the body is the outlier detector's
  // business only.
  const auto& fs = up.breaker.failure_status;
  const bool failed_status = status != 0 && (fs.empty() ? status >= 500 : contains(fs, status));
  if (ticket_ && ticket_host_ == &h && h.circuit) {
    breaker::outcome o;
    o.failure = status == 0 ? failure : failed_status;
    o.slow = timed && now - try_started_ > up.breaker.slow_call_duration;
    auto t = h.circuit->on_result(ticket_, o, now);
    ticket_ = {};
    ticket_host_ = nullptr;
    if (t) {
      h.apply(*t);
      if (t->to == breaker::state::open && worker_.events() != nullptr) {
        worker_.events()->breaker_opened(h.shared_from_this(), now + t->open_for);
      }
    }
  }
  // Outlier detection (counted even when it is off: the run of failures also dates degradation
  // reports). Only the report that reaches the threshold exactly goes to the control thread: one
  // message per run of failures, however many workers see them.
  const auto run = h.record_outcome(failure, failed_status);
  if (up.outlier.enabled && run == up.outlier.consecutive_failures && worker_.events() != nullptr) {
    worker_.events()->consecutive_failures_reached(h.shared_from_this(), up.outlier);
  }
}

}  // namespace spillway::proxy
