#pragma once
// One downstream HTTP/1.1 connection, from accept to close.
//
//   downstream ──> listener ──> http_session ──> router ──> balancer ──> connection_pool ──> host
//   (client)       (worker's     (this file:      (first      (least_      (idle upstream     (backend)
//                   acceptor)     parse, rewrite,  match)      request…)    connections)
//                                 stream, answer)
//
// The session is a coroutine on its worker's io_context. Per request it reads the head (strict
// llhttp), routes it, picks a host, writes the rewritten head, streams the body as raw validated
// bytes, then streams the response back the same way. A watchdog coroutine enforces the deadlines
// (idle, header, connect, request) by cancelling or closing sockets; the main coroutine then answers
// 408/504 or moves on to another host. Errors are values (error_code), never exceptions.

#include "http/parser.h"
#include "proxy/connection_pool.h"
#include "proxy/worker.h"
#include "tls/stream.h"

#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>

#include <array>
#include <chrono>
#include <list>
#include <memory>
#include <string>

namespace spillway::proxy {

// Why a request got an answer made by Spillway itself (sent as x-spillway-reason).
enum class local_reason {
  malformed_request,         // 400
  no_route,                  // 404
  header_timeout,            // 408
  body_too_large,            // 413
  headers_too_large,         // 431
  upstream_reset,            // 502: the backend closed or reset before a whole response head
  upstream_protocol_error,   // 502: the backend sent a malformed response
  no_healthy_upstream,       // 503: no host can take the request
  upstream_connect_failure,  // 503: every connect attempt failed
  upstream_overloaded,       // 503: a limit was reached
  upstream_timeout,          // 504
  method_not_allowed,        // 405: CONNECT (no tunnels on http listeners yet)
};
// stats::local_reply_reasons names these in this order.

int status_of(local_reason r);
const char* to_string(local_reason r);

class http_session final : public downstream_session, public std::enable_shared_from_this<http_session> {
 public:
  // `listen` names the listener by its address, which outlives reloads that change its routes.
  // `tls` (may be null) is the listener's TLS context: the session starts with its handshake.
  http_session(worker& w, std::string listen, boost::asio::ip::tcp::socket socket, tls::server_context_ptr tls);
  ~http_session();

  // Spawns the session's coroutines. Worker thread.
  void start();

  // Drain: closes the connection now if it is between requests, otherwise after the current
  // response. Worker thread.
  void drain() override;

  // Drain timeout: closes both sides now; the coroutines end with errors. Worker thread.
  void force_close() override;

 private:
  enum class phase { idle, head, upstream, streaming };
  enum class outcome { keep_alive, close };

  boost::asio::awaitable<void> run();
  boost::asio::awaitable<void> watchdog();
  // One request: handle_request() and then its metrics and access log line.
  boost::asio::awaitable<outcome> serve_request();
  boost::asio::awaitable<outcome> handle_request();
  void finish_request();
  boost::asio::awaitable<outcome> forward(const std::shared_ptr<worker_view>& view, std::size_t cluster_index);
  boost::asio::awaitable<outcome> send_local(local_reason reason, bool close, const config::upstream* up = nullptr);

  // Reads more bytes from the client into dbuf_. Returns bytes read (0 on EOF or error).
  boost::asio::awaitable<std::size_t> read_downstream();

  enum class send_result { ok, upstream_write_failed, client_gone, malformed, too_large, trailers_too_large };
  enum class head_result { ok, closed_silently, reset, protocol_error, client_gone };

  // Writes the request head and body to upstream_ (the body streamed from the client, or replayed
  // from replay_ on a retry).
  boost::asio::awaitable<send_result> send_request(const http::message_head& req, bool expect_continue,
                                                   std::uint64_t max_body);
  // Reads up to the final response head (passing 1xx answers on), held to the upstream's head
  // size and field limits.
  boost::asio::awaitable<head_result> read_response_head(bool expect_continue, bool head_request,
                                                         const config::upstream& up);
  // Streams the response whose head was read to the client; pools the connection when clean.
  boost::asio::awaitable<outcome> stream_response(upstream::host* h, const config::upstream& up, bool close_client,
                                                  bool request_sent_ok);
  // After a 101 answer to an Upgrade: passes the 101 on, then relays bytes both ways until both
  // sides end or nothing moved for the upstream's idle timeout. The connection closes after.
  boost::asio::awaitable<outcome> tunnel(const config::upstream& up);
  // Records one try's outcome on the host: failure counters, outlier detection, and (once per try)
  // the breaker's verdict. `status` is the response status, 0 when there was no response.
  void report(upstream::host* h, const config::upstream& up, bool failure, int status = 0);
  // Gives back the current try's breaker token if it got no verdict.
  void release_breaker_token();
  // True when the current request can be sent (again) to another host.
  bool can_resend() const;

  void set_deadline(std::chrono::steady_clock::time_point at);
  void close_downstream();

  // Checks what the parser cannot (Host, Transfer-Encoding, the target's form and characters) and
  // sets route_path_, forward_target_ and host_override_. Returns why the request is refused, or
  // nullptr.
  const char* check_request(const http::message_head& req);

  // Builds the head to send upstream into out_.
  void build_upstream_head(const http::message_head& req, bool drop_expect);
  // Builds the head to send downstream into out_.
  void build_downstream_head(const http::message_head& resp, bool close);

  // What one request did, for metrics and the access log.
  struct request_record {
    bool started = false;  // a byte of it arrived
    std::shared_ptr<worker_view> view;
    int route = -1;
    const upstream::cluster* cluster = nullptr;
    upstream::host* host = nullptr;  // the last host tried
    std::uint32_t tries = 0;
    int status = 0;              // sent to the client; 0 when none was
    const char* reason = "";     // set when Spillway answered itself
    int local = -1;              // the local_reason then
    std::uint64_t bytes_in = 0;  // head and body bytes from the client
    std::uint64_t bytes_out = 0;
    std::chrono::steady_clock::duration connect_time{-1};
    std::chrono::steady_clock::duration upstream_time{-1};  // to the response head
  };

  worker& worker_;
  std::string listen_;
  // Counters of this listener (kept across reloads by address).
  std::shared_ptr<stats::per_worker<stats::listener_traffic>> listener_traffic_;
  request_record rec_;
  tls::server_context_ptr tls_;  // kept for the SNI callback while the handshake runs
  tls::stream downstream_;
  std::string client_ip_;
  std::list<downstream_session*>::iterator registration_;

  http::parser request_parser_{http::parser::kind::request};
  http::parser response_parser_{http::parser::kind::response};

  // Downstream bytes received and not yet consumed: dbuf_[dbegin_, dend_).
  std::array<char, 16384> dbuf_;
  std::size_t dbegin_ = 0;
  std::size_t dend_ = 0;
  std::array<char, 16384> ubuf_;
  std::string out_;  // a head being written; reused so a warm connection does not allocate
  std::string host_scratch_;
  // The current request's path as routed (dot segments removed), the target as forwarded, and the
  // Host as forwarded when an absolute-form target replaced it (views into the strings below or the
  // parser's head).
  std::string_view route_path_;
  std::string_view forward_target_;
  std::string_view host_override_;
  std::string path_scratch_;
  std::string target_scratch_;
  std::string authority_scratch_;
  std::vector<std::string_view> connection_tokens_;  // of the head being rewritten
  std::array<char, 36> request_id_{};                // generated X-Request-Id of the current request, if any
  std::string_view upstream_host_;                   // address of the host the current attempt goes to

  upstream_connection_ptr upstream_;  // the connection of the request in progress, if any
  std::size_t ubegin_ = 0;            // upstream bytes received and not yet consumed: ubuf_[ubegin_, uend_)
  std::size_t uend_ = 0;

  // Request bodies up to this size are kept, so that a try that failed after sending the body can
  // be retried on another host; a bigger body is only ever sent once.
  static constexpr std::size_t max_replay_body = 64 * 1024;
  std::string replay_;         // the current request's body as sent (raw framing), while it fits
  bool replay_ok_ = true;      // replay_ holds every body byte read so far
  bool body_started_ = false;  // body bytes of the current request were read from the client

  breaker::circuit_breaker::token breaker_token_;  // the current try's admission by its host's breaker
  upstream::host* breaker_host_ = nullptr;
  std::chrono::steady_clock::time_point try_started_;

  boost::asio::steady_timer timer_;
  std::chrono::steady_clock::time_point deadline_ = std::chrono::steady_clock::time_point::max();
  phase phase_ = phase::idle;
  bool expired_ = false;  // the watchdog fired in the current phase
  bool closed_ = false;
  bool draining_ = false;
  bool client_http10_ = false;
  bool upgrade_ = false;                              // the current request asks for an Upgrade (WebSocket), passed on
  bool request_complete_ = false;                     // the current request was read to its end
  std::chrono::steady_clock::time_point idle_since_;  // when the connection last went idle
  static constexpr std::chrono::milliseconds drain_idle_grace{250};
  // How long writing an answer Spillway made itself may take.
  static constexpr std::chrono::seconds local_reply_timeout{10};
  std::chrono::steady_clock::time_point first_byte_;  // of the current request
};

}  // namespace spillway::proxy
