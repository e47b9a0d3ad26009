#pragma once
// The HTTP/2 front end: one client connection that speaks HTTP/2 (ALPN h2 over TLS, or the
// prior-knowledge preface in cleartext), taken over from its http_session once the protocol is
// known. nghttp2 does the framing, HPACK, flow control and the protocol's own checks; this file
// drives it from the worker's io_context and turns every stream into a request like any other:
//
//   socket ──> reader (run) ──> nghttp2 ──> callbacks: a stream per request head
//                                              │
//                               serve(stream): route, upstream_attempt (balancer, breaker, limits,
//                               pool, retries), the request to an HTTP/1 backend, its answer back
//                                              │
//   socket <── writer <── nghttp2 <── response HEADERS, DATA pulled from the stream's buffer
//
// Each stream has its own deadlines (a watchdog of its own) and its own per-request state (a
// request_state from the worker's recycler: rewrite scratch, record; with an HTTP/1 backend, an
// http1_state too: buffers, response parser), so that a slow or broken stream never holds up the
// others. Back-pressure both ways is bounded per stream: the client's DATA is acknowledged
// (WINDOW_UPDATE) only once written upstream, and a response is read from the backend only while
// less than out_high_water is waiting for the client.
//
// Abuse protection, on by default and counted (stats::h2_refusal_reasons): nghttp2's own limits
// (CONTINUATION frames per header block, outstanding PING and SETTINGS acknowledgements, RST_STREAM
// rate) plus Spillway's: header lists held to the listener's max_request_headers and
// max_request_header_fields, max_concurrent_streams, a budget for control frames, and rapid reset
// (most streams reset by the client before their answer) ends the connection.

#include "proxy/downstream.h"
#include "proxy/h2_common.h"
#include "proxy/rate_check.h"
#include "proxy/watchdog.h"

#include <boost/asio/awaitable.hpp>
#include <boost/asio/steady_timer.hpp>

#include <array>
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

struct nghttp2_session;

namespace spillway::proxy {

struct compiled_route;
struct h2_stream;
struct h2_call;
class upstream_attempt;

class h2_connection {
 public:
  using clock = std::chrono::steady_clock;

  // Streams a client may have open at once (SETTINGS_MAX_CONCURRENT_STREAMS).
  static constexpr std::uint32_t max_concurrent_streams = 100;
  // The flow-control window each stream grants (and so the request body bytes buffered per stream)
  // and the connection's.
  static constexpr std::int32_t stream_window = 64 * 1024;
  static constexpr std::int32_t connection_window = 1024 * 1024;

  // Serves HTTP/2 on `down`, whose owner keeps this object alive while run() and any stream runs.
  explicit h2_connection(downstream_connection& down);
  ~h2_connection();
  h2_connection(const h2_connection&) = delete;
  h2_connection& operator=(const h2_connection&) = delete;

  // Serves the connection until it ends. `initial`: bytes already read from the client (the
  // preface, maybe more). `keep` (the owner) is held by every stream's coroutine. Worker thread.
  boost::asio::awaitable<void> run(std::string initial, std::shared_ptr<void> keep);

  // GOAWAY: streams begun finish, no new ones, then the connection closes. Worker thread.
  void drain();
  // Closes the connection and cuts off every stream now. Worker thread.
  void force_close();
  // The connection's deadline (header block, idle, or closing) passed. Worker thread.
  void deadline_passed();

  // Used by the nghttp2 callbacks and the streams (h2_connection.cpp).
  struct callbacks;
  friend struct callbacks;
  friend struct h2_stream;

 private:
  enum class send_result { ok, upstream_write_failed, client_gone, too_large };
  enum class head_result { ok, closed_silently, reset, protocol_error, client_gone };

  // Feeds bytes from the client to nghttp2. False when the connection must end.
  bool receive(const char* data, std::size_t n);
  boost::asio::awaitable<void> writer(std::shared_ptr<void> keep);
  void wake_writer();
  // Closes the socket and cuts off every stream; with `salvage`, HTTP/1 exchanges whose requests
  // went out whole may finish to keep their backend connections (h2_stream::client_left).
  void shut(bool salvage = true);
  // Ends the connection with GOAWAY(`code`), counting `why`.
  void refuse_connection(std::uint32_t code, std::size_t why);
  // Sets the connection's deadline from its state (see deadline_passed()).
  void update_deadline();
  clock::time_point due() const;
  void count_refusal(std::size_t why);
  // Takes one control frame from the budget; false (and the connection ends) when it is spent.
  bool spend_control_budget();

  // The head of stream `id` is whole: serve() starts for it once the read is processed.
  void start_stream(std::int32_t id);
  // Spawns serve() for the streams whose heads the last read completed.
  void start_streams();
  // One stream's request, from its head to its answer: the bottom frame of the stream's coroutine
  // (see start_streams()).
  using stream_entry =
      boost::asio::awaitable<boost::asio::detail::awaitable_thread_entry_point, boost::asio::any_io_executor>;
  stream_entry serve(std::shared_ptr<h2_stream> s, std::shared_ptr<void> keep);
  // The request's checks and route: the route, or null once the stream was answered (refused, no
  // route).
  const compiled_route* admit(h2_stream& s);
  boost::asio::awaitable<void> forward(h2_stream& s, std::size_t cluster_index);
  // One try over an HTTP/2 backend connection (protocol: http2): the request as a stream, its body
  // relayed while the answer comes (gRPC streams both ways), the answer and its trailers back.
  // Returns true when another try is to be made.
  boost::asio::awaitable<bool> forward_h2(h2_stream& s, upstream_attempt& attempt, clock::time_point request_deadline);
  // Moves the client's request body to the backend's stream as both windows allow.
  boost::asio::awaitable<void> pump_body(std::shared_ptr<h2_stream> s, std::shared_ptr<h2_call> call);
  // The body bytes received so far go to `call` (kept for a retry while they fit), and the client
  // may send as many more; end_body(): the client's side ended, so does the call's request.
  void hand_body(h2_stream& s, h2_call& call);
  void end_body(h2_stream& s, h2_call& call);
  boost::asio::awaitable<send_result> send_request(h2_stream& s, upstream_connection& conn, std::uint64_t max_body);
  boost::asio::awaitable<head_result> read_response_head(h2_stream& s, upstream_connection& conn, std::size_t max_head,
                                                         std::size_t max_fields);
  boost::asio::awaitable<void> stream_response(h2_stream& s, upstream_attempt& attempt, bool request_sent_ok);
  // The answer read to its end: `conn` goes back to the pool when it can carry another request,
  // and is closed otherwise. Returns whether it went back.
  bool finish_exchange(h2_stream& s, upstream_connection_ptr& conn, bool request_sent_ok);
  // The client left once its whole request reached the backend (h2_stream::client_left): the rest
  // of the answer, from the response buffer's unread bytes on, is read and dropped, and `conn`
  // goes back to the pool if the answer ends cleanly within salvage_time (the stream's deadline
  // now) and salvage_bytes; else it is closed.
  boost::asio::awaitable<void> salvage(h2_stream& s, upstream_connection_ptr& conn);
  // Answers the stream itself (gRPC-shaped for a gRPC request); `retry_after` for a 503.
  void reply_local(h2_stream& s, error_kind kind, config::duration retry_after = std::chrono::seconds(1),
                   const rate_limit_answer& limit = {});
  // Submits the response head (and, unless `end`, a body pulled from the stream's buffer).
  void submit_head(h2_stream& s, int status, const std::vector<http::header>& fields, bool end);
  void reset_stream(h2_stream& s, std::uint32_t code);
  // The stream reads no more of its request body: what came and what comes is acknowledged.
  void discard_body(h2_stream& s);

  downstream_connection& down_;
  nghttp2_session* ng_ = nullptr;
  // The streams' request deadlines, on one timer (declared before the streams: it outlives them).
  deadline_group stream_deadlines_;
  // Open streams, in no order (a stream knows its slot; nghttp2's stream user data finds one by id).
  std::vector<std::shared_ptr<h2_stream>> streams_;
  std::vector<std::shared_ptr<h2_stream>> starting_;  // heads completed by the read being processed
  std::shared_ptr<void> keep_;                        // the owner, while run() runs (for the streams it spawns)
  std::array<char, 16384> rbuf_;
  std::string wbuf_;
  std::vector<nghttp2_nv> nva_;  // submit_head's, reused
  wakeups& wakeups_;             // the worker's: every stream's wake-up is made with it
  wakeup write_wake_;
  wakeup writer_done_;
  bool writer_running_ = false;
  bool closed_ = false;
  bool terminating_ = false;  // GOAWAY sent for an error or the idle timeout: closing
  bool got_settings_ = false;
  bool draining_ = false;
  bool in_header_block_ = false;
  clock::time_point header_deadline_ = clock::time_point::max();
  clock::time_point idle_since_;
  clock::time_point started_;
  config::duration header_timeout_{};
  config::duration idle_timeout_{};
  std::uint64_t max_request_headers_ = 64 * 1024;
  std::uint32_t max_request_fields_ = 100;
  std::uint64_t streams_total_ = 0;
  std::uint64_t premature_resets_ = 0;  // streams the client reset before their answer ended
  double control_budget_ = 0;
  clock::time_point budget_at_;
  std::uint32_t empty_data_run_ = 0;  // consecutive DATA frames with no payload and no END_STREAM
};

}  // namespace spillway::proxy
