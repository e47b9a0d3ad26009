#pragma once
// The HTTP/1.1 front end: one downstream connection, from accept to close.
//
//   downstream ──> listener ──> http_session ──> router ──> upstream_attempt ──> host
//   (client)       (worker's     (this file:      (first      (balancer, breaker,   (backend)
//                   acceptor)     parse, check,    match)      limits, pool,
//                                 rewrite, stream)             retries, report)
//
// The session is a coroutine on its worker's io_context. Per request it reads the head (strict
// llhttp), checks and routes it, and hands it to an upstream_attempt, which picks a host and gets a
// connection; the session writes the rewritten head (http1_rewrite), streams the body as raw
// validated bytes, then streams the response back the same way, and asks the attempt whether a
// failed try is retried. Its downstream_connection's watchdog enforces the deadlines (idle, header,
// connect, request) by cancelling or closing sockets; the coroutine then answers 408/504 or moves on
// to another host. Errors are values (error_code, error_kind), never exceptions.
//
// http_session.cpp has the connection, the request's life and the loop over tries;
// http1_exchange.cpp the parts of one try (request out, response head in, response or tunnel).

#include "common/error.h"
#include "http/parser.h"
#include "proxy/connection_pool.h"
#include "proxy/downstream.h"
#include "proxy/h2_connection.h"
#include "proxy/http1_rewrite.h"
#include "proxy/retry_policy.h"
#include "proxy/worker.h"

#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>

#include <array>
#include <chrono>
#include <memory>
#include <optional>
#include <string>

namespace spillway::proxy {

class upstream_attempt;

class http_session final : public downstream_session, public std::enable_shared_from_this<http_session> {
 public:
  // `listen` names the listener by its address, which outlives reloads that change its routes.
  // `tls` (may be null) is the listener's TLS context: the session starts with its handshake.
  http_session(worker& w, std::string listen, boost::asio::ip::tcp::socket socket, tls::server_context_ptr tls);
  ~http_session() override;

  // Spawns the session's coroutines. Worker thread.
  void start();

  // Drain: closes the connection now if it is between requests, otherwise after the current
  // response. Worker thread.
  void drain() override;

  // Drain timeout: closes both sides now; the coroutines end with errors. Worker thread.
  void force_close() override;

  // The watchdog's deadline passed: what that means depends on the phase. Worker thread.
  void deadline_passed() override;

  // Parks the connection once it has been idle for park_after. Worker thread.
  void sweep(std::chrono::steady_clock::time_point now) override;

 private:
  using clock = std::chrono::steady_clock;
  enum class phase { idle, head, upstream, streaming, h2 };
  // What the connection does after a request: wait for the next one, or close, or (the client
  // sent the HTTP/2 preface) speak HTTP/2.
  enum class next { keep_alive, close, h2 };

  // Serves requests; `woken`: after park(), with the connection idle and readable.
  boost::asio::awaitable<void> run(bool woken);
  // Closes the connection and ends the watchdog.
  void end();
  // Between requests: the idle deadline. False when the listener is gone (the connection closes).
  bool begin_idle();
  // st_, taken from the worker when the session has none.
  void take_state();
  // Idle for park_after (or too many idle coroutines): gives st_ back and waits for readability
  // without a coroutine; wake() follows.
  void park();
  void wake(boost::system::error_code ec);
  // Reads and checks the head, routes it, and forwards it (or answers it).
  boost::asio::awaitable<next> handle_request();
  // Checks the request whose head is in and routes it: returns the route, or nullptr with
  // `refusal` set and `close` telling whether the connection closes after that answer.
  const compiled_route* route_request(const listener_view& lv, error_kind& refusal, bool& close);
  void finish_request();
  // Sends the request to upstream `cluster_index` through an upstream_attempt, try after try.
  boost::asio::awaitable<next> forward(const std::shared_ptr<worker_view>& view, std::size_t cluster_index);
  // Answers the request itself with `kind`'s status; `up` gives the Retry-After of a 503.
  boost::asio::awaitable<next> send_local(error_kind kind, bool close, const config::upstream* up = nullptr,
                                          std::string_view extra_headers = {});

  // Hands the connection to an h2_connection until it ends; `initial`: bytes read already.
  boost::asio::awaitable<void> serve_h2(std::string initial);
  // At the first request of a cleartext connection on a listener with http2: waits until the
  // buffered bytes tell whether they begin with the HTTP/2 preface. False when the client left.
  boost::asio::awaitable<bool> check_preface(bool& is_h2);

  // Reads more bytes from the client into st_->dbuf. Returns bytes read (0 on EOF or error).
  boost::asio::awaitable<std::size_t> read_downstream();

  // --- forwarding, try after try ---
  // What every try of one request shares.
  struct try_context {
    clock::time_point request_deadline;
    bool expect_continue = false;  // the client sent Expect: 100-continue (Spillway answers it)
    bool head_request = false;
    std::uint64_t max_body = 0;  // the listener's max_request_body (0: none)
  };
  enum class send_result { ok, upstream_write_failed, client_gone, malformed, too_large, trailers_too_large };
  enum class head_result { ok, closed_silently, reset, protocol_error, client_gone };
  // Sets up the request's forwarding (deadline, request id, body replay) and returns what its
  // tries share.
  try_context begin_forward(const worker_view& view, const upstream_attempt& attempt);
  // The answer for a request refused while its body was sent (bad framing, too large).
  static error_kind refusal_of(send_result r);
  // How a try whose response head did not come ended, for the retry policy.
  try_end try_end_of(head_result r, bool reused) const;

  // Writes the request head and body to `conn` (the body streamed from the client, or replayed
  // from replay_ on a retry).
  boost::asio::awaitable<send_result> send_request(upstream_connection& conn, const http::message_head& req,
                                                   bool expect_continue, std::uint64_t max_body);
  // The response head, read in forward() up to the final one (passing 1xx answers on), held to the
  // upstream's head size and field limits: begin_response_head() readies the parser, and
  // response_head_step() parses what ubuf holds. (Not a coroutine of its own: the read's resumption
  // lands in forward's frame, one frame fewer to touch per request.)
  enum class head_step { more, done, interim, protocol_error };
  void begin_response_head(bool head_request, const config::upstream& up);
  // `interim`: a 1xx answer to pass on is in st_->out (write it, then step again).
  head_step response_head_step(bool expect_continue, const config::upstream& up);
  // Streams the response whose head was read to the client; pools the connection when clean.
  boost::asio::awaitable<next> stream_response(upstream_attempt& attempt, bool close_client, bool request_sent_ok);
  // One try over an HTTP/2 backend connection (protocol: http2): the request as a stream (its body
  // without HTTP/1 framing), the answer back as HTTP/1 (chunked when the backend gave no length,
  // its trailers in the last chunk for a client that accepts them). Returns nothing when another
  // try is to be made.
  boost::asio::awaitable<std::optional<next>> exchange_h2(upstream_attempt& attempt, const try_context& t);
  boost::asio::awaitable<send_result> send_body_h2(h2_call& call, const try_context& t);
  boost::asio::awaitable<next> stream_h2_response(upstream_attempt& attempt, h2_call& call, const try_context& t);
  // After a 101 answer to an Upgrade: passes the 101 on, then relays bytes both ways until both
  // sides end or nothing moved for the upstream's idle timeout. The connection closes after.
  boost::asio::awaitable<next> tunnel(upstream_connection& conn, const upstream_attempt& attempt);
  // True when the current request can be sent (again) to another host.
  bool can_resend() const { return !body_started_ || (request_complete_ && replay_ok_); }

  downstream_connection down_;
  std::unique_ptr<h2_connection> h2_;  // once the connection speaks HTTP/2
  bool first_request_ = true;
  // Buffers, parsers and the request's record: held while a request is under way (or buffered),
  // back with the worker while the connection is parked (park()).
  std::unique_ptr<http1_state> st_;

  upstream_attempt* attempt_ = nullptr;  // the current request's, while it forwards
  std::shared_ptr<h2_call> h2_call_;     // its try's stream, over an HTTP/2 backend connection
  // A chunked request's trailers as sent to an HTTP/2 backend, kept for a retry.
  std::vector<std::pair<std::string, std::string>> h2_trailers_;

  // Request bodies up to this size are kept, so that a try that failed after sending the body can
  // be retried on another host; a bigger body is only ever sent once.
  static constexpr std::size_t max_replay_body = 64 * 1024;
  bool replay_ok_ = true;      // st_->replay holds every body byte read so far
  bool body_started_ = false;  // body bytes of the current request were read from the client

  phase phase_ = phase::idle;
  bool closed_ = false;
  bool draining_ = false;
  bool request_complete_ = false;  // the current request was read to its end
  // The listener lets bodies of known length go socket to socket with splice(2) (plain TCP only).
  bool splice_bodies_ = false;
  clock::time_point idle_since_;  // when the connection last went idle
  bool idle_waiting_ = false;     // run() waits for the client's next request
  bool park_requested_ = false;   // sweep() cancelled that wait so that run() parks
  // An idle connection waits for its next request in its coroutine, with a read into its
  // per-request state (cheap to resume), for up to park_after, and then parks
  // (about 1 KiB to hold). At most max_idle_waits connections per worker wait in a coroutine, so
  // that thousands of idle connections cost the parked size even in the second after they all
  // made a request, and the states the waiting ones hold stay bounded (256 x 34 KiB).
  static constexpr std::chrono::seconds park_after{1};
  static constexpr std::size_t max_idle_waits = 256;
  static constexpr std::chrono::milliseconds drain_idle_grace{250};
  // How long writing an answer Spillway made itself may take.
  static constexpr std::chrono::seconds local_reply_timeout{10};
  clock::time_point first_byte_;  // of the current request
};

}  // namespace spillway::proxy
