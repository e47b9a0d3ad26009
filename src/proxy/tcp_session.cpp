#include "proxy/tcp_session.h"

#include "common/log.h"
#include "proxy/outcome.h"
#include "proxy/relay.h"
#include "upstream/connect.h"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

#include <array>

namespace spillway::proxy {

namespace asio = boost::asio;
using asio::ip::tcp;
using clock = std::chrono::steady_clock;
using namespace asio::experimental::awaitable_operators;

namespace {
constexpr auto nothrow = asio::as_tuple(asio::use_awaitable);
}

tcp_session::tcp_session(worker& w, std::string listen, tcp::socket socket, tls::server_context_ptr tls)
    : worker_(w), listen_(std::move(listen)), tls_(std::move(tls)), downstream_(std::move(socket)), timer_(w.io()) {
  boost::system::error_code ec;
  client_ = downstream_.socket().remote_endpoint(ec);
  downstream_.socket().set_option(tcp::no_delay(true), ec);
  if (tls_) {
    downstream_.start_tls(tls_->context());
  }
  registration_ = worker_.attach(this);  // so that a drain waits for it (up to drain_timeout)
  if (const auto* lv = worker_.view()->snap->find_listener(listen_); lv != nullptr) {
    listener_traffic_ = lv->traffic;
    listener_traffic_->local(worker_.index()).connections_total.add();
  }
}

tcp_session::~tcp_session() {
  if (listener_traffic_) {
    auto& t = listener_traffic_->local(worker_.index());
    t.connections_closed.add();
    t.bytes_in.add(bytes_in_);
    t.bytes_out.add(bytes_out_);
  }
  worker_.detach(registration_);
}

void tcp_session::start() {
  auto self = shared_from_this();
  asio::co_spawn(
      worker_.io(), [self] { return self->run(); }, asio::detached);
  asio::co_spawn(
      worker_.io(), [self] { return self->watchdog(); }, asio::detached);
}

void tcp_session::close_both() {
  downstream_.close();
  if (upstream_) {
    upstream_->close();
  }
}

asio::awaitable<void> tcp_session::watchdog() {
  while (!done_) {
    timer_.expires_at(deadline_);
    co_await timer_.async_wait(nothrow);
    if (done_) {
      break;
    }
    if (clock::now() >= deadline_) {
      deadline_ = clock::time_point::max();
      if (connecting_ && upstream_) {
        upstream_->close();  // connect timeout: run() moves on to another backend
      } else {
        idle_expired_ = true;
        close_both();  // handshake or idle timeout: the relays end on errors
      }
    }
  }
}

asio::awaitable<void> tcp_session::run() {
  auto view = worker_.view();
  const auto* lv = view->snap->find_listener(listen_);
  if (lv == nullptr) {
    close_both();
    done_ = true;
    timer_.cancel();
    co_return;
  }
  if (tls_) {
    deadline_ = clock::now() + tls_->handshake_timeout();  // the watchdog closes a stalled one
    timer_.cancel();
    if (auto ec = co_await downstream_.handshake(asio::ssl::stream_base::server)) {
      log::debug("tcp {}: tls handshake failed: {}", listen_, ec.message());
      if (listener_traffic_) {
        listener_traffic_->local(worker_.index()).tls_handshake_failures.add();
      }
      close_both();
      done_ = true;
      timer_.cancel();
      co_return;
    }
  }
  const auto& cluster = *view->snap->clusters[lv->tcp_upstream];
  auto& lb = *view->balancers[lv->tcp_upstream];
  const auto& up = cluster.cfg;
  idle_ = up.timeout.idle;

  outcome_record rec;
  rec.cluster = &cluster;
  // No backend would take it: none available, or the ones tried refused.
  auto refused = [&rec] { return rec.tries == 0 ? "no_healthy_upstream" : "upstream_connect_failure"; };
  std::array<upstream::host*, 8> tried{};
  std::size_t tried_count = 0;
  upstream::host* h = nullptr;
  upstream::active_request load;
  breaker::circuit_breaker::token token;
  for (std::uint32_t attempt = 0; attempt <= up.retry.attempts && h == nullptr; ++attempt) {
    balancer::choose_context ctx;
    ctx.exclude = std::span<upstream::host* const>(tried.data(), tried_count);
    upstream::host* candidate = lb.choose_host(ctx);
    if (candidate == nullptr) {
      rec.reason = refused();
      break;
    }
    if (tried_count < tried.size()) {
      tried[tried_count++] = candidate;
    }
    // The connection is reserved before the breaker is asked: a half-open breaker's trial slot,
    // once taken, is always given back by a verdict, so a refusal by the limit must come first or
    // the slot would leak and keep the backend refused until a reload.
    if (!cluster.stats->try_reserve_connection(up.limit.max_connections)) {
      cluster.stats->overflow_max_connections.fetch_add(1, std::memory_order_relaxed);
      rec.reason = "upstream_overloaded";
      break;
    }
    if (candidate->circuit) {
      token = candidate->circuit->try_acquire(clock::now());
      if (!token) {
        cluster.stats->connections.fetch_sub(1, std::memory_order_relaxed);
        rec.reason = refused();
        continue;
      }
    }
    ++rec.tries;
    rec.host = candidate;
    load = upstream::active_request(candidate);  // a connection counts as load while it lasts
    candidate->requests_total.fetch_add(1, std::memory_order_relaxed);
    deadline_ = clock::now() + up.timeout.connect;
    timer_.cancel();
    upstream_ = std::make_unique<tls::stream>(tcp::socket(worker_.io()));
    connecting_ = true;
    const auto connect_start = clock::now();
    auto ec = co_await upstream::connect(*upstream_, *candidate, cluster.tls.get());
    connecting_ = false;
    if (!ec) {
      rec.connect_time = clock::now() - connect_start;
      if (view->snap->cfg->metrics) {
        cluster.stats->traffic.local(worker_.index()).connect_time.observe(rec.connect_time);
      }
      h = candidate;
      break;
    }
    rec.reason = "upstream_connect_failure";
    cluster.stats->connections.fetch_sub(1, std::memory_order_relaxed);
    load.release();
    candidate->connect_failures_total.fetch_add(1, std::memory_order_relaxed);
    candidate->failures_total.fetch_add(1, std::memory_order_relaxed);
    judge(worker_, *candidate, token, breaker::outcome{true, false});
    record_outlier(worker_, *candidate, up.outlier, true);
    log::debug("tcp {}: connect to {} failed: {}", listen_, candidate->address(), ec.message());
  }
  if (h == nullptr) {
    // Nothing could take it: an L4 client only learns that from the close.
    if (rec.reason.empty()) {
      rec.reason = "no_healthy_upstream";  // every try refused by a breaker, or out of tries
    }
    finish(*view->snap, rec);
    close_both();
    done_ = true;
    timer_.cancel();
    co_return;
  }
  deadline_ = clock::now() + idle_;
  const bool splice = lv->cfg->splice;
  auto [to_backend, to_client] = co_await (relay(downstream_, *upstream_, deadline_, idle_, &bytes_in_, splice) &&
                                           relay(*upstream_, downstream_, deadline_, idle_, &bytes_out_, splice));
  cluster.stats->connections.fetch_sub(1, std::memory_order_relaxed);
  // A backend that reset the connection (reading from it, or writing to it, failed) counts as a
  // failure; a client that went away does not.
  const bool failure = to_client == relay_end::read_failed || to_backend == relay_end::write_failed;
  if (failure) {
    h->failures_total.fetch_add(1, std::memory_order_relaxed);
  }
  judge(worker_, *h, token, breaker::outcome{failure, false});
  record_outlier(worker_, *h, up.outlier, failure);
  rec.reason = failure ? "upstream_reset" : "";
  if (idle_expired_) {
    rec.reason = "idle_timeout";
  }
  finish(*view->snap, rec);
  close_both();
  done_ = true;
  timer_.cancel();
}

void tcp_session::finish(const snapshot& snap, const outcome_record& rec) {
  if (snap.cfg->metrics) {
    auto add_bytes = [this](auto& traffic) {
      auto& t = traffic.local(worker_.index());
      t.bytes_in.add(bytes_in_);
      t.bytes_out.add(bytes_out_);
    };
    if (rec.cluster != nullptr) {
      add_bytes(rec.cluster->stats->traffic);
    }
    if (rec.host != nullptr) {
      add_bytes(rec.host->traffic);
    }
  }
  if (!worker_.log_sampled(snap)) {
    return;
  }
  // One line per connection: no method, path or status (0); the reason says how it ended when it
  // was not by an EOF from either side.
  const auto client = client_.address().to_string();
  const auto* lv = snap.find_listener(listen_);
  access_record r;
  r.client = client;
  r.listener = lv != nullptr ? std::string_view(lv->cfg->name) : std::string_view(listen_);
  if (rec.cluster != nullptr) {
    r.upstream = rec.cluster->cfg.name;
  }
  if (rec.host != nullptr) {
    r.backend = rec.host->address();
  }
  r.bytes_in = bytes_in_;
  r.bytes_out = bytes_out_;
  r.duration_ms = access_ms(clock::now() - started_);
  r.connect_ms = access_ms(rec.connect_time);
  r.tries = rec.tries;
  r.reason = rec.reason;
  const char* flag = response_flag(rec.reason);
  r.flags = flag != nullptr ? flag : "-";
  r.tls = tls_ != nullptr;
  worker_.log_access(snap, r);
}

}  // namespace spillway::proxy
