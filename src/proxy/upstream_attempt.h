#pragma once
// One request's way to its backends, the same for every front end (HTTP/1 now, HTTP/2 next, and
// an L4 connection, which is one long request):
//
//   admit()          the upstream's max_requests
//   start_try()      choose a host (balancer, with the request's hash and the hosts tried), take
//                    its breaker ticket (a refusing half-open breaker skips the host without using
//                    up a try), get a connection: pooled, or a new one under max_connections (else
//                    wait in this worker's pending queue, at most max_pending, woken by pool
//                    events), connected within the connect timeout; a failed connect is reported
//                    and retried here when the retry policy allows
//   try_failed()     the front end's exchange failed: report it, and ask the retry policy
//   got_response()   a response head arrived: report its status, and ask the retry policy
//   connection_ended()  L4: the relayed connection ended
//   failure()        what to answer when the request gives up
//
// Reporting a try means: the host's counters, its breaker's verdict (one per try, the ticket
// released if it never got one), outlier detection, the degradation report's retry counts.
// The front end keeps the protocol (what bytes go where) and the client-facing deadlines.

#include "balancer/load_balancer.h"
#include "breaker/circuit_breaker.h"
#include "common/error.h"
#include "proxy/connection_pool.h"
#include "proxy/h2_upstream.h"
#include "proxy/request_record.h"
#include "proxy/retry_policy.h"
#include "proxy/watchdog.h"
#include "proxy/worker.h"
#include "upstream/cluster.h"

#include <boost/asio/awaitable.hpp>

#include <array>
#include <chrono>
#include <optional>

namespace spillway::proxy {

class upstream_attempt {
 public:
  using clock = std::chrono::steady_clock;

  // For a request to upstream `cluster_index` of `view` (which must outlive the attempt), whose
  // deadlines `watch` enforces (the downstream connection's, or an HTTP/2 stream's). `hash_key` is what consistent_hash
  // balances on (the client's address). `pooled`: idle pooled connections may serve the request, and it may wait for
  // one (HTTP); an L4 connection always gets a connection of its own. Worker thread, like every method.
  upstream_attempt(worker& w, const worker_view& view, std::size_t cluster_index, watchdog& watch,
                   std::string_view hash_key, bool idempotent, bool pooled);
  // Gives back a breaker ticket that never got a verdict, and the counts held.
  ~upstream_attempt();
  upstream_attempt(const upstream_attempt&) = delete;
  upstream_attempt& operator=(const upstream_attempt&) = delete;

  const upstream::cluster& cluster() const { return cluster_; }
  const config::upstream& cfg() const { return cluster_.cfg; }

  // Counts the request against max_requests. Returns false (counted as an overflow) when the
  // upstream is full; the request is then answered upstream_overloaded.
  bool admit();

  // Starts the next try (see the file comment). Returns nothing when conn() is connected to host(),
  // or the error to give up with. `request_deadline` bounds every try; the connect timeout and the
  // per-try timeout bound this one (set on `watch`, whose listener closes conn() when it passes
  // while connecting(), see also watchdog::expired()). `can_resend`: the request can go to a backend again.
  boost::asio::awaitable<std::optional<error_kind>> start_try(clock::time_point request_deadline, bool can_resend);

  upstream_connection_ptr& conn() { return conn_; }
  // The try's HTTP/2 connection (protocol: http2), shared with other requests; null otherwise.
  const std::shared_ptr<h2_upstream>& h2() const { return h2_; }
  bool connecting() const { return connecting_; }
  upstream::host* host() const { return host_; }  // of the current (or last) try; null before one
  std::uint32_t tries() const { return tries_; }
  bool reused() const { return reused_; }  // the current try's connection came from the pool
  clock::duration connect_time() const { return connect_time_; }
  clock::time_point try_started() const { return try_started_; }
  // The current try's response head arrived now: returns the time since the try began (the
  // request's upstream time); got_response() dates its report by this reading.
  clock::duration head_arrived();

  // The current try failed with `end` (try_end::status is got_response's): reports it on the host
  // and closes conn(). Returns the retry policy's verdict; with `no`, failure() is what to answer.
  retry_verdict try_failed(try_end end, bool can_resend, bool before_deadline);

  // A whole response head with `status` came back on the current try: reports it, and returns
  // `retry` when the status is one to retry and the policy allows (conn() is then closed: its
  // response is not read) — else `no`, and the response goes to the client. `may_retry` false: the
  // response goes to the client whatever its status (a 101 Switching Protocols).
  retry_verdict got_response(int status, bool can_resend, bool may_retry = true);
  // A gRPC answer whose grpc-status came with its head (trailers-only): reported as the HTTP status
  // it means (http_status_of_grpc), retried when `retries.on` lists its grpc_* condition.
  retry_verdict got_grpc_status(int grpc_status, bool can_resend);
  // The same for a try over HTTP/2 (protocol: http2), from its h2_call:
  //   h2_try_failed    the call closed before its answer's head (`expired`: the try's deadline
  //                    passed): a refused stream goes to the same host again, as a stale connection
  //   got_h2_response  the head came: got_grpc_status for a trailers-only gRPC answer, else
  //                    got_response
  //   h2_response_ended  the answer was passed on (or cut off by `cut_off`): a backend's reset, or a
  //                    failing grpc-status in the trailers of a gRPC answer, counts for outlier
  //                    detection
  retry_verdict h2_try_failed(const h2_call& call, bool expired, bool can_resend, bool before_deadline);
  retry_verdict got_h2_response(const h2_call& call, bool can_resend);
  void h2_response_ended(const h2_call& call, bool cut_off);
  // Tracing: each try is recorded in `out` (its span id, host, times, outcome); null: none.
  void trace_tries(traced_tries* out) { traced_ = out; }
  // The request is a gRPC call (see retry_policy::set_grpc).
  void set_grpc(bool grpc) { policy_.set_grpc(grpc); }
  // The request has a body: a pooled connection is peeked at before reuse even when its idle watch
  // saw nothing (connection_pool::take), since a backend's close that epoll has not reported yet is
  // not seen by the watch, and a body may not be there to send again on a new connection.
  void set_has_body(bool has_body) { has_body_ = has_body; }

  // The response broke after got_response() let it through (bad framing, a reset mid-body):
  // counts a failure on the host for outlier detection (the breaker judged the try already) and
  // closes conn().
  void response_failed();

  // L4: the connection relayed on the current try ended; `failure` when the backend broke it.
  void connection_ended(bool failure);

  // What to answer once the request gives up: the last try's error, or no_healthy_upstream when
  // no available host was tried (none at all, or only panic picks). Counts no_healthy_upstream.
  error_kind failure();

 private:
  // The next host to try, with its breaker ticket taken; nullptr when none is left.
  upstream::host* choose(clock::time_point now);
  void begin_try(upstream::host* h, clock::time_point now);
  // Gets conn_ for the current try when the pool had none idle: waited for, or new and connected.
  // Returns the error.
  boost::asio::awaitable<std::optional<error_kind>> connect(clock::time_point request_deadline, bool can_resend,
                                                            bool& retry);
  // The current try's connect failed (or timed out): reports it, and says whether to `retry`.
  // Returns the error to give up with.
  std::optional<error_kind> connect_failed(clock::time_point request_deadline, bool can_resend, bool& retry);
  // Records one try's outcome on host_: failure counters, outlier detection, and (once per try)
  // the breaker's verdict. `status`: the response status, 0 without one. `timed`: the breaker may
  // call the try slow (an HTTP exchange, not an L4 connection's lifetime). `now`: the outcome's time.
  void report(bool failure, int status, bool timed, clock::time_point now);
  void release_ticket();
  bool budget_allows();

  worker& worker_;
  const upstream::cluster& cluster_;
  balancer::load_balancer& lb_;
  watchdog& watch_;
  upstream::upstream_stats& stats_;
  bool metrics_;
  retry_policy policy_;
  bool pooled_;
  bool has_body_ = false;
  balancer::choose_context ctx_;
  std::array<upstream::host*, 8> tried_{};
  std::size_t tried_count_ = 0;
  bool tried_available_ = false;  // some host tried was available (not only panic picks)

  bool admitted_ = false;
  upstream::host* host_ = nullptr;
  upstream::host* same_host_ = nullptr;  // send the next try to this host again (stale pooled connection)
  upstream::active_request load_;        // the current try's in-flight count on its host
  bool first_try_ = true;
  bool is_retry_ = false;
  bool retry_gauge_ = false;  // stats_.active_retries counts the current try
  std::uint32_t tries_ = 0;
  breaker::circuit_breaker::token ticket_;
  upstream::host* ticket_host_ = nullptr;
  upstream_connection_ptr conn_;
  std::shared_ptr<h2_upstream> h2_;
  bool reused_ = false;
  bool connecting_ = false;
  bool connect_failed_ = false;  // the last connect() failed for the host's reasons (not ours)
  clock::time_point try_started_{};
  clock::time_point head_at_{};  // when the current try's response head arrived (head_arrived())
  clock::time_point try_deadline_ = clock::time_point::max();
  clock::duration connect_time_{-1};
  error_kind failure_ = error_kind::no_healthy_upstream;
  traced_tries* traced_ = nullptr;
};

}  // namespace spillway::proxy
