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

int status_of(local_reason r);
const char* to_string(local_reason r);

class http_session : public std::enable_shared_from_this<http_session> {
 public:
  http_session(worker& w, std::size_t listener_index, boost::asio::ip::tcp::socket socket);
  ~http_session();

  // Spawns the session's coroutines. Worker thread.
  void start();

  // Drain: closes the connection now if it is between requests, otherwise after the current
  // response. Worker thread.
  void drain();

  // Drain timeout: closes both sides now; the coroutines end with errors. Worker thread.
  void force_close();

 private:
  enum class phase { idle, head, upstream, streaming };
  enum class outcome { keep_alive, close };

  boost::asio::awaitable<void> run();
  boost::asio::awaitable<void> watchdog();
  boost::asio::awaitable<outcome> serve_request();
  boost::asio::awaitable<outcome> forward(const std::shared_ptr<worker_view>& view, std::size_t cluster_index);
  boost::asio::awaitable<outcome> send_local(local_reason reason, bool close, const config::upstream* up = nullptr);

  // Reads more bytes from the client into dbuf_. Returns bytes read (0 on EOF or error).
  boost::asio::awaitable<std::size_t> read_downstream();

  void set_deadline(std::chrono::steady_clock::time_point at);
  void close_downstream();

  // Builds the head to send upstream into out_.
  void build_upstream_head(const http::message_head& req, bool drop_expect);
  // Builds the head to send downstream into out_.
  void build_downstream_head(const http::message_head& resp, bool close);

  worker& worker_;
  std::size_t listener_index_;
  boost::asio::ip::tcp::socket downstream_;
  std::string client_ip_;
  std::list<http_session*>::iterator registration_;

  http::parser request_parser_{http::parser::kind::request};
  http::parser response_parser_{http::parser::kind::response};

  // Downstream bytes received and not yet consumed: dbuf_[dbegin_, dend_).
  std::array<char, 16384> dbuf_;
  std::size_t dbegin_ = 0;
  std::size_t dend_ = 0;
  std::array<char, 16384> ubuf_;
  std::string out_;  // a head being written; reused so a warm connection does not allocate
  std::string host_scratch_;
  std::array<char, 36> request_id_{};  // generated X-Request-Id of the current request, if any
  std::string_view upstream_host_;     // address of the host the current attempt goes to

  upstream_connection_ptr upstream_;  // the connection of the request in progress, if any

  boost::asio::steady_timer timer_;
  std::chrono::steady_clock::time_point deadline_ = std::chrono::steady_clock::time_point::max();
  phase phase_ = phase::idle;
  bool expired_ = false;  // the watchdog fired in the current phase
  bool closed_ = false;
  bool draining_ = false;
  bool client_http10_ = false;
  bool request_complete_ = false;                     // the current request was read to its end
  std::chrono::steady_clock::time_point first_byte_;  // of the current request
};

}  // namespace spillway::proxy
