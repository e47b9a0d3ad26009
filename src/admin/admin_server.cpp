#include "admin/admin_server.h"

#include "admin/dashboard_page.h"
#include "admin/degradation_report.h"
#include "admin/metrics_text.h"
#include "admin/status_json.h"
#include "common/completion.h"
#include "common/listen.h"
#include "http/parser.h"
#include "http/status.h"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>

#include <fmt/format.h>

#include <array>

namespace spillway::admin {

namespace asio = boost::asio;
using asio::ip::tcp;

struct admin_server::connection : std::enable_shared_from_this<connection> {
  connection(admin_server& server, tcp::socket s)
      : server_(server), counters_(server.counters_), socket_(std::move(s)), watchdog_(socket_.get_executor()) {
    ++counters_->active;
  }
  ~connection() { --counters_->active; }

  // What the watchdog enforces now: a deadline per phase, and whether passing it is a rejection
  // (a slow request or a reader that stalls) or just the end of an idle keep-alive connection.
  enum class phase { idle, head, body, write };

  void reject(rejection r) { ++counters_->rejected[static_cast<std::size_t>(r)]; }

  void arm(phase p, std::chrono::milliseconds d) {
    phase_ = p;
    watchdog_.expires_after(d);
  }

  // Closes the socket when the current phase's deadline passes; every await on the socket then
  // ends with an error and the connection's coroutine returns.
  asio::awaitable<void> watch() {
    auto self = shared_from_this();
    while (socket_.is_open()) {
      co_await watchdog_.async_wait(nothrow);
      if (socket_.is_open() && watchdog_.expiry() <= asio::steady_timer::clock_type::now()) {
        if (phase_ != phase::idle) {
          reject(rejection::timeout);
        }
        boost::system::error_code ignored;
        socket_.close(ignored);
      }
    }
  }

  asio::awaitable<bool> read_more() {
    if (begin_ == end_) {
      begin_ = end_ = 0;
      auto [ec, n] = co_await socket_.async_read_some(asio::buffer(buf_), nothrow);
      if (ec) {
        co_return false;
      }
      end_ = n;
    }
    co_return true;
  }

  asio::awaitable<void> run() {
    arm(phase::head, server_.limits_.header_timeout);
    asio::co_spawn(socket_.get_executor(), watch(), asio::detached);
    while (co_await handle_one()) {
    }
    boost::system::error_code ignored;
    socket_.close(ignored);
    watchdog_.cancel();
  }

  // Reads a request head: the idle deadline until its first byte, then header_timeout for the whole
  // of it. False when the connection is done (closed, or answered 431 or 400).
  asio::awaitable<bool> read_head() {
    bool started = false;
    while (true) {
      if (begin_ == end_ && !co_await read_more()) {
        co_return false;
      }
      if (!started) {
        started = true;
        if (phase_ == phase::idle) {
          arm(phase::head, server_.limits_.header_timeout);
        }
      }
      auto r = parser_.feed(buf_.data() + begin_, end_ - begin_);
      if (parser_.head_bytes() > server_.limits_.max_head) {
        reject(rejection::too_large);
        co_await reply(431, "text/plain", "request header fields too large\n", true, false);
        co_return false;
      }
      if (r.what == http::parser::event::error) {
        reject(rejection::bad_request);
        co_await reply(400, "text/plain", "bad request\n", true, false);
        co_return false;
      }
      begin_ += r.consumed;
      if (r.what == http::parser::event::headers_complete) {
        co_return true;
      }
    }
  }

  // The admin API takes no request bodies worth reading: skips what is sent, within max_body.
  // False when the connection is done (closed, or refused with 400 or 413).
  asio::awaitable<bool> skip_body(bool is_head) {
    std::size_t body_bytes = 0;
    while (true) {
      auto r = parser_.feed(buf_.data() + begin_, end_ - begin_);
      if (r.what == http::parser::event::error) {
        co_await refuse({rejection::bad_request, 400, "bad request\n", {}}, is_head);
        co_return false;
      }
      begin_ += r.consumed;
      body_bytes += r.consumed;
      if (body_bytes > server_.limits_.max_body) {
        co_await refuse({rejection::too_large, 413, "request body too large\n", {}}, is_head);
        co_return false;
      }
      if (r.what == http::parser::event::message_complete) {
        co_return true;
      }
      begin_ = end_;
      if (!co_await read_more()) {
        co_return false;
      }
    }
  }

  // Reads and answers one request; false when the connection is done.
  asio::awaitable<bool> handle_one() {
    if (!co_await read_head()) {
      co_return false;
    }
    // Copied now: the head's views do not survive what the body phase may append (trailers).
    const auto& head = parser_.head();
    const std::string method(head.method);
    const std::string url(head.url);
    const bool is_head = method == "HEAD";
    const bool close = !head.keep_alive;
    const bool has_body = head.chunked || (head.has_content_length && head.content_length > 0);
    if (auto refused =
            admit(head, {server_.listen_text_, server_.token_, server_.limits_.max_body, server_.open_probes_})) {
      co_await refuse(*refused, is_head);
      co_return false;
    }
    if (has_body) {
      arm(phase::body, server_.limits_.header_timeout);
    }
    if (!co_await skip_body(is_head)) {
      co_return false;
    }
    const auto q = url.find('?');
    const std::string_view target(url);
    const request req{method, target.substr(0, q), q == std::string::npos ? std::string_view() : target.substr(q + 1)};
    const response res = server_.routes_.dispatch(req);
    co_await reply(res.status, res.content_type, res.body, close, is_head);
    if (close || !socket_.is_open()) {
      co_return false;
    }
    arm(phase::idle, server_.limits_.idle_timeout);
    co_return true;
  }

  // Answers a refused request and closes: its body is never read, and nothing more is owed to such
  // a client.
  asio::awaitable<void> refuse(const refusal& r, bool is_head) {
    reject(r.why);
    const std::string body(r.body);
    co_await reply(r.status, "text/plain", body, true, is_head, r.extra_headers);
  }

  // Writes one response within write_timeout (a client that never reads is cut off). `no_body`:
  // the answer to a HEAD request (its length is announced, its body not sent).
  asio::awaitable<void> reply(int status, std::string_view type, const std::string& body, bool close, bool no_body,
                              std::string_view extra_headers = {}) {
    arm(phase::write, server_.limits_.write_timeout);
    const char* reason = http::reason_phrase(status);
    auto head = fmt::format(
        "HTTP/1.1 {} {}\r\ncontent-type: {}\r\ncontent-length: {}\r\ncache-control: no-store\r\n"
        "x-content-type-options: nosniff\r\n{}{}\r\n",
        status, reason, type, body.size(), extra_headers, close ? "connection: close\r\n" : "");
    std::array<asio::const_buffer, 2> bufs{asio::buffer(head), asio::buffer(body.data(), no_body ? 0 : body.size())};
    auto [ec, n] = co_await asio::async_write(socket_, bufs, nothrow);
    if (ec || close) {
      boost::system::error_code ignored;
      socket_.shutdown(tcp::socket::shutdown_send, ignored);
      socket_.close(ignored);
    }
  }

  admin_server& server_;
  std::shared_ptr<counters> counters_;
  tcp::socket socket_;
  asio::steady_timer watchdog_;
  phase phase_ = phase::head;
  std::array<char, 8192> buf_;
  std::size_t begin_ = 0;
  std::size_t end_ = 0;
  http::parser parser_{http::parser::kind::request};
};

admin_server::admin_server(asio::io_context& io, const config::admin& cfg, state_fn get_state, reload_fn reload,
                           limits lim)
    : io_(io),
      acceptor_(io),
      listen_text_(cfg.listen.text),
      token_(cfg.token),
      open_probes_(cfg.open_probes),
      limits_(lim),
      get_state_(std::move(get_state)),
      reload_(std::move(reload)) {
  add_routes();
  const auto& listen = cfg.listen;
  boost::system::error_code ec;
  tcp::endpoint ep(asio::ip::make_address(listen.host, ec), listen.port);
  if (!ec) {
    // SO_REUSEPORT like the listeners: shared with a new process during a zero-downtime restart.
    ec = open_and_bind(acceptor_, ep);
  }
  if (!ec) {
    acceptor_.listen(asio::socket_base::max_listen_connections, ec);
  }
  if (ec) {
    throw std::runtime_error("admin API cannot listen on " + listen.text + ": " + ec.message());
  }
}

void admin_server::add_routes() {
  routes_.add("GET", "/ready", [this](const request&) -> response {
    const bool ready = get_state_().ready;
    return {ready ? 200 : 503, "text/plain", ready ? "ready\n" : "draining\n"};
  });
  // A liveness probe: 200 whenever the control thread answers, through startup and drain alike (a
  // drain must not get the process restarted). It reads no state, so it costs next to nothing.
  routes_.add("GET", "/live", [](const request&) -> response { return {200, "text/plain", "alive\n"}; });
  routes_.add("GET", "/status", [this](const request&) -> response {
    return {200, "application/json", status_json(get_state_())};
  });
  routes_.add("GET", "/metrics", [this](const request&) -> response {
    return {200, "text/plain; version=0.0.4", metrics_text(get_state_()) + own_metrics_text()};
  });
  routes_.add("GET", "/", [](const request&) -> response {
    return {200, "text/html; charset=utf-8", std::string(dashboard_page)};
  });
  routes_.add("GET", "/degradation", [this](const request& r) -> response {
    auto st = get_state_();
    if (r.query.find("format=text") != std::string_view::npos) {
      return {200, "text/plain; charset=utf-8", degradation_text(st)};
    }
    return {200, "application/json", degradation_json(st)};
  });
  routes_.add("POST", "/degradation/reset", [this](const request&) -> response {
    if (auto st = get_state_(); st.journal != nullptr) {
      st.journal->clear_incidents();
    }
    return {200, "text/plain", "incidents cleared\n"};
  });
  routes_.add("POST", "/reload", [this](const request&) -> response {
    auto result = reload_();
    return {result.ok ? 200 : 400, "text/plain", std::move(result.text)};
  });
}

void admin_server::start() {
  asio::co_spawn(
      io_,
      [this]() -> asio::awaitable<void> {
        while (acceptor_.is_open()) {
          auto [ec, socket] = co_await acceptor_.async_accept(nothrow);
          if (ec) {
            if (!acceptor_.is_open() || ec == asio::error::operation_aborted) {
              co_return;
            }
            continue;
          }
          if (counters_->active >= limits_.max_connections) {
            // Closed at once, before reading a byte: a flood of idle sockets costs one counter.
            ++counters_->connections_rejected;
            boost::system::error_code ignored;
            socket.close(ignored);
            continue;
          }
          auto c = std::make_shared<connection>(*this, std::move(socket));
          asio::co_spawn(
              io_, [c]() { return c->run(); }, asio::detached);
        }
      },
      asio::detached);
}

void admin_server::stop() {
  boost::system::error_code ec;
  acceptor_.close(ec);
}

std::size_t admin_server::connections_active() const { return counters_->active; }

std::string admin_server::own_metrics_text() const {
  std::string out =
      "# HELP spillway_admin_requests_rejected_total admin API requests refused, by reason\n"
      "# TYPE spillway_admin_requests_rejected_total counter\n";
  for (std::size_t i = 0; i < counters_->rejected.size(); ++i) {
    out += fmt::format("spillway_admin_requests_rejected_total{{reason=\"{}\"}} {}\n",
                       to_string(static_cast<rejection>(i)), counters_->rejected[i]);
  }
  out += fmt::format(
      "# HELP spillway_admin_connections_rejected_total admin connections closed at once (max_connections reached)\n"
      "# TYPE spillway_admin_connections_rejected_total counter\n"
      "spillway_admin_connections_rejected_total {}\n"
      "# HELP spillway_admin_connections_active open admin API connections\n"
      "# TYPE spillway_admin_connections_active gauge\n"
      "spillway_admin_connections_active {}\n",
      counters_->connections_rejected, counters_->active);
  return out;
}

}  // namespace spillway::admin
