#include "proxy/tcp_session.h"

#include "common/log.h"
#include "proxy/rate_check.h"
#include "proxy/relay.h"
#include "proxy/upstream_attempt.h"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>

namespace spillway::proxy {

namespace asio = boost::asio;
using asio::ip::tcp;
using namespace asio::experimental::awaitable_operators;

tcp_session::tcp_session(worker& w, std::string listen, tcp::socket socket, tls::server_context_ptr tls)
    : down_(w, std::move(listen), std::move(socket), std::move(tls), this) {}

void tcp_session::start() {
  auto self = shared_from_this();
  auto& io = down_.owner().io();
  down_.start_watchdog(self);
  asio::co_spawn(
      io, [self] { return self->run(); }, asio::detached);
}

void tcp_session::close_both() {
  down_.close();
  if (attempt_ != nullptr && attempt_->conn()) {
    attempt_->conn()->stream.close();
  }
}

void tcp_session::deadline_passed() {
  if (attempt_ != nullptr && attempt_->connecting()) {
    attempt_->conn()->stream.close();  // connect timeout: the attempt moves on to another host
    return;
  }
  idle_expired_ = true;
  close_both();  // handshake or idle timeout: the relays end on errors
}

asio::awaitable<void> tcp_session::run() {
  auto view = down_.owner().view();
  const auto* lv = view->snap->find_listener(down_.listen());
  if (lv != nullptr && lv->rate_limit >= 0) {
    // Before the TLS handshake: a connection over the rate costs no more than its accept.
    std::string key;
    if ((co_await check_rate_limit(*view->snap, lv->rate_limit, down_.owner(), down_.client_address(), nullptr, {},
                                   key))
            .limited) {
      finish(*view->snap, nullptr, error_kind::rate_limited);
      lv = nullptr;
    }
  }
  if (lv != nullptr && co_await down_.handshake()) {
    upstream_attempt attempt(down_.owner(), *view, lv->tcp_upstream, down_.watch(), down_.client_ip(), false, false);
    attempt_ = &attempt;
    std::optional<error_kind> error;
    if (!attempt.admit()) {
      error = attempt.failure();
    } else {
      // No request deadline on L4: the connect timeout bounds each try, the idle timeout the rest.
      error = co_await attempt.start_try(clock::time_point::max(), true);
    }
    if (error) {
      finish(*view->snap, &attempt, error);  // an L4 client only learns it from the close
    } else {
      const auto ended = co_await relay_both(attempt, lv->cfg->splice);
      finish(*view->snap, &attempt, idle_expired_ ? std::optional(error_kind::idle_timeout) : ended);
    }
    attempt_ = nullptr;
  }
  close_both();
  down_.stop();
}

asio::awaitable<std::optional<error_kind>> tcp_session::relay_both(upstream_attempt& attempt, bool splice) {
  const auto idle = std::chrono::duration_cast<clock::duration>(attempt.cfg().timeout.idle);
  down_.set_deadline(clock::now() + idle);
  auto& up = attempt.conn()->stream;
  auto [to_backend, to_client] = co_await (relay(down_.stream(), up, down_.deadline(), idle, &bytes_in_, splice) &&
                                           relay(up, down_.stream(), down_.deadline(), idle, &bytes_out_, splice));
  // A backend that reset the connection (reading from it, or writing to it, failed) counts as a
  // failure; a client that went away does not.
  const bool failure = to_client == relay_end::read_failed || to_backend == relay_end::write_failed;
  attempt.connection_ended(failure);
  co_return failure ? std::optional(error_kind::upstream_reset) : std::nullopt;
}

void tcp_session::finish(const snapshot& snap, const upstream_attempt* attempt, std::optional<error_kind> reason) {
  auto& w = down_.owner();
  if (auto* t = down_.traffic()) {
    t->bytes_in.add(bytes_in_);
    t->bytes_out.add(bytes_out_);
  }
  upstream::host* host = attempt != nullptr ? attempt->host() : nullptr;
  if (snap.cfg->metrics && attempt != nullptr) {
    auto add_bytes = [&](auto& traffic) {
      auto& t = traffic.local(w.index());
      t.bytes_in.add(bytes_in_);
      t.bytes_out.add(bytes_out_);
    };
    add_bytes(attempt->cluster().stats->traffic);
    if (host != nullptr) {
      add_bytes(host->traffic);
    }
  }
  if (!w.log_sampled(snap)) {
    return;
  }
  // One line per connection: no method, path or status (0); the reason says how it ended when it
  // was not by an EOF from either side.
  const auto* lv = snap.find_listener(down_.listen());
  access_record r;
  r.client = down_.client_ip();
  r.listener = lv != nullptr ? std::string_view(lv->cfg->name) : std::string_view(down_.listen());
  if (attempt != nullptr) {
    r.upstream = attempt->cfg().name;
    r.connect_ms = access_ms(attempt->connect_time());
    r.tries = attempt->tries();
  }
  if (host != nullptr) {
    r.backend = host->address();
  }
  r.bytes_in = bytes_in_;
  r.bytes_out = bytes_out_;
  r.duration_ms = access_ms(clock::now() - started_);
  r.reason = reason ? to_string(*reason) : std::string_view();
  const char* flag = reason ? info(*reason).flag : nullptr;
  r.flags = flag != nullptr ? flag : "-";
  r.tls = down_.tls();
  w.log_access(snap, r);
}

}  // namespace spillway::proxy
