#include "health/checker.h"

#include "common/completion.h"
#include "http/parser.h"
#include "proxy/grpc.h"
#include "proxy/h2_upstream.h"
#include "upstream/connect.h"
#include "upstream/journal.h"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/write.hpp>

#include <fmt/format.h>

#include <array>

namespace spillway::health {

namespace asio = boost::asio;
using asio::ip::tcp;
using namespace asio::experimental::awaitable_operators;

namespace {
// A check needs only the status line: a backend (or whatever answers on its port) that sends more
// head than this fails the check, instead of growing the parser's storage until the timeout.
constexpr std::size_t max_check_response_bytes = 64 * 1024;
}  // namespace

struct checker::probe {
  probe(asio::io_context& io, upstream::host_ptr h, config::health_check c)
      : host(std::move(h)),
        cfg(std::move(c)),
        state(cfg.healthy_threshold, cfg.unhealthy_threshold, health_state::start::unknown),
        timer(io) {}

  upstream::host_ptr host;
  tls::client_context_ptr tls;  // http checks of a TLS upstream speak TLS too (tcp ones only connect)
  bool h2 = false;              // the upstream speaks HTTP/2 (protocol: http2): so do http checks
  config::health_check cfg;
  health_state state;
  asio::steady_timer timer;
  bool stopped = false;
  bool first_done = false;
};

checker::checker(asio::io_context& io) : io_(io), random_(std::random_device{}()) {}

checker::~checker() { stop(); }

config::duration checker::jittered(config::duration base, double spread) {
  // Uniform in [base * (1 - spread), base * (1 + spread)], so that probes of many hosts (and of
  // many balancers probing the same host) do not fire in lockstep.
  std::uniform_real_distribution<double> d(1.0 - spread, 1.0 + spread);
  return config::duration(static_cast<config::duration::rep>(static_cast<double>(base.count()) * d(random_)));
}

void checker::update(const std::vector<upstream::cluster_ptr>& clusters) {
  std::map<const upstream::host*, std::shared_ptr<probe>> next;
  for (const auto& c : clusters) {
    for (const auto& h : c->hosts) {
      if (!c->cfg.health.enabled) {
        h->set_initial(upstream::out_kind::health, true);
        continue;
      }
      if (!h->is_resolved()) {
        // A hostname with no answer yet: nothing to probe (startup does not wait for it). Its
        // addresses, once it resolves, are new hosts with probes of their own.
        continue;
      }
      if (auto it = probes_.find(h.get()); it != probes_.end()) {
        it->second->tls = c->tls;  // a reload may change the upstream's TLS settings
        it->second->h2 = c->cfg.protocol == config::upstream_protocol::http2;
        next.emplace(h.get(), it->second);
        probes_.erase(it);
        continue;
      }
      auto p = std::make_shared<probe>(io_, h, c->cfg.health);
      p->tls = c->tls;
      p->h2 = c->cfg.protocol == config::upstream_protocol::http2;
      // Unknown until the first answer: no traffic to a host nobody has seen alive.
      h->set_initial(upstream::out_kind::health, false, "not checked yet");
      ++first_pending_;
      next.emplace(h.get(), p);
      asio::co_spawn(io_, run(p), asio::detached);
    }
  }
  // What is left in probes_ is no longer configured.
  for (auto& [h, p] : probes_) {
    p->stopped = true;
    p->timer.cancel();
    if (!p->first_done) {
      p->first_done = true;
      first_result_in();
    }
  }
  probes_ = std::move(next);
}

void checker::stop() {
  for (auto& [h, p] : probes_) {
    p->stopped = true;
    p->timer.cancel();
  }
  probes_.clear();
}

void checker::when_first_round_done(std::function<void()> done) {
  if (first_pending_ == 0) {
    done();
    return;
  }
  first_round_waiters_.push_back(std::move(done));
}

void checker::first_result_in() {
  if (first_pending_ > 0 && --first_pending_ == 0) {
    auto waiters = std::move(first_round_waiters_);
    first_round_waiters_.clear();
    for (auto& w : waiters) {
      w();
    }
  }
}

asio::awaitable<void> checker::run(std::shared_ptr<probe> p) {
  // The first check runs at once, jittered by up to a tenth of the interval (at most 100 ms), so
  // that startup is not delayed by a whole interval.
  auto first_delay = std::min(jittered(p->cfg.interval / 20, 1.0), config::duration(100));
  p->timer.expires_after(first_delay);
  co_await p->timer.async_wait(nothrow);
  while (!p->stopped) {
    std::string error = co_await check_once(*p);
    if (p->stopped) {
      break;
    }
    const bool ok = error.empty();
    auto& h = *p->host;
    const bool was_known = p->state.known();
    const bool was_healthy = p->state.healthy();
    h.note_health_check(error);
    if (!ok) {
      if (was_healthy) {
        h.note_failure(false);
      }
    } else if (was_known && !was_healthy && h.events_journal != nullptr) {
      h.events_journal->sign_of_life(h);
    }
    const bool flipped = p->state.observe(ok);
    if (flipped || !was_known) {
      if (p->state.healthy()) {
        h.mark_in(upstream::out_kind::health);
      } else {
        h.mark_out(upstream::out_kind::health, error);
      }
    }
    if (!p->first_done) {
      p->first_done = true;
      first_result_in();
    }
    p->timer.expires_after(jittered(p->cfg.interval, 0.1));
    co_await p->timer.async_wait(nothrow);
  }
}

asio::awaitable<std::string> checker::check_once(probe& p) {
  asio::steady_timer deadline(io_);
  deadline.expires_after(p.cfg.timeout);
  const bool h2 =
      p.cfg.type == config::health_check::kind::grpc || (p.h2 && p.cfg.type == config::health_check::kind::http);
  // (Named first: GCC 12 mishandles a conditional's temporary inside a co_await expression.)
  auto check = h2 ? check_h2(p) : check_http1(p);
  auto result = co_await (std::move(check) || deadline.async_wait(nothrow));
  if (result.index() == 1) {
    co_return "timeout after " + std::to_string(p.cfg.timeout.count()) + "ms";
  }
  co_return std::get<0>(std::move(result));
}

asio::awaitable<std::string> checker::check_h2(probe& p) {
  // The check's own connection (not a worker's pooled one: the checker runs on the control
  // thread), through the same HTTP/2 client as requests, closed when the check ends either way.
  const bool grpc = p.cfg.type == config::health_check::kind::grpc;
  auto conn = std::make_unique<proxy::upstream_connection>(tcp::socket{io_}, p.host, nullptr, p.tls);
  if (auto ec = co_await upstream::connect(conn->stream, *p.host, p.tls.get(), false)) {
    co_return (conn->stream.is_tls() ? "tls handshake: " : "connect: ") + ec.message();
  }
  if (!proxy::h2_upstream::alpn_ok(*conn)) {
    co_return std::string("tls handshake: the backend did not agree to h2 by ALPN");
  }
  auto session = std::make_shared<proxy::h2_upstream>(io_, std::move(conn), nullptr, max_check_response_bytes, 100);
  struct closer {
    std::shared_ptr<proxy::h2_upstream>& s;
    ~closer() { s->close(); }
  } close_after{session};
  session->start();
  const std::string& authority = p.cfg.http_host.empty() ? p.host->authority() : p.cfg.http_host;
  std::vector<http::header> fields = {
      {":method", grpc ? "POST" : "GET"},
      {":scheme", p.tls ? "https" : "http"},
      {":authority", authority},
      {":path", grpc ? "/grpc.health.v1.Health/Check" : std::string_view(p.cfg.http_path)},
      {"user-agent", "spillway-health-check"},
  };
  if (grpc) {
    fields.push_back({"content-type", "application/grpc"});
    fields.push_back({"te", "trailers"});
  }
  auto call = session->submit(fields, grpc);
  if (!call) {
    co_return std::string("the backend refused a stream");
  }
  if (grpc) {
    call->out = proxy::grpc_health_request(p.cfg.grpc_service);
    call->out_eof = true;
    session->resume(*call);
  }
  // An http check needs the head only; a gRPC one the whole answer (its status is in the trailers).
  const auto cancel = co_await asio::this_coro::cancellation_state;
  while (!(call->head_done && !grpc) && !call->ended) {
    if (!call->wake.ready()) {
      co_await call->wake.sleep();
    }
    if (cancel.cancelled() != asio::cancellation_type::none) {
      co_return std::string("cancelled");  // the timeout won: check_once says so
    }
  }
  if (!call->head_done) {
    co_return call->too_large ? fmt::format("response head over {} KiB", max_check_response_bytes / 1024)
    : call->refused           ? std::string("stream refused")
                              : fmt::format("stream closed before a response (HTTP/2 error {})", call->error);
  }
  if (!grpc) {
    for (int expected : p.cfg.expect_status) {
      if (call->status == expected) {
        co_return std::string();
      }
    }
    co_return "status " + std::to_string(call->status);
  }
  if (call->error != 0) {
    co_return fmt::format("stream reset (HTTP/2 error {})", call->error);
  }
  if (call->status != 200) {
    co_return "status " + std::to_string(call->status);
  }
  auto grpc_status = call->trailer("grpc-status");
  if (grpc_status.empty()) {
    grpc_status = call->header("grpc-status");  // a trailers-only answer
  }
  if (grpc_status != "0") {
    const auto message = call->trailers.empty() ? call->header("grpc-message") : call->trailer("grpc-message");
    co_return fmt::format("grpc-status {}{}{}", grpc_status.empty() ? "missing" : grpc_status,
                          message.empty() ? "" : ": ", message.substr(0, 200));
  }
  switch (proxy::grpc_health_status(call->body)) {
    case 1:
      co_return std::string();
    case 2:
      co_return std::string("NOT_SERVING");
    case 3:
      co_return std::string("SERVICE_UNKNOWN");
    case 0:
      co_return std::string("UNKNOWN");
    default:
      co_return std::string("malformed HealthCheckResponse");
  }
}

asio::awaitable<std::string> checker::check_http1(probe& p) {
  tls::stream socket(tcp::socket{io_});
  const bool http_check = p.cfg.type == config::health_check::kind::http;
  auto attempt = [&]() -> asio::awaitable<std::string> {
    // The health detail names the failure, so a handshake failure need not be logged twice.
    auto ec = co_await upstream::connect(socket, *p.host, http_check ? p.tls.get() : nullptr, false);
    if (ec) {
      co_return (socket.is_tls() ? "tls handshake: " : "connect: ") + ec.message();
    }
    if (!http_check) {
      co_return std::string();
    }
    const std::string& host = p.cfg.http_host.empty() ? p.host->authority() : p.cfg.http_host;
    std::string request = "GET " + p.cfg.http_path + " HTTP/1.1\r\nHost: " + host +
                          "\r\nUser-Agent: spillway-health-check\r\nConnection: close\r\n\r\n";
    auto [wec, wn] = co_await asio::async_write(socket, asio::buffer(request), nothrow);
    if (wec) {
      co_return "send: " + wec.message();
    }
    http::parser parser(http::parser::kind::response);
    std::array<char, 4096> buf;
    std::size_t received = 0;
    while (true) {
      auto [rec, n] = co_await socket.async_read_some(asio::buffer(buf), nothrow);
      if (rec) {
        co_return tls::is_eof(rec) ? std::string("closed before a response") : "receive: " + rec.message();
      }
      received += n;
      if (received > max_check_response_bytes) {
        co_return fmt::format("response head over {} KiB", max_check_response_bytes / 1024);
      }
      auto r = parser.feed(buf.data(), n);
      if (r.what == http::parser::event::error) {
        co_return std::string("malformed response: ") + parser.error_reason();
      }
      if (r.what == http::parser::event::headers_complete) {
        int status = parser.head().status;
        for (int expected : p.cfg.expect_status) {
          if (status == expected) {
            co_return std::string();
          }
        }
        co_return "status " + std::to_string(status);
      }
    }
  };
  co_return co_await attempt();
}

}  // namespace spillway::health
