#pragma once
// Upstream connections of one worker: the idle ones per host, and the requests waiting for one.
//
// A connection is returned only when its last response was read to the end and neither side asked
// to close; one the backend has closed (or sent anything on) while idle is detected and dropped
// when taken: by its idle watch, or else by a peek. A request
// that finds its upstream at max_connections waits here (at most max_pending of them) and is woken
// by this worker's pool events: a connection to its host coming back idle is handed to it, and any
// connection of its upstream closing frees the reservation it needs.

#include "proxy/idle_watch.h"
#include "tls/stream.h"
#include "upstream/cluster.h"
#include "upstream/host.h"

#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>

#include <chrono>
#include <functional>
#include <list>
#include <memory>
#include <unordered_map>
#include <vector>

namespace spillway::proxy {

class connection_pool;

struct upstream_connection {
  // `stats` (may be null) holds a max_connections reservation this connection releases when closed.
  // `tls` (may be null) is the context the connection speaks TLS with, once start_tls() is called.
  upstream_connection(boost::asio::ip::tcp::socket s, upstream::host_ptr h,
                      std::shared_ptr<upstream::upstream_stats> stats = nullptr, tls::client_context_ptr tls = nullptr);
  ~upstream_connection();
  upstream_connection(const upstream_connection&) = delete;
  upstream_connection& operator=(const upstream_connection&) = delete;

  // The response just read to its end left the socket empty (the last read was short): from now
  // until reuse, whatever the backend sends is noticed without a peek (see idle_watch.h). Plain
  // TCP only. Worker thread.
  void watch_idle(bool drained) {
    if (drained && !stream.is_tls()) {
      idle.start(stream.socket());
    }
  }

  tls::stream stream;
  idle_watch idle;              // declared after stream: unhooked before the socket closes
  tls::client_context_ptr tls;  // a pooled connection is only reused with the same TLS settings
  upstream::host_ptr host;      // keeps the host alive while the connection exists
  std::shared_ptr<upstream::upstream_stats> stats;
  std::chrono::steady_clock::time_point idle_since;
  std::uint64_t requests = 0;  // requests sent on this connection so far
  // Told when this connection closes, so that a request waiting for a connection slot of its
  // upstream is woken (null: nobody to tell). Set by connection_pool::adopt().
  connection_pool* pool = nullptr;
};

using upstream_connection_ptr = std::unique_ptr<upstream_connection>;

class connection_pool {
 public:
  // At most this many idle connections are kept per host per worker; the upstream's own
  // max_connections (1,024 by default, idle ones counted) is the bound that matters. A cap below
  // what a burst needs closes connections that the next burst opens again (640 HTTP/2 streams in
  // flight over two backends need 320 each: with 256 kept, a connect per 16 requests; 2,560 streams
  // with max_connections raised need 1,280 each), so this one is only a backstop. Idle ones are
  // still closed after the upstream's idle timeout.
  static constexpr std::size_t max_idle_per_host = 8192;

  // Returns an idle connection to `h` made with TLS context `tls` (null for plain) that still looks
  // open, or nullptr. `peek`: ask the kernel even when the connection's idle watch saw nothing (a
  // FIN that came in the same read as the last response is not seen by the watch). Worker thread.
  upstream_connection_ptr take(const upstream::host* h, const tls::client_context* tls = nullptr, bool peek = false);

  // Keeps `conn` for reuse, or hands it to a request waiting for a connection to its host. When
  // only requests for other hosts of its upstream wait, `conn` is closed instead, so that its
  // max_connections reservation goes to one of them. Worker thread only.
  void put(upstream_connection_ptr conn);

  // Makes `conn` tell this pool when it closes (see upstream_connection::pool). Worker thread only.
  void adopt(upstream_connection& conn) { conn.pool = this; }

  // What a request waiting for a connection got.
  struct wait_result {
    upstream_connection_ptr conn;  // an idle connection to the host, handed over
    bool reserved = false;         // else: a max_connections reservation was made for a new one
  };
  // Waits until a connection to `h` (with TLS context `tls`) can be had under `stats`'s
  // `max_connections`, or until `give_up`: returns a handed-over connection, or a reservation, or
  // neither at `give_up`. Idle connections of the same upstream to other hosts are closed first to
  // make room. `h` null: only a reservation will do (a connection of its own, for L4). Worker
  // thread only.
  //
  // Woken at once by this worker's connections (handed over, or closed). A slot freed by another
  // worker is not signalled across threads: it is seen at the latest `cross_worker_recheck()` later.
  boost::asio::awaitable<wait_result> wait(boost::asio::io_context& io, const upstream::host* h,
                                           const tls::client_context* tls, upstream::upstream_stats& stats,
                                           std::uint32_t max_connections,
                                           std::chrono::steady_clock::time_point give_up);
  std::chrono::steady_clock::duration cross_worker_recheck() const { return recheck_; }
  // Tests set it far out, to see that only this worker's events wake a waiter. Worker thread only.
  void set_cross_worker_recheck(std::chrono::steady_clock::duration d) { recheck_ = d; }

  // A connection of `stats`'s upstream closed: wakes the first request waiting for a slot there.
  // Called by ~upstream_connection. Worker thread only.
  void released(const upstream::upstream_stats* stats);

  // The worker is stopping: no more hand-overs or wake-ups (sessions may be destroyed in any order).
  void shut_down() {
    shut_down_ = true;
    clear();
  }

  // Closes connections idle for longer than `max_idle`. Worker thread only.
  void sweep(std::chrono::steady_clock::time_point now, std::chrono::steady_clock::duration max_idle);

  // Closes every idle connection (drain). Worker thread only.
  void clear();
  // Closes the idle connections to hosts for which `configured` is false: backends a reload removed,
  // addresses a hostname no longer resolves to. Worker thread only.
  void keep_only(const std::function<bool(const upstream::host*)>& configured);

  std::size_t idle_count() const;
  std::size_t waiting() const { return waiters_.size(); }

 private:
  struct waiter {
    const upstream::host* host;
    const tls::client_context* tls;
    const upstream::upstream_stats* stats;
    boost::asio::steady_timer* timer;
    upstream_connection_ptr handed;
    bool woken = false;
  };
  // Closes one idle connection of `stats`'s upstream to a host other than `keep`. Returns whether
  // one was closed.
  bool evict_other(const upstream::upstream_stats* stats, const upstream::host* keep);
  static void wake(waiter& w);

  std::unordered_map<const upstream::host*, std::vector<upstream_connection_ptr>> idle_;
  std::list<waiter*> waiters_;  // oldest first
  bool shut_down_ = false;
  std::chrono::steady_clock::duration recheck_ = std::chrono::milliseconds(50);
};

}  // namespace spillway::proxy
