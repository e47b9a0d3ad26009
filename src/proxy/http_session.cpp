#include "proxy/http_session.h"

#include "common/completion.h"
#include "common/log.h"
#include "common/reactor_access.h"
#include "proxy/rate_check.h"
#include "proxy/retry_policy.h"
#include "proxy/upstream_attempt.h"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/deferred.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/write.hpp>

#include <openssl/ssl.h>

#include <algorithm>
#include <cstring>
#include <utility>

namespace spillway::proxy {

namespace asio = boost::asio;
using asio::awaitable;
using asio::ip::tcp;

http_session::http_session(worker& w, std::string listen, tcp::socket socket, tls::server_context_ptr tls)
    : down_(w, std::move(listen), std::move(socket), std::move(tls), this) {
  // Accepted in the moment the drain began (the accept completed before the acceptor closed):
  // answer what comes within the grace, with `connection: close`, like every other connection.
  draining_ = w.draining();
}

void http_session::start() {
  auto self = shared_from_this();
  auto& io = down_.owner().io();
  down_.start_watchdog(self);
  asio::co_spawn(
      io, [self] { return self->run(false); }, asio::detached);
}

void http_session::force_close() {
  if (h2_) {
    h2_->force_close();
    return;
  }
  if (attempt_ != nullptr && attempt_->conn()) {
    attempt_->conn()->stream.close();
  }
  down_.close();
}

void http_session::drain() {
  draining_ = true;
  if (h2_) {
    h2_->drain();
    return;
  }
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
    if (h2_call_) {
      // A try over an HTTP/2 backend connection waits on its stream: the stream is reset, and the
      // waits end (they see the deadline expired).
      h2_call_->cancel();
      h2_call_->wake.notify();
      h2_call_->sent.notify();
    }
  };
  switch (phase_) {
    case phase::h2:
      h2_->deadline_passed();
      break;
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

awaitable<void> http_session::run(bool woken) {
  // Serves requests until the connection closes, or until it is idle with nothing buffered: then
  // it parks (a pending readability wait, no coroutine, no buffers) and this coroutine ends; wake()
  // runs it again when the client's next bytes are there, with the idle part done (`woken`).
  const bool ok = woken || co_await down_.handshake();
  if (ok && !woken && down_.tls()) {
    const unsigned char* proto = nullptr;
    unsigned len = 0;
    SSL_get0_alpn_selected(down_.stream().native_tls(), &proto, &len);
    if (len == 2 && proto[0] == 'h' && proto[1] == '2') {
      co_await serve_h2({});
      end();
      co_return;
    }
  }
  bool idle = woken;
  while (ok && !closed_) {
    if (!idle) {
      if (!begin_idle()) {
        break;  // a reload removed this listener: its connections drain
      }
      if (!down_.stream().holds_bytes() && (!st_ || st_->dbegin == st_->dend)) {
        // Idle with nothing buffered. The next request usually comes soon: wait for it in this
        // coroutine with a read (one speculative recv at most, where async_wait would cost an
        // epoll_ctl on every call). A connection idle for park_after, or one beyond
        // max_idle_waits on this worker, parks instead (see park()). With TLS, only when OpenSSL
        // holds none of the client's bytes: those the socket would not signal again.
        auto& w = down_.owner();
        if (w.idle_waits() >= max_idle_waits) {
          park();
          co_return;
        }
        take_state();
        st_->dbegin = st_->dend = 0;
        ++w.idle_waits();
        idle_waiting_ = true;
        down_.stream().warm_on_read(this, &st_->request_parser);  // what the request's arrival touches
        auto [ec, n] = co_await down_.stream().async_read_some(asio::buffer(st_->dbuf), nothrow_deferred);
        idle_waiting_ = false;
        --w.idle_waits();
        if (std::exchange(park_requested_, false) && ec == asio::error::operation_aborted && !closed_) {
          park();  // idle for park_after (sweep()): wait on without this coroutine or buffers
          co_return;
        }
        if (ec || closed_) {
          break;  // the client left, or the idle timeout or a drain closed the connection
        }
        st_->dend = n;
      }
    }
    idle = false;
    // One request, then its metrics and access log line (here, not in a coroutine wrapping
    // handle_request: one frame fewer per request).
    auto result = co_await handle_request();
    if (st_ && st_->rec.started) {
      finish_request();
    }
    if (result == next::h2) {
      std::string initial(st_->dbuf.data() + st_->dbegin, st_->dend - st_->dbegin);
      down_.owner().http1_states().give(std::move(st_));
      co_await serve_h2(std::move(initial));
      break;
    }
    if (result == next::close || draining_) {
      break;
    }
  }
  if (ok && down_.tls() && !down_.expired() && !h2_) {
    // A close_notify tells the client that a response delimited by the close is whole. Bounded: a
    // client that reads nothing more is cut off by the watchdog.
    phase_ = phase::streaming;
    down_.set_deadline(clock::now() + std::chrono::seconds(1));
    co_await down_.stream().shutdown_send();
  }
  end();
}

void http_session::end() {
  down_.close();
  closed_ = true;
  down_.stop();
  down_.owner().http1_states().give(std::move(st_));
}

http_session::~http_session() {
  if (st_) {
    down_.owner().http1_states().give(std::move(st_));  // ended without run() finishing (shutdown)
  }
}

bool http_session::begin_idle() {
  const auto* lv = down_.owner().view()->snap->find_listener(down_.listen());
  if (lv == nullptr) {
    return false;
  }
  // Draining: a connection accepted just before the drain, or one whose client has not yet seen a
  // `connection: close`, still gets its next request answered within the grace.
  idle_since_ = clock::now();
  down_.set_deadline(idle_since_ +
                     (draining_ ? std::chrono::duration_cast<config::duration>(drain_idle_grace) : lv->idle_timeout));
  phase_ = phase::idle;
  // Kept alive, the next request's header deadline comes before this idle deadline: the timer
  // waits no longer than a header timeout at a time, so that deadline is set without touching it.
  down_.set_deadline_horizon(draining_ ? config::duration{} : lv->header_timeout);
  down_.clear_expired();
  request_complete_ = false;
  return true;
}

void http_session::sweep(clock::time_point now) {
  down_.watch().swept(now);  // a parked connection's idle deadline near: its timer again
  if (idle_waiting_ && !park_requested_ && now - idle_since_ >= park_after) {
    park_requested_ = true;
    down_.cancel();  // run() sees its readability wait aborted and parks
  }
}

void http_session::take_state() {
  if (!st_) {
    st_ = down_.owner().http1_states().take();
    st_->reset();
    st_->facts.client_ip = down_.client_ip();
    st_->facts.tls = down_.tls();
  }
}

void http_session::park() {
  down_.owner().http1_states().give(std::move(st_));
  down_.set_deadline_horizon({});  // idle a while: one re-arm at the next request beats a wake-up per header timeout
  // A connection idle for a while waits with a completion handler instead of a coroutine (whose
  // spawn state and frames cost about 800 bytes) and without its per-request state: a parked
  // connection holds its session, the socket's reactor state and this wait (88 bytes, see
  // async_wait_readable), under 1 KiB in all. Its watchdog lets its timer go until the idle deadline
  // comes near (watchdog::doze). Waking spawns the coroutine again (~1,900 instructions) and the
  // wait re-arms epoll (one epoll_ctl): too much for every request, cheap once per idle period.
  reactor_access::async_wait_readable(down_.stream().socket(),
                                      [self = shared_from_this()](boost::system::error_code ec) { self->wake(ec); });
  down_.watch().doze(clock::now());
}

void http_session::wake(boost::system::error_code ec) {
  if (ec || closed_) {
    end();  // closed while parked: idle timeout, drain or shutdown
    return;
  }
  asio::co_spawn(
      down_.owner().io(), [self = shared_from_this()] { return self->run(true); }, asio::detached);
}

awaitable<void> http_session::serve_h2(std::string initial) {
  phase_ = phase::h2;
  h2_ = std::make_unique<h2_connection>(down_);
  if (draining_) {
    h2_->drain();
  }
  co_await h2_->run(std::move(initial), shared_from_this());
}

awaitable<bool> http_session::check_preface(bool& is_h2) {
  static constexpr std::string_view preface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
  while (true) {
    const std::string_view got(st_->dbuf.data() + st_->dbegin, st_->dend - st_->dbegin);
    const auto n = std::min(got.size(), preface.size());
    if (got.substr(0, n) != preface.substr(0, n)) {
      is_h2 = false;
      co_return true;
    }
    if (n == preface.size()) {
      is_h2 = true;
      co_return true;
    }
    if (co_await read_downstream() == 0) {
      co_return false;
    }
  }
}

awaitable<std::size_t> http_session::read_downstream() {
  if (st_->dbegin == st_->dend) {
    st_->dbegin = st_->dend = 0;
  } else if (st_->dend == st_->dbuf.size()) {
    std::memmove(st_->dbuf.data(), st_->dbuf.data() + st_->dbegin, st_->dend - st_->dbegin);
    st_->dend -= st_->dbegin;
    st_->dbegin = 0;
  }
  auto [ec, n] = co_await down_.stream().async_read_some(
      asio::buffer(st_->dbuf.data() + st_->dend, st_->dbuf.size() - st_->dend), nothrow_deferred);
  if (ec) {
    co_return 0;
  }
  st_->dend += n;
  co_return n;
}

void http_session::finish_request() {
  const auto& req = st_->request_parser.head();
  const bool have_head = st_->request_parser.head_bytes() > 0 && st_->rec.view != nullptr;
  request_fields f;
  if (have_head) {
    f.method = req.method;
    f.path = req.url;
    f.host = req.find("host");
  }
  f.request_id = st_->have_request_id ? std::string_view(st_->request_id.data(), st_->request_id.size())
                                      : (have_head ? req.find("x-request-id") : std::string_view());
  f.request_id_ours = st_->have_request_id;
  record_request(down_, st_->rec, f, first_byte_);
}

awaitable<http_session::next> http_session::handle_request() {
  // The connection is idle (begin_idle() set its deadline). Limits that apply before the request
  // is routed come from the snapshot current now; the snapshot itself is taken only once the head
  // is in (below), so that a reload while this connection sat idle applies to its next request.
  config::duration header_timeout;
  std::uint64_t max_request_headers;
  {
    const auto* lv = down_.owner().view()->snap->find_listener(down_.listen());
    if (lv == nullptr) {
      co_return next::close;  // a reload removed this listener: its connections drain
    }
    header_timeout = lv->header_timeout;
    max_request_headers = lv->cfg->max_request_headers;
    take_state();
    st_->request_parser.set_limits(max_request_headers, lv->cfg->max_request_header_fields);
  }
  st_->rec = http_request_record{};
  st_->have_request_id = false;

  // --- the request head ---
  bool started = false;
  while (true) {
    if (st_->dbegin == st_->dend) {
      if (co_await read_downstream() == 0) {
        if (down_.expired() && phase_ == phase::head) {
          co_return co_await send_local(error_kind::header_timeout, true);
        }
        co_return next::close;  // the client left, or the connection sat idle too long
      }
    }
    if (std::exchange(first_request_, false) && !down_.tls()) {
      const auto* lv = down_.owner().view()->snap->find_listener(down_.listen());
      if (lv != nullptr && lv->cfg->http2) {
        // Cleartext HTTP/2 with prior knowledge (RFC 9113 section 3.3): the client's first bytes
        // are the preface, which no HTTP/1 request can begin with.
        bool is_h2 = false;
        if (!co_await check_preface(is_h2)) {
          co_return next::close;
        }
        if (is_h2) {
          co_return next::h2;
        }
      }
    }
    if (!started) {
      started = true;
      st_->rec.started = true;
      phase_ = phase::head;
      first_byte_ = clock::now();
      down_.set_deadline(first_byte_ + header_timeout);
    }
    auto r = st_->request_parser.feed(st_->dbuf.data() + st_->dbegin, st_->dend - st_->dbegin);
    if (r.what == http::parser::event::error) {
      log::debug("refused request from {}: {}", down_.client_ip(), st_->request_parser.error_reason());
      co_return co_await send_local(
          st_->request_parser.error_too_large() ? error_kind::headers_too_large : error_kind::malformed_request, true);
    }
    st_->dbegin += r.consumed;
    if (st_->request_parser.head_bytes() > max_request_headers) {
      co_return co_await send_local(error_kind::headers_too_large, true);
    }
    if (r.what == http::parser::event::headers_complete) {
      break;
    }
  }

  // This request runs on the snapshot current now and keeps it alive until it ends.
  const auto view = down_.owner().view();
  st_->rec.view = view;
  st_->rec.bytes_in += st_->request_parser.head_bytes();
  begin_trace(st_->rec, *view->snap->cfg, st_->request_parser.head(), down_.owner().random());
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
  if (route->rate_limit >= 0) {
    auto r = co_await check_rate_limit(*view->snap, route->rate_limit, down_.owner(), down_.client_address(),
                                       &st_->request_parser.head(), route->route_key, st_->rate_key);
    if (r.limited) {
      co_return co_await send_local(error_kind::rate_limited, false, nullptr, header_lines(answer_of(r)));
    }
  }
  co_return co_await forward(view, route->upstream_index);
}

const compiled_route* http_session::route_request(const listener_view& lv, error_kind& refusal, bool& close) {
  const auto& req = st_->request_parser.head();
  st_->facts.http10 = req.version_major == 1 && req.version_minor == 0;
  st_->facts.upgrade = false;
  close = true;
  if (!req.chunked && req.content_length == 0) {
    // No body: let the parser close the message now, so that answers made here can keep the
    // connection alive. Pipelined bytes after it stay unconsumed.
    request_complete_ =
        st_->request_parser.feed(st_->dbuf.data() + st_->dbegin, 0).what == http::parser::event::message_complete;
  }
  if (req.method == "CONNECT") {
    refusal = error_kind::method_not_allowed;
    return nullptr;
  }
  if (const char* why = check_request(req, st_->facts.http10, st_->facts.shape, st_->scratch)) {
    log::debug("refused request from {}: {}", down_.client_ip(), why);
    refusal = error_kind::malformed_request;
    return nullptr;
  }
  // An Upgrade (WebSocket) is passed on; HTTP/1.0 has no upgrades. An upgrade to cleartext HTTP/2
  // (h2c) is not: a tunnel to it would let a client send requests the router never sees (h2c
  // smuggling), so the request goes on as plain HTTP/1.1 without it.
  st_->facts.upgrade =
      req.upgrade && !st_->facts.http10 && !req.find("upgrade").empty() && !http::has_token(req.find("upgrade"), "h2c");
  if (lv.cfg->max_request_body > 0 && req.content_length > lv.cfg->max_request_body) {
    refusal = error_kind::body_too_large;
    return nullptr;
  }
  const auto& shape = st_->facts.shape;
  auto host = normalize_host(shape.host_override.empty() ? req.find("host") : shape.host_override, st_->host_scratch);
  const auto* route = find_route(lv.routes, host, shape.route_path, req);
  if (route == nullptr) {
    refusal = error_kind::no_route;
    close = false;
    return nullptr;
  }
  st_->rec.route = static_cast<int>(route - lv.routes.data());
  return route;
}

awaitable<http_session::next> http_session::send_local(error_kind kind, bool close, const config::upstream* up,
                                                       std::string_view extra_headers) {
  // A request whose body was not read to the end leaves the connection in an unknown state; and a
  // client that said `Connection: close` (or HTTP/1.0 without keep-alive) gets what it asked for.
  close = close || !request_complete_ || draining_ || !st_->request_parser.head().keep_alive;
  const auto retry_after = up != nullptr ? up->degrade.retry_after : config::degradation{}.retry_after;
  build_local_reply(kind, close, st_->facts.http10, st_->request_parser.head().method == "HEAD",
                    static_cast<std::uint32_t>((retry_after.count() + 999) / 1000), st_->out, extra_headers);
  phase_ = phase::streaming;
  st_->rec.status = status_of(kind);
  st_->rec.local = kind;
  // A client that does not read its answer (after a timeout, say) cannot hold the session.
  down_.set_deadline(clock::now() + local_reply_timeout);
  auto [ec, n] = co_await down_.stream().write_all(asio::buffer(st_->out));
  st_->rec.bytes_out += n;
  if (ec || close) {
    co_return next::close;
  }
  co_return next::keep_alive;
}

http_session::try_context http_session::begin_forward(const worker_view& view, const upstream_attempt& attempt) {
  const auto& req = st_->request_parser.head();
  st_->rec.cluster = &attempt.cluster();
  try_context t;
  t.request_deadline = first_byte_ + attempt.cfg().timeout.request;
  t.expect_continue = !st_->facts.http10 && http::has_token(req.find("expect"), "100-continue");
  st_->facts.drop_expect = t.expect_continue;  // Spillway answers 100-continue itself
  t.head_request = req.method == "HEAD";
  const auto& lcfg = *view.snap->find_listener(down_.listen())->cfg;
  t.max_body = lcfg.max_request_body;
  splice_bodies_ = lcfg.splice && !down_.tls();
  if (!has_request_id(req)) {
    // A random version-4 UUID, made once per request so that retries carry the same one.
    st_->request_id = make_request_id(down_.owner().random()(), down_.owner().random()());
    st_->have_request_id = true;
  }
  st_->facts.request_id = st_->have_request_id ? std::string_view(st_->request_id.data(), st_->request_id.size()) : "";
  st_->replay.clear();
  h2_trailers_.clear();
  replay_ok_ = true;
  body_started_ = false;
  phase_ = phase::upstream;
  down_.set_deadline(t.request_deadline);
  return t;
}

awaitable<http_session::next> http_session::forward(const std::shared_ptr<worker_view>& view,
                                                    std::size_t cluster_index) {
  const auto& req = st_->request_parser.head();
  upstream_attempt attempt(down_.owner(), *view, cluster_index, down_.watch(), down_.client_ip(),
                           is_idempotent(req.method), true);
  attempt.set_has_body(req.chunked || req.content_length > 0);
  // The watchdog closes the attempt's connection when a deadline passes; it must not see it after.
  struct forget {
    upstream_attempt*& slot;
    ~forget() { slot = nullptr; }
  } forget_attempt{attempt_};
  attempt_ = &attempt;
  if (st_->rec.traced) {
    attempt.trace_tries(&st_->rec.tries_traced);
  }
  const auto& up = attempt.cfg();
  const auto t = begin_forward(*view, attempt);
  if (!attempt.admit()) {
    co_return co_await send_local(error_kind::upstream_overloaded, !request_complete_, &up);
  }
  while (true) {
    auto error = co_await attempt.start_try(t.request_deadline, can_resend());
    st_->rec.host = attempt.host();
    st_->rec.tries = attempt.tries();
    st_->rec.connect_time = attempt.connect_time();
    if (error) {
      co_return co_await send_local(*error, !request_complete_, &up);
    }
    trace_try(st_->rec, st_->facts);
    st_->facts.default_host = attempt.host()->authority();
    if (attempt.h2()) {
      if (auto done = co_await exchange_h2(attempt, t)) {
        co_return *done;
      }
      continue;  // another try
    }
    auto& conn = *attempt.conn();

    // --- the request ---
    auto sent = send_result::ok;
    if (request_complete_ && !body_started_) {
      // No body (nearly every GET): the head, written on the spot, without send_request's frame or
      // the write's unless the socket does not take it whole.
      build_upstream_head(req, st_->facts, st_->scratch, st_->out);
      auto w = conn.stream.start_write(asio::buffer(st_->out));
      if (w.pending()) {
        co_await conn.stream.finish_write(w);
      }
      sent = w.ec ? send_result::upstream_write_failed : send_result::ok;
    } else {
      sent = co_await send_request(conn, req, t.expect_continue, t.max_body);
    }
    if (sent == send_result::client_gone) {
      co_return next::close;
    }
    if (sent == send_result::malformed || sent == send_result::too_large || sent == send_result::trailers_too_large) {
      attempt.conn().reset();  // the backend never sees the rest of a request refused midway
      co_return co_await send_local(refusal_of(sent), true);
    }

    // --- the response head ---
    auto got = head_result::ok;
    begin_response_head(t.head_request, up);
    for (bool got_bytes = false;;) {
      const auto step = response_head_step(t.expect_continue, up);
      if (step == head_step::done) {
        break;
      }
      if (step == head_step::protocol_error) {
        got = head_result::protocol_error;
        break;
      }
      if (step == head_step::interim) {
        auto w = down_.stream().start_write(asio::buffer(st_->out));
        if (w.pending()) {
          co_await down_.stream().finish_write(w);
        }
        st_->upstream_drained = false;  // the backend's socket went unwatched meanwhile
        st_->rec.bytes_out += w.written;
        if (w.ec) {
          got = head_result::client_gone;
          break;
        }
        continue;
      }
      st_->ubegin = st_->uend = 0;
      conn.stream.warm_on_read(this, &st_->response_parser);  // what the answer's arrival touches
      auto [ec, n] = co_await conn.stream.async_read_some(asio::buffer(st_->ubuf), nothrow_deferred);
      if (ec) {
        got = got_bytes ? head_result::reset : head_result::closed_silently;
        break;
      }
      got_bytes = true;
      st_->uend = n;
      st_->upstream_drained = n < st_->ubuf.size();
    }
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
    const auto& resp = st_->response_parser.head();
    st_->rec.upstream_time = attempt.head_arrived();
    if (resp.status == 101 && st_->facts.upgrade && request_complete_) {
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
