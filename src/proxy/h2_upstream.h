#pragma once
// HTTP/2 to a backend (`protocol: http2`): one connection carries many requests as streams, so a
// worker keeps a few per backend (h2_pool) instead of one per request in flight.
//
// An h2_upstream owns a connected upstream_connection (TCP, TLS with ALPN h2 when the upstream has
// TLS; the connection keeps its max_connections reservation) and an nghttp2 client session driven
// by a reader and a writer coroutine on the worker's io_context. A request opens an h2_call: the
// front end fills its request body buffer and reads the response head, body and trailers from it
// as they come. Flow control is the back-pressure: response DATA is acknowledged only as the front
// end takes it (consume()), and a request body waits while more than a window's worth is queued.
//
// A request that finds no usable connection to its backend waits for one another request is making
// (h2_connecting, up to h2_pool::streams_before_settings of them), or makes one.
//
// A connection takes new calls while it is open, has not been told GOAWAY and has fewer calls than
// the backend's SETTINGS_MAX_CONCURRENT_STREAMS; a GOAWAY drains it (calls under its last stream id
// finish; the others are refused, which is always safe to retry). It closes when its backend closes
// it, when it has been idle past the upstream's idle timeout (h2_pool::sweep), or on a drain.

#include "proxy/connection_pool.h"
#include "proxy/h2_common.h"

#include <boost/asio/awaitable.hpp>
#include <boost/asio/steady_timer.hpp>

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

namespace spillway::proxy {

class h2_pool;
class h2_upstream;

// One request on an h2_upstream, shared by the connection (while the stream is open) and the front
// end that made it.
struct h2_call {
  explicit h2_call(wakeups& w) : wake(w), sent(w) {}

  // The response, as it arrives. Header names are lower case (HTTP/2 requires it). The head's
  // fields are kept back to back in one buffer (`head_raw`: each a name length and a value length,
  // then the bytes) while they come, and `headers` views them once the head is whole (head_done):
  // a string per name and value cost ~5 allocations per gRPC answer.
  int status = 0;
  std::string head_raw;
  std::size_t head_fields = 0;
  std::size_t head_bytes = 0;  // as the limit counts them: name, value and 4 per field
  std::vector<http::header> headers;
  std::vector<std::pair<std::string, std::string>> trailers;
  bool head_done = false;   // a final (non-1xx) response head arrived
  std::string body;         // DATA received and not yet taken by the front end
  bool ended = false;       // the stream ended (END_STREAM received) or closed
  bool closed = false;      // nghttp2 closed the stream
  std::uint32_t error = 0;  // the RST_STREAM (or connection) error code when it closed abnormally
  bool refused = false;     // never processed by the backend (REFUSED_STREAM, or above a GOAWAY)
  bool too_large = false;   // the response head or trailers broke the upstream's limits

  // The request body, pulled by nghttp2 from out[out_off, size).
  std::string out;
  std::size_t out_off = 0;
  bool out_eof = false;
  std::vector<std::pair<std::string, std::string>> out_trailers;  // end the request after its body

  // Notified on every change of the response and when the stream closes (the front end's answer
  // loop waits on it); `sent` when request body bytes went out or the stream closed (its body pump).
  wakeup wake;
  wakeup sent;

  std::int32_t id = 0;
  h2_upstream* conn = nullptr;  // null once the stream closed

  // Keeps a field of the response head; the head is whole: `headers` views the fields; an interim
  // (1xx) head is forgotten.
  void add_head_field(std::string_view name, std::string_view value);
  void head_complete();
  void clear_head();
  // The first response header (or trailer) field called `name` (lower case), or an empty view.
  std::string_view header(std::string_view name) const;
  std::string_view trailer(std::string_view name) const;
  // The answer is whole with its head: it ended cleanly with no body or trailers to pass on.
  bool whole_with_head() const { return ended && error == 0 && body.empty() && trailers.empty(); }
  // A gRPC answer's grpc-status when it came with the head (a trailers-only answer, how gRPC
  // servers answer errors); -1 otherwise.
  int early_grpc_status() const;
  // Stops the stream (CANCEL) if it is still open: the front end gave up on it.
  void cancel();
};

class h2_upstream : public std::enable_shared_from_this<h2_upstream> {
 public:
  using clock = std::chrono::steady_clock;

  // Takes over `conn` (connected; for TLS, ALPN must have picked h2: see alpn_ok()).
  h2_upstream(boost::asio::io_context& io, upstream_connection_ptr conn, h2_pool* pool, std::size_t max_head,
              std::size_t max_fields);
  ~h2_upstream();
  h2_upstream(const h2_upstream&) = delete;
  h2_upstream& operator=(const h2_upstream&) = delete;

  // True when the connection may speak HTTP/2: cleartext, or TLS whose ALPN chose h2.
  static bool alpn_ok(upstream_connection& conn);

  // Sends the preface and settings and starts the reader and writer. Worker thread.
  void start();

  const upstream::host* host() const { return conn_->host.get(); }
  const tls::client_context* tls() const { return conn_->tls.get(); }
  // Open, not draining, and below the backend's concurrent stream limit.
  bool usable() const;
  std::size_t active() const { return calls_.size(); }
  clock::time_point idle_since() const { return idle_since_; }

  // Opens a stream with the request head `fields` (pseudo-header fields first). With `has_body`
  // the body follows from call->out. nullptr when the connection cannot take it.
  std::shared_ptr<h2_call> submit(const std::vector<http::header>& fields, bool has_body);
  // More request body (or its end) is in call.out.
  void resume(h2_call& call);
  // The front end took `n` bytes of the call's response body: the backend may send that much more.
  void consume(h2_call& call, std::size_t n);
  // Resets the call's stream (CANCEL): the front end gave up on it.
  void cancel(h2_call& call);

  // GOAWAY: calls in flight finish, no new ones; closes once they have. Worker thread.
  void drain();
  // Closes the connection now; every call in flight ends with an error. Worker thread.
  void close();

  struct callbacks;
  friend struct callbacks;

 private:
  boost::asio::awaitable<void> reader(std::shared_ptr<h2_upstream> self);
  boost::asio::awaitable<void> writer(std::shared_ptr<h2_upstream> self);
  void wake_writer() { write_wake_.notify(); }
  // The connection is gone: every call ends, the pool forgets it.
  void shut();

  upstream_connection_ptr conn_;
  h2_pool* pool_;
  nghttp2_session* ng_ = nullptr;
  std::unordered_map<std::int32_t, std::shared_ptr<h2_call>> calls_;
  std::array<char, 16384> rbuf_;
  std::string wbuf_;
  std::vector<nghttp2_nv> nva_;  // a request head for nghttp2 (which copies it): reused
  wakeups& wakeups_;             // the worker's: every call's wake-ups are made with it
  wakeup write_wake_;
  boost::asio::io_context& io_;
  std::size_t max_head_;
  std::size_t max_fields_;
  bool closed_ = false;
  bool goaway_ = false;  // received or sent: no new calls
  clock::time_point idle_since_;
};

// A connection to a host being made by one request (the first to find no usable connection),
// which later requests for the host wait for instead of each opening one of their own: a burst of
// streams at start-up shares one backend connection, as it would an open one. Shared by the pool
// (while it pends) and the requests waiting.
struct h2_connecting {
  enum class outcome {
    pending,
    made,      // `made` is the connection
    failed,    // the connect failed (refused, timed out): the host's fault
    given_up,  // not made for the maker's own reasons (its client left, a limit, a protocol mismatch)
  };
  const upstream::host* host = nullptr;
  const tls::client_context* tls = nullptr;
  outcome result = outcome::pending;
  std::shared_ptr<h2_upstream> made;
  // The requests waiting for it (the maker not included), by their own timers: cancelled to wake
  // them.
  std::vector<boost::asio::steady_timer*> timers;
};

// A worker's HTTP/2 connections to backends, by host. Worker thread only.
class h2_pool {
 public:
  // A connection being made takes this many requests (its maker included) before any more open
  // connections of their own: nghttp2's limit on streams before the backend's SETTINGS arrive.
  static constexpr std::size_t streams_before_settings = 100;

  ~h2_pool();
  // The worker is stopping: every connection closes (while the io_context lives), and the pool
  // takes no more.
  void shut_down();
  // A connection to `h` (with TLS context `tls`) that can take another call, or nullptr.
  std::shared_ptr<h2_upstream> find(const upstream::host* h, const tls::client_context* tls);
  // Drains the connections to hosts for which `configured` is false (removed by a reload, or an
  // address its hostname no longer resolves to): their calls finish, they take no more.
  void keep_only(const std::function<bool(const upstream::host*)>& configured);
  void add(std::shared_ptr<h2_upstream> c);
  // Called by a connection that closed.
  void remove(h2_upstream* c);
  // Closes connections without calls idle for longer than `max_idle`.
  void sweep(std::chrono::steady_clock::time_point now, std::chrono::steady_clock::duration max_idle);
  // Drain: every connection says GOAWAY and closes once its calls are done.
  void drain();
  std::size_t size() const;

  // A request is about to connect to `h` (with TLS context `tls`): until finish_connect(), other
  // requests for the host may wait for its connection (joinable(), wait_connect()).
  std::shared_ptr<h2_connecting> begin_connect(const upstream::host* h, const tls::client_context* tls);
  // The connection being made by `p` is `made` (result made), or was not made; wakes its waiters.
  void finish_connect(h2_connecting& p, h2_connecting::outcome result, std::shared_ptr<h2_upstream> made = nullptr);
  // A connection being made to `h` that can take one more request, or null. The request joins it
  // by calling wait_connect() at once (with no suspension between the two).
  std::shared_ptr<h2_connecting> joinable(const upstream::host* h, const tls::client_context* tls) const;
  // Waits until `p` is finished or `give_up` passes (its result is then still pending).
  static boost::asio::awaitable<void> wait_connect(boost::asio::io_context& io, std::shared_ptr<h2_connecting> p,
                                                   std::chrono::steady_clock::time_point give_up);

 private:
  std::unordered_map<const upstream::host*, std::vector<std::shared_ptr<h2_upstream>>> by_host_;
  std::vector<std::shared_ptr<h2_connecting>> connecting_;
  bool shut_down_ = false;
};

}  // namespace spillway::proxy
