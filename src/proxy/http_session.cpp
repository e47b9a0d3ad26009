#include "proxy/http_session.h"

#include "common/log.h"
#include "proxy/retry_policy.h"
#include "proxy/upstream_attempt.h"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

#include <algorithm>
#include <cstring>

namespace spillway::proxy {

namespace asio = boost::asio;
using asio::awaitable;
using asio::ip::tcp;

namespace {

constexpr auto nothrow = asio::as_tuple(asio::use_awaitable);

const char* flags_of(const std::optional<error_kind>& local, int status) {
  if (local) {
    return info(*local).flag;
  }
  return status == 0 ? "DC" : "-";  // DC: the client went away before an answer
}

}  // namespace

http_session::http_session(worker& w, std::string listen, tcp::socket socket, tls::server_context_ptr tls)
    : down_(w, std::move(listen), std::move(socket), std::move(tls), this) {
  out_.reserve(4096);
  facts_.client_ip = down_.client_ip();
  facts_.tls = down_.tls();
  // Accepted in the moment the drain began (the accept completed before the acceptor closed):
  // answer what comes within the grace, with `connection: close`, like every other connection.
  draining_ = w.draining();
}

void http_session::start() {
  auto self = shared_from_this();
  auto& io = down_.owner().io();
  asio::co_spawn(
      io, [self] { return self->run(); }, asio::detached);
  asio::co_spawn(
      io, [self] { return self->down_.watchdog(); }, asio::detached);
}

void http_session::force_close() {
  if (attempt_ != nullptr && attempt_->conn()) {
    attempt_->conn()->stream.close();
  }
  down_.close();
}

void http_session::drain() {
  draining_ = true;
  if (phase_ == phase::idle) {
    // An idle keep-alive connection is closed once it has been idle for a short grace: a client
    // that sent its next request just as the drain began gets an answer (with `connection:
    // close`) instead of a reset it cannot tell from a failure.
    down_.set_deadline(std::max(clock::now(), idle_since_ + drain_idle_grace));
  }
}

void http_session::deadline_passed() {
  auto close_upstream = [this] {
    if (attempt_ != nullptr && attempt_->conn()) {
      attempt_->conn()->stream.close();
    }
  };
  switch (phase_) {
    case phase::idle:
      down_.close();
      break;
    case phase::head:
      down_.cancel();  // run() sees the read cancelled and answers 408
      break;
    case phase::upstream:
      // run() sees the upstream operation fail and answers 504 or tries another host. A client
      // stalled mid-body is cut off too.
      close_upstream();
      down_.cancel();
      break;
    case phase::streaming:
      close_upstream();
      down_.close();
      break;
  }
}

awaitable<void> http_session::run() {
  const bool ok = co_await down_.handshake();
  while (ok && !closed_) {
    auto result = co_await serve_request();
    if (result == next::close || draining_) {
      break;
    }
  }
  if (ok && down_.tls() && !down_.expired()) {
    // A close_notify tells the client that a response delimited by the close is whole. Bounded: a
    // client that reads nothing more is cut off by the watchdog.
    phase_ = phase::streaming;
    down_.set_deadline(clock::now() + std::chrono::seconds(1));
    co_await down_.stream().shutdown_send();
  }
  down_.close();
  closed_ = true;
  down_.stop();
}

awaitable<std::size_t> http_session::read_downstream() {
  if (dbegin_ == dend_) {
    dbegin_ = dend_ = 0;
  } else if (dend_ == dbuf_.size()) {
    std::memmove(dbuf_.data(), dbuf_.data() + dbegin_, dend_ - dbegin_);
    dend_ -= dbegin_;
    dbegin_ = 0;
  }
  auto [ec, n] =
      co_await down_.stream().async_read_some(asio::buffer(dbuf_.data() + dend_, dbuf_.size() - dend_), nothrow);
  if (ec) {
    co_return 0;
  }
  dend_ += n;
  co_return n;
}

awaitable<http_session::next> http_session::serve_request() {
  rec_ = request_record{};
  auto result = co_await handle_request();
  if (rec_.started) {
    finish_request();
  }
  co_return result;
}

void http_session::finish_request() {
  auto& w = down_.owner();
  const auto elapsed = clock::now() - first_byte_;
  const auto& view = rec_.view ? rec_.view : w.view();
  const auto& snap = *view->snap;
  const auto* lv = snap.find_listener(down_.listen());
  if (snap.cfg->metrics) {
    auto count = [&](stats::request_traffic& t) {
      t.responses.add(rec_.status);
      t.bytes_in.add(rec_.bytes_in);
      t.bytes_out.add(rec_.bytes_out);
      t.duration.observe(elapsed);
    };
    if (auto* t = down_.traffic()) {
      count(*t);
      if (rec_.local) {
        t->local_replies[std::min<std::size_t>(static_cast<std::size_t>(*rec_.local), t->local_replies.size() - 1)]
            .add();
      }
    }
    if (lv != nullptr && rec_.route >= 0 && static_cast<std::size_t>(rec_.route) < lv->route_traffic.size()) {
      lv->route_traffic[rec_.route]->local(w.index()).responses.add(rec_.status);
    }
    if (rec_.cluster != nullptr) {
      count(rec_.cluster->stats->traffic.local(w.index()));
    }
    if (rec_.host != nullptr) {
      count(rec_.host->traffic.local(w.index()));
    }
  }
  if (!w.log_sampled(snap)) {
    return;
  }
  const auto& req = request_parser_.head();
  const bool have_head = request_parser_.head_bytes() > 0 && rec_.view != nullptr;
  access_record r;
  r.client = down_.client_ip();
  r.listener = lv != nullptr ? std::string_view(lv->cfg->name) : std::string_view(down_.listen());
  r.route = rec_.route;
  if (have_head) {
    r.method = req.method;
    r.path = req.url;
    r.host = req.find("host");
  }
  r.status = rec_.status;
  if (rec_.cluster != nullptr) {
    r.upstream = rec_.cluster->cfg.name;
  }
  if (rec_.host != nullptr) {
    r.backend = rec_.host->address();
  }
  r.bytes_in = rec_.bytes_in;
  r.bytes_out = rec_.bytes_out;
  r.duration_ms = access_ms(elapsed);
  r.connect_ms = access_ms(rec_.connect_time);
  r.upstream_ms = access_ms(rec_.upstream_time);
  r.tries = rec_.tries;
  if (rec_.local) {
    r.reason = to_string(*rec_.local);
  }
  r.flags = flags_of(rec_.local, rec_.status);
  r.request_id = have_request_id_ ? std::string_view(request_id_.data(), request_id_.size())
                                  : (have_head ? req.find("x-request-id") : std::string_view());
  r.tls = down_.tls();
  w.log_access(snap, r);
}

awaitable<http_session::next> http_session::handle_request() {
  // Limits that apply before the request is routed come from the snapshot current now; the
  // snapshot itself is taken only once the head is in (below), so that a reload while this
  // connection sits idle applies to its next request.
  config::duration header_timeout;
  std::uint64_t max_request_headers;
  {
    const auto* lv = down_.owner().view()->snap->find_listener(down_.listen());
    if (lv == nullptr) {
      co_return next::close;  // a reload removed this listener: its connections drain
    }
    header_timeout = lv->header_timeout;
    max_request_headers = lv->cfg->max_request_headers;
    request_parser_.set_limits(max_request_headers, lv->cfg->max_request_header_fields);
    // Draining: a connection accepted just before the drain, or one whose client has not yet
    // seen a `connection: close`, still gets its next request answered within the grace.
    down_.set_deadline(clock::now() +
                       (draining_ ? std::chrono::duration_cast<config::duration>(drain_idle_grace) : lv->idle_timeout));
  }
  phase_ = phase::idle;
  idle_since_ = clock::now();
  down_.clear_expired();
  request_complete_ = false;
  have_request_id_ = false;

  // --- the request head ---
  bool started = false;
  while (true) {
    if (dbegin_ == dend_) {
      if (co_await read_downstream() == 0) {
        if (down_.expired() && phase_ == phase::head) {
          co_return co_await send_local(error_kind::header_timeout, true);
        }
        co_return next::close;  // the client left, or the connection sat idle too long
      }
    }
    if (!started) {
      started = true;
      rec_.started = true;
      phase_ = phase::head;
      first_byte_ = clock::now();
      down_.set_deadline(first_byte_ + header_timeout);
    }
    auto r = request_parser_.feed(dbuf_.data() + dbegin_, dend_ - dbegin_);
    if (r.what == http::parser::event::error) {
      log::debug("refused request from {}: {}", down_.client_ip(), request_parser_.error_reason());
      co_return co_await send_local(
          request_parser_.error_too_large() ? error_kind::headers_too_large : error_kind::malformed_request, true);
    }
    dbegin_ += r.consumed;
    if (request_parser_.head_bytes() > max_request_headers) {
      co_return co_await send_local(error_kind::headers_too_large, true);
    }
    if (r.what == http::parser::event::headers_complete) {
      break;
    }
  }

  // This request runs on the snapshot current now and keeps it alive until it ends.
  const auto view = down_.owner().view();
  rec_.view = view;
  rec_.bytes_in += request_parser_.head_bytes();
  const auto* found = view->snap->find_listener(down_.listen());
  if (found == nullptr) {
    co_return co_await send_local(error_kind::no_route, true);  // removed while the head arrived
  }
  error_kind refusal = error_kind::no_route;
  bool close = true;
  const auto* route = route_request(*found, refusal, close);
  if (route == nullptr) {
    co_return co_await send_local(refusal, close);
  }
  co_return co_await forward(view, route->upstream_index);
}

const compiled_route* http_session::route_request(const listener_view& lv, error_kind& refusal, bool& close) {
  const auto& req = request_parser_.head();
  facts_.http10 = req.version_major == 1 && req.version_minor == 0;
  facts_.upgrade = false;
  close = true;
  if (!req.chunked && req.content_length == 0) {
    // No body: let the parser close the message now, so that answers made here can keep the
    // connection alive. Pipelined bytes after it stay unconsumed.
    request_complete_ = request_parser_.feed(dbuf_.data() + dbegin_, 0).what == http::parser::event::message_complete;
  }
  if (req.method == "CONNECT") {
    refusal = error_kind::method_not_allowed;
    return nullptr;
  }
  if (const char* why = check_request(req, facts_.http10, facts_.shape, scratch_)) {
    log::debug("refused request from {}: {}", down_.client_ip(), why);
    refusal = error_kind::malformed_request;
    return nullptr;
  }
  // An Upgrade (WebSocket) is passed on; HTTP/1.0 has no upgrades. An upgrade to cleartext HTTP/2
  // (h2c) is not: a tunnel to it would let a client send requests the router never sees (h2c
  // smuggling), so the request goes on as plain HTTP/1.1 without it.
  facts_.upgrade =
      req.upgrade && !facts_.http10 && !req.find("upgrade").empty() && !http::has_token(req.find("upgrade"), "h2c");
  if (lv.cfg->max_request_body > 0 && req.content_length > lv.cfg->max_request_body) {
    refusal = error_kind::body_too_large;
    return nullptr;
  }
  const auto& shape = facts_.shape;
  auto host = normalize_host(shape.host_override.empty() ? req.find("host") : shape.host_override, host_scratch_);
  const auto* route = find_route(lv.routes, host, shape.route_path, req);
  if (route == nullptr) {
    refusal = error_kind::no_route;
    close = false;
    return nullptr;
  }
  rec_.route = static_cast<int>(route - lv.routes.data());
  return route;
}

awaitable<http_session::next> http_session::send_local(error_kind kind, bool close, const config::upstream* up) {
  // A request whose body was not read to the end leaves the connection in an unknown state.
  close = close || !request_complete_ || draining_;
  const auto retry_after = up != nullptr ? up->degrade.retry_after : config::degradation{}.retry_after;
  build_local_reply(kind, close, facts_.http10, request_parser_.head().method == "HEAD",
                    static_cast<std::uint32_t>((retry_after.count() + 999) / 1000), out_);
  phase_ = phase::streaming;
  rec_.status = status_of(kind);
  rec_.local = kind;
  // A client that does not read its answer (after a timeout, say) cannot hold the session.
  down_.set_deadline(clock::now() + local_reply_timeout);
  auto [ec, n] = co_await asio::async_write(down_.stream(), asio::buffer(out_), nothrow);
  rec_.bytes_out += n;
  if (ec || close) {
    co_return next::close;
  }
  co_return next::keep_alive;
}

http_session::try_context http_session::begin_forward(const worker_view& view, const upstream_attempt& attempt) {
  const auto& req = request_parser_.head();
  rec_.cluster = &attempt.cluster();
  try_context t;
  t.request_deadline = first_byte_ + attempt.cfg().timeout.request;
  t.expect_continue = !facts_.http10 && http::has_token(req.find("expect"), "100-continue");
  facts_.drop_expect = t.expect_continue;  // Spillway answers 100-continue itself
  t.head_request = req.method == "HEAD";
  t.max_body = view.snap->find_listener(down_.listen())->cfg->max_request_body;
  if (!has_request_id(req)) {
    // A random version-4 UUID, made once per request so that retries carry the same one.
    request_id_ = make_request_id(down_.owner().random()(), down_.owner().random()());
    have_request_id_ = true;
  }
  facts_.request_id = have_request_id_ ? std::string_view(request_id_.data(), request_id_.size()) : "";
  replay_.clear();
  replay_ok_ = true;
  body_started_ = false;
  phase_ = phase::upstream;
  down_.set_deadline(t.request_deadline);
  return t;
}

awaitable<http_session::next> http_session::forward(const std::shared_ptr<worker_view>& view,
                                                    std::size_t cluster_index) {
  const auto& req = request_parser_.head();
  upstream_attempt attempt(down_.owner(), *view, cluster_index, down_, down_.client_ip(), is_idempotent(req.method),
                           true);
  // The watchdog closes the attempt's connection when a deadline passes; it must not see it after.
  struct forget {
    upstream_attempt*& slot;
    ~forget() { slot = nullptr; }
  } forget_attempt{attempt_};
  attempt_ = &attempt;
  const auto& up = attempt.cfg();
  const auto t = begin_forward(*view, attempt);
  if (!attempt.admit()) {
    co_return co_await send_local(error_kind::upstream_overloaded, !request_complete_, &up);
  }
  while (true) {
    auto error = co_await attempt.start_try(t.request_deadline, can_resend());
    rec_.host = attempt.host();
    rec_.tries = attempt.tries();
    rec_.connect_time = attempt.connect_time();
    if (error) {
      co_return co_await send_local(*error, !request_complete_, &up);
    }
    facts_.default_host = attempt.host()->address();
    auto& conn = *attempt.conn();

    // --- the request ---
    auto sent = co_await send_request(conn, req, t.expect_continue, t.max_body);
    if (sent == send_result::client_gone) {
      co_return next::close;
    }
    if (sent == send_result::malformed || sent == send_result::too_large || sent == send_result::trailers_too_large) {
      attempt.conn().reset();  // the backend never sees the rest of a request refused midway
      co_return co_await send_local(refusal_of(sent), true);
    }

    // --- the response head ---
    auto got = co_await read_response_head(conn, t.expect_continue, t.head_request, up);
    if (got == head_result::client_gone) {
      co_return next::close;
    }
    if (got != head_result::ok) {
      if (attempt.try_failed(try_end_of(got, attempt.reused()), can_resend(), clock::now() < t.request_deadline) !=
          retry_verdict::no) {
        continue;
      }
      co_return co_await send_local(attempt.failure(), !request_complete_, &up);
    }
    const auto& resp = response_parser_.head();
    rec_.upstream_time = clock::now() - attempt.try_started();
    if (resp.status == 101 && facts_.upgrade && request_complete_) {
      attempt.got_response(resp.status, false, false);
      co_return co_await tunnel(conn, attempt);
    }
    if (resp.status == 101) {
      // No upgrade was asked for (or the request body is still coming): a backend error.
      attempt.try_failed(try_end::protocol_error, false, true);
      co_return co_await send_local(attempt.failure(), !request_complete_, &up);
    }
    if (attempt.got_response(resp.status, can_resend()) == retry_verdict::retry) {
      continue;
    }
    // The response goes to the client now; only the request deadline applies from here.
    down_.set_deadline(t.request_deadline);
    const bool close_client = !req.keep_alive || draining_ || !request_complete_;
    co_return co_await stream_response(attempt, close_client, sent == send_result::ok);
  }
}

error_kind http_session::refusal_of(send_result r) {
  return r == send_result::malformed   ? error_kind::malformed_request
         : r == send_result::too_large ? error_kind::body_too_large
                                       : error_kind::headers_too_large;
}

try_end http_session::try_end_of(head_result r, bool reused) const {
  if (down_.expired()) {
    return try_end::timeout;
  }
  if (r == head_result::closed_silently && reused) {
    return try_end::stale_connection;
  }
  return r == head_result::protocol_error ? try_end::protocol_error : try_end::reset;
}

}  // namespace spillway::proxy
