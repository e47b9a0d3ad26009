#pragma once
// A worker: one thread, one io_context, its own SO_REUSEPORT acceptor per listener, its own
// upstream connection pool and its own load balancer instances. A downstream connection stays on
// the worker that accepted it for its whole life.

#include "balancer/load_balancer.h"
#include "proxy/connection_pool.h"
#include "proxy/h2_upstream.h"
#include "proxy/http1_state.h"
#include "proxy/recycler.h"
#include "proxy/snapshot.h"
#include "proxy/watchdog.h"
#include "ratelimit/redis_client.h"
#include "upstream/events.h"

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>

#include <atomic>
#include <functional>
#include <future>
#include <list>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

namespace spillway::proxy {

// What a worker needs of a downstream connection while it drains. Worker thread.
class downstream_session : public deadline_listener {
 public:
  virtual ~downstream_session() = default;
  // Finish what is in flight, then close (an L4 connection just keeps relaying until it ends).
  virtual void drain() = 0;
  // Drain timeout: close now.
  virtual void force_close() = 0;
  // (deadline_passed(): the deadline set on the session's downstream_connection passed.)
  // About once a second: a session idle for a while may shed what it holds. Worker thread.
  virtual void sweep(std::chrono::steady_clock::time_point /*now*/) {}
};

// Checks that `listen` can be bound the way workers bind it (SO_REUSEPORT): returns an empty
// string, or why not. Any thread.
std::string try_bind(const config::address& listen);

// What a worker runs with for one snapshot: the snapshot and this worker's balancers for it.
struct worker_view {
  snapshot_ptr snap;
  std::vector<std::unique_ptr<balancer::load_balancer>> balancers;  // aligned with snap->clusters
};

class worker {
 public:
  // Binds this worker's acceptors for every listener of `initial`. Throws std::runtime_error naming
  // the address when a bind fails. Control thread, before start().
  // `events` (may be null) receives what workers report about hosts; it must outlive the worker.
  worker(unsigned index, snapshot_ptr initial, upstream::host_events* events);
  ~worker();
  worker(const worker&) = delete;
  worker& operator=(const worker&) = delete;

  // Starts the thread. Control thread.
  void start();

  // Makes `snap` the snapshot for requests that start from now on (and binds or closes listeners
  // to match). Any thread. The future is ready once the worker has done so, or will not (draining,
  // stopped): a reload answers only when every worker routes by the new config.
  std::future<void> install(snapshot_ptr snap);

  // Stops accepting, closes idle connections, lets in-flight requests finish; the thread ends when
  // the last connection is gone or `timeout` passed. Any thread.
  void drain(std::chrono::milliseconds timeout);

  // Waits for the thread to end. Control thread.
  void join();

  // --- worker thread only ---
  boost::asio::io_context& io() { return io_; }
  unsigned index() const { return index_; }
  // True when listener `l` has max_connections open (over all workers). Worker thread.
  bool over_connection_limit(const listener_view& l) const;
  const std::shared_ptr<worker_view>& view() const { return view_; }
  connection_pool& pool() { return pool_; }
  h2_pool& h2_upstreams() { return h2_pool_; }
  recycler<http1_state>& http1_states() { return http1_states_; }
  recycler<request_state>& request_states() { return request_states_; }
  // HTTP/1 connections waiting idle in their coroutine (not parked) on this worker.
  std::size_t& idle_waits() { return idle_waits_; }
  balancer::random_source& random() { return random_; }
  // This worker's connection to the Redis at `a` (a shared rate limit's).
  ratelimit::redis_client& redis(const config::address& a);
  upstream::host_events* events() const { return events_; }
  bool draining() const { return draining_; }
  // Whether `snap`'s access log takes the request or connection that is ending (there is one, and
  // its `sample` picks this one).
  bool log_sampled(const snapshot& snap);
  // Stamps `r` with the time, appends its line to this worker's buffer and hands the buffer to the
  // writer once it is full. Call only when log_sampled(snap).
  void log_access(const snapshot& snap, access_record& r);
  // Hands the buffered lines over (every second, and when the worker stops).
  void flush_log();
  // The buffer for the spans of a request on `snap` (whose tracer is set): append span objects with
  // tracing::span_writer, then call traced(n). A full buffer (and every second) goes to the exporter.
  std::string& trace_buffer(const snapshot& snap);
  // `t` as nanoseconds since the Unix epoch, from the wall clock's offset taken every second: no
  // clock read per call.
  std::int64_t unix_ns(std::chrono::steady_clock::time_point t) const {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count() + wall_offset_ns_;
  }
  void traced(std::size_t spans);
  void flush_trace();
  std::list<downstream_session*>::iterator attach(downstream_session* s);
  void detach(std::list<downstream_session*>::iterator it);

 private:
  struct acceptor_entry {
    std::string listen;  // the listener's address as configured: its identity across reloads
    boost::asio::ip::tcp::acceptor acceptor;
  };

  // Binds an acceptor for `l` (SO_REUSEPORT, not yet listening). Throws std::runtime_error.
  std::shared_ptr<acceptor_entry> bind_listener(const config::listener& l);
  // Listens and starts accepting on `entry`.
  void start_accepting(const std::shared_ptr<acceptor_entry>& entry);
  // Opens acceptors for listeners `snap` adds and closes those it removes. Worker thread.
  void sync_listeners(const snapshot& snap);
  void accept_loop(std::shared_ptr<acceptor_entry> entry);
  // Starts a session for a connection accepted on `entry` (or closes it over the listener's
  // max_connections).
  void admit(const acceptor_entry& entry, boost::asio::ip::tcp::socket socket);
  void start_sweeper();
  void begin_drain(std::chrono::milliseconds timeout);
  void maybe_finish_drain();
  void stop_now();

  unsigned index_;
  upstream::host_events* events_;
  // Declared before io_ so that they outlive it: sessions still pending when io_ is destroyed
  // detach themselves in their destructors.
  std::list<downstream_session*> sessions_;
  bool draining_ = false;
  bool stopping_ = false;  // set once the thread is told to end; detach() then only unlinks
  // Outlives io_ too: connections and waiting requests in coroutine frames destroyed with io_ tell
  // the pool (which ~worker has shut down by then).
  connection_pool pool_;
  proxy::h2_pool h2_pool_;  // HTTP/2 connections to backends (protocol: http2)
  // Per-request state of HTTP/1 connections (buffers, parsers) while a request is under way;
  // outlives io_ for the same reason.
  // 64 kept at rest; up to 4,096 while that many requests or HTTP/2 streams were in flight lately
  // (see recycler::trim, every second): 64 h2load connections of 10 streams each kept 640 in flight,
  // and with 512 kept every stream beyond them cost an mmap, page faults and a munmap; 256 such
  // connections keep 2,560, and a cap of 2,048 put the mmap back in the profile (5% of the samples,
  // HTTP/2 to HTTP/2). A state's untouched pages (an HTTP/2 stream's client buffer) take no memory,
  // so 4,096 states hold about 72 MiB (HTTP/2) to 136 MiB (HTTP/1): no more than that many
  // requests in flight held anyway, kept while that load lasts and for 30 s after (the recycler's
  // hold), then less by 256 states a second.
  recycler<http1_state> http1_states_{64, 4096};
  // An HTTP/2 stream's request state (an http1_state only for an exchange with an HTTP/1 backend),
  // kept the same way: about 800 bytes each, from the heap.
  recycler<request_state> request_states_{64, 4096};
  std::size_t idle_waits_ = 0;
  boost::asio::io_context io_{1};
  std::thread thread_;
  std::shared_ptr<worker_view> view_;
  std::vector<std::shared_ptr<acceptor_entry>> acceptors_;
  bool started_ = false;
  balancer::random_source random_;
  boost::asio::steady_timer sweeper_{io_};
  boost::asio::steady_timer drain_timer_{io_};
  std::string log_buffer_;
  std::string trace_buffer_;  // span objects, joined by commas
  std::size_t trace_count_ = 0;
  std::int64_t wall_offset_ns_ = 0;  // system_clock - steady_clock; see unix_ns()
  void take_wall_offset();
  std::shared_ptr<tracing::exporter> trace_to_;  // whose spans trace_buffer_ holds
  // Connections to the Redis of shared rate limits, by address (made at first use).
  std::map<std::string, std::shared_ptr<ratelimit::redis_client>> redis_;
};

}  // namespace spillway::proxy
