#include "proxy/http_session.h"

#include "balancer/consistent_hash.h"
#include "common/log.h"
#include "http/status.h"
#include "http/target.h"
#include "proxy/outcome.h"
#include "proxy/relay.h"
#include "upstream/connect.h"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

#include <algorithm>
#include <cstring>

namespace spillway::proxy {

namespace asio = boost::asio;
using asio::awaitable;
using asio::ip::tcp;
using clock = std::chrono::steady_clock;
using error_code = boost::system::error_code;
using namespace asio::experimental::awaitable_operators;

namespace {

constexpr auto nothrow = asio::as_tuple(asio::use_awaitable);

// Headers that describe one connection, not the message: never forwarded (RFC 9110 section 7.6.1).
// Transfer-Encoding stays: bodies are forwarded with the framing they arrived with.
bool is_hop_by_hop(std::string_view name) {
  static constexpr std::string_view names[] = {"connection", "keep-alive", "proxy-connection",   "te",
                                               "trailer",    "upgrade",    "proxy-authenticate", "proxy-authorization"};
  for (auto n : names) {
    if (http::iequals(name, n)) {
      return true;
    }
  }
  return false;
}

// ASCII case-insensitive ordering of tokens.
bool iless(std::string_view a, std::string_view b) {
  const auto n = std::min(a.size(), b.size());
  for (std::size_t i = 0; i < n; ++i) {
    auto x = static_cast<unsigned char>(a[i]);
    auto y = static_cast<unsigned char>(b[i]);
    x = (x >= 'A' && x <= 'Z') ? x - 'A' + 'a' : x;
    y = (y >= 'A' && y <= 'Z') ? y - 'A' + 'a' : y;
    if (x != y) {
      return x < y;
    }
  }
  return a.size() < b.size();
}

// Collects the tokens of every Connection header of `m` (not just the first), sorted, so that each
// header of the message is then looked up in log time: a head of thousands of tokens and fields
// costs O(n log n), never O(n^2).
void collect_connection_tokens(const http::message_head& m, std::vector<std::string_view>& out) {
  out.clear();
  for (const auto& h : m.headers) {
    if (!http::iequals(h.name, "connection")) {
      continue;
    }
    std::string_view list = h.value;
    while (!list.empty()) {
      const auto comma = list.find(',');
      const auto item = http::trim_ows(list.substr(0, comma));
      if (!item.empty()) {
        out.push_back(item);
      }
      if (comma == std::string_view::npos) {
        break;
      }
      list.remove_prefix(comma + 1);
    }
  }
  std::sort(out.begin(), out.end(), iless);
}

// A header named in a Connection header is hop-by-hop too; but the framing headers are never
// dropped that way, or a client could make Spillway strip Content-Length from a body it forwards.
bool listed_in_connection(std::string_view name, const std::vector<std::string_view>& tokens) {
  if (tokens.empty() || http::iequals(name, "content-length") || http::iequals(name, "transfer-encoding") ||
      http::iequals(name, "host")) {
    return false;
  }
  return std::binary_search(tokens.begin(), tokens.end(), name, iless);
}

bool is_idempotent(std::string_view method) {
  return method == "GET" || method == "HEAD" || method == "OPTIONS" || method == "TRACE" || method == "PUT" ||
         method == "DELETE";
}

void append_header(std::string& out, std::string_view name, std::string_view value) {
  out.append(name);
  out.append(": ");
  out.append(value);
  out.append("\r\n");
}

}  // namespace

int status_of(local_reason r) {
  switch (r) {
    case local_reason::malformed_request:
      return 400;
    case local_reason::no_route:
      return 404;
    case local_reason::method_not_allowed:
      return 405;
    case local_reason::header_timeout:
      return 408;
    case local_reason::body_too_large:
      return 413;
    case local_reason::headers_too_large:
      return 431;
    case local_reason::upstream_reset:
    case local_reason::upstream_protocol_error:
      return 502;
    case local_reason::no_healthy_upstream:
    case local_reason::upstream_connect_failure:
    case local_reason::upstream_overloaded:
      return 503;
    case local_reason::upstream_timeout:
      return 504;
  }
  return 500;
}

const char* to_string(local_reason r) {
  switch (r) {
    case local_reason::malformed_request:
      return "malformed_request";
    case local_reason::no_route:
      return "no_route";
    case local_reason::method_not_allowed:
      return "method_not_allowed";
    case local_reason::header_timeout:
      return "header_timeout";
    case local_reason::body_too_large:
      return "body_too_large";
    case local_reason::headers_too_large:
      return "headers_too_large";
    case local_reason::upstream_reset:
      return "upstream_reset";
    case local_reason::upstream_protocol_error:
      return "upstream_protocol_error";
    case local_reason::no_healthy_upstream:
      return "no_healthy_upstream";
    case local_reason::upstream_connect_failure:
      return "upstream_connect_failure";
    case local_reason::upstream_overloaded:
      return "upstream_overloaded";
    case local_reason::upstream_timeout:
      return "upstream_timeout";
  }
  return "internal";
}

http_session::http_session(worker& w, std::string listen, tcp::socket socket, tls::server_context_ptr tls)
    : worker_(w), listen_(std::move(listen)), tls_(std::move(tls)), downstream_(std::move(socket)), timer_(w.io()) {
  error_code ec;
  auto ep = downstream_.socket().remote_endpoint(ec);
  if (!ec) {
    client_ip_ = ep.address().to_string();
  }
  downstream_.socket().set_option(tcp::no_delay(true), ec);
  if (tls_) {
    downstream_.start_tls(tls_->context());
  }
  out_.reserve(4096);
  registration_ = worker_.attach(this);
  if (const auto* lv = worker_.view()->snap->find_listener(listen_); lv != nullptr) {
    listener_traffic_ = lv->traffic;
    listener_traffic_->local(worker_.index()).connections_total.add();
  }
  // Accepted in the moment the drain began (the accept completed before the acceptor closed):
  // answer what comes within the grace, with `connection: close`, like every other connection.
  draining_ = worker_.draining();
}

http_session::~http_session() {
  if (listener_traffic_) {
    listener_traffic_->local(worker_.index()).connections_closed.add();
  }
  worker_.detach(registration_);
}

namespace {

const char* flags_of(std::string_view reason, int status) {
  if (const char* flag = response_flag(reason)) {
    return flag;
  }
  return status == 0 ? "DC" : "-";  // DC: the client went away before an answer
}

}  // namespace

void http_session::finish_request() {
  const auto now = clock::now();
  const auto elapsed = now - first_byte_;
  const auto& view = rec_.view ? rec_.view : worker_.view();
  const auto& snap = *view->snap;
  const auto w = worker_.index();
  if (snap.cfg->metrics) {
    if (listener_traffic_) {
      auto& t = listener_traffic_->local(w);
      t.responses.add(rec_.status);
      t.bytes_in.add(rec_.bytes_in);
      t.bytes_out.add(rec_.bytes_out);
      t.duration.observe(elapsed);
      if (rec_.local >= 0) {
        t.local_replies[std::min<std::size_t>(rec_.local, t.local_replies.size() - 1)].add();
      }
    }
    const auto* lv = snap.find_listener(listen_);
    if (lv != nullptr && rec_.route >= 0 && static_cast<std::size_t>(rec_.route) < lv->route_traffic.size()) {
      lv->route_traffic[rec_.route]->local(w).responses.add(rec_.status);
    }
    if (rec_.cluster != nullptr) {
      auto& t = rec_.cluster->stats->traffic.local(w);
      t.responses.add(rec_.status);
      t.bytes_in.add(rec_.bytes_in);
      t.bytes_out.add(rec_.bytes_out);
      t.duration.observe(elapsed);
    }
    if (rec_.host != nullptr) {
      auto& t = rec_.host->traffic.local(w);
      t.responses.add(rec_.status);
      t.bytes_in.add(rec_.bytes_in);
      t.bytes_out.add(rec_.bytes_out);
      t.duration.observe(elapsed);
    }
  }
  if (worker_.log_sampled(snap)) {
    const auto& req = request_parser_.head();
    const bool have_head = request_parser_.head_bytes() > 0 && rec_.view != nullptr;
    access_record r;
    r.client = client_ip_;
    const auto* lv = snap.find_listener(listen_);
    r.listener = lv != nullptr ? std::string_view(lv->cfg->name) : std::string_view(listen_);
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
    r.reason = rec_.reason;
    r.flags = flags_of(rec_.reason, rec_.status);
    r.request_id = request_id_[0] != '\0' ? std::string_view(request_id_.data(), request_id_.size())
                                          : (have_head ? req.find("x-request-id") : std::string_view());
    r.tls = tls_ != nullptr;
    worker_.log_access(snap, r);
  }
}

void http_session::start() {
  auto self = shared_from_this();
  asio::co_spawn(
      worker_.io(), [self] { return self->run(); }, asio::detached);
  asio::co_spawn(
      worker_.io(), [self] { return self->watchdog(); }, asio::detached);
}

void http_session::force_close() {
  if (upstream_) {
    upstream_->stream.close();
  }
  close_downstream();
}

void http_session::drain() {
  draining_ = true;
  if (phase_ == phase::idle) {
    // An idle keep-alive connection is closed once it has been idle for a short grace: a client
    // that sent its next request just as the drain began gets an answer (with `connection:
    // close`) instead of a reset it cannot tell from a failure.
    set_deadline(std::max(clock::now(), idle_since_ + drain_idle_grace));
  }
}

void http_session::close_downstream() {
  error_code ec;
  downstream_.socket().shutdown(tcp::socket::shutdown_both, ec);
  downstream_.close();
}

void http_session::set_deadline(clock::time_point at) {
  deadline_ = at;
  // The watchdog sleeps until the old deadline; wake it only when the new one is earlier.
  if (at < timer_.expiry()) {
    timer_.cancel();
  }
}

awaitable<void> http_session::watchdog() {
  while (!closed_) {
    timer_.expires_at(deadline_);
    co_await timer_.async_wait(nothrow);
    if (closed_) {
      break;
    }
    if (clock::now() < deadline_) {
      continue;  // woken to re-arm, or the deadline moved later
    }
    expired_ = true;
    deadline_ = clock::time_point::max();
    error_code ec;
    switch (phase_) {
      case phase::idle:
        close_downstream();
        break;
      case phase::head:
        // run() sees the read cancelled and answers 408.
        downstream_.socket().cancel(ec);
        break;
      case phase::upstream:
        // run() sees the upstream operation fail and answers 504 or tries another host. A client
        // stalled mid-body is cut off too.
        if (upstream_) {
          upstream_->stream.close();
        }
        downstream_.socket().cancel(ec);
        break;
      case phase::streaming:
        if (upstream_) {
          upstream_->stream.close();
        }
        close_downstream();
        break;
    }
  }
}

awaitable<void> http_session::run() {
  bool ok = true;
  if (tls_) {
    // The watchdog closes a connection whose handshake is not done in time (phase idle).
    set_deadline(clock::now() + tls_->handshake_timeout());
    auto ec = co_await downstream_.handshake(asio::ssl::stream_base::server);
    if (ec) {
      log::debug("tls handshake from {} on {} failed: {}", client_ip_, listen_, expired_ ? "timeout" : ec.message());
      if (listener_traffic_) {
        listener_traffic_->local(worker_.index()).tls_handshake_failures.add();
      }
      ok = false;
    }
  }
  while (ok && !closed_) {
    auto result = co_await serve_request();
    if (result == outcome::close || draining_) {
      break;
    }
  }
  if (ok && downstream_.is_tls() && !expired_) {
    // A close_notify tells the client that a response delimited by the close is whole. Bounded: a
    // client that reads nothing more is cut off by the watchdog.
    phase_ = phase::streaming;
    set_deadline(clock::now() + std::chrono::seconds(1));
    co_await downstream_.shutdown_send();
  }
  close_downstream();
  upstream_.reset();
  closed_ = true;
  timer_.cancel();
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
      co_await downstream_.async_read_some(asio::buffer(dbuf_.data() + dend_, dbuf_.size() - dend_), nothrow);
  if (ec) {
    co_return 0;
  }
  dend_ += n;
  co_return n;
}

awaitable<http_session::outcome> http_session::serve_request() {
  rec_ = request_record{};
  auto result = co_await handle_request();
  if (rec_.started) {
    finish_request();
  }
  co_return result;
}

awaitable<http_session::outcome> http_session::handle_request() {
  // Limits that apply before the request is routed come from the snapshot current now; the
  // snapshot itself is taken only once the head is in (below), so that a reload while this
  // connection sits idle applies to its next request.
  config::duration header_timeout;
  std::uint64_t max_request_headers;
  {
    const auto* lv = worker_.view()->snap->find_listener(listen_);
    if (lv == nullptr) {
      co_return outcome::close;  // a reload removed this listener: its connections drain
    }
    header_timeout = lv->header_timeout;
    max_request_headers = lv->cfg->max_request_headers;
    request_parser_.set_limits(max_request_headers, lv->cfg->max_request_header_fields);
    // Draining: a connection accepted just before the drain, or one whose client has not yet
    // seen a `connection: close`, still gets its next request answered within the grace.
    set_deadline(clock::now() +
                 (draining_ ? std::chrono::duration_cast<config::duration>(drain_idle_grace) : lv->idle_timeout));
  }
  phase_ = phase::idle;
  idle_since_ = clock::now();
  expired_ = false;
  request_complete_ = false;
  request_id_[0] = '\0';
  upgrade_ = false;

  // --- the request head ---
  bool started = false;
  while (true) {
    if (dbegin_ == dend_) {
      if (co_await read_downstream() == 0) {
        if (expired_ && phase_ == phase::head) {
          co_return co_await send_local(local_reason::header_timeout, true);
        }
        co_return outcome::close;  // the client left, or the connection sat idle too long
      }
    }
    if (!started) {
      started = true;
      rec_.started = true;
      phase_ = phase::head;
      first_byte_ = clock::now();
      set_deadline(first_byte_ + header_timeout);
    }
    auto r = request_parser_.feed(dbuf_.data() + dbegin_, dend_ - dbegin_);
    if (r.what == http::parser::event::error) {
      log::debug("refused request from {}: {}", client_ip_, request_parser_.error_reason());
      co_return co_await send_local(
          request_parser_.error_too_large() ? local_reason::headers_too_large : local_reason::malformed_request, true);
    }
    dbegin_ += r.consumed;
    if (request_parser_.head_bytes() > max_request_headers) {
      co_return co_await send_local(local_reason::headers_too_large, true);
    }
    if (r.what == http::parser::event::headers_complete) {
      break;
    }
  }

  // This request runs on the snapshot current now and keeps it alive until it ends.
  const auto view = worker_.view();
  rec_.view = view;
  rec_.bytes_in += request_parser_.head_bytes();
  const auto* found = view->snap->find_listener(listen_);
  if (found == nullptr) {
    co_return co_await send_local(local_reason::no_route, true);  // removed while the head arrived
  }
  const auto& lv = *found;
  const auto& req = request_parser_.head();
  client_http10_ = req.version_major == 1 && req.version_minor == 0;
  if (!req.chunked && req.content_length == 0) {
    // No body: let the parser close the message now, so that answers made here can keep the
    // connection alive. Pipelined bytes after it stay unconsumed.
    request_complete_ = request_parser_.feed(dbuf_.data() + dbegin_, 0).what == http::parser::event::message_complete;
  }
  if (req.method == "CONNECT") {
    co_return co_await send_local(local_reason::method_not_allowed, true);
  }
  if (const char* why = check_request(req)) {
    log::debug("refused request from {}: {}", client_ip_, why);
    co_return co_await send_local(local_reason::malformed_request, true);
  }
  // An Upgrade (WebSocket) is passed on; HTTP/1.0 has no upgrades. An upgrade to cleartext HTTP/2
  // (h2c) is not: a tunnel to it would let a client send requests the router never sees (h2c
  // smuggling), so the request goes on as plain HTTP/1.1 without it.
  upgrade_ =
      req.upgrade && !client_http10_ && !req.find("upgrade").empty() && !http::has_token(req.find("upgrade"), "h2c");
  if (lv.cfg->max_request_body > 0 && req.content_length > lv.cfg->max_request_body) {
    co_return co_await send_local(local_reason::body_too_large, true);
  }
  auto host = normalize_host(host_override_.empty() ? req.find("host") : host_override_, host_scratch_);
  const auto* route = find_route(lv.routes, host, route_path_, req);
  if (route == nullptr) {
    co_return co_await send_local(local_reason::no_route, false);
  }
  rec_.route = static_cast<int>(route - lv.routes.data());
  auto result = co_await forward(view, route->upstream_index);
  release_breaker_token();  // a try that ended without a verdict (e.g. the client left)
  co_return result;
}

const char* http_session::check_request(const http::message_head& req) {
  // Host: exactly one on HTTP/1.1 (HTTP/1.0 may omit it), and a single valid host[:port], never a
  // list or anything a backend could split differently.
  host_override_ = {};
  const auto hosts = req.count("host");
  if (hosts > 1) {
    return "more than one Host";
  }
  if (hosts == 0 && !client_http10_) {
    return "no Host";
  }
  if (hosts == 1 && !http::valid_host(req.find("host"))) {
    return "invalid Host";
  }
  // Transfer-Encoding: only "chunked" alone (the parser refused other lists' framing already), and
  // never from HTTP/1.0, which has no transfer codings (RFC 9112 section 6.1).
  if (const auto te = req.count("transfer-encoding"); te > 0) {
    if (client_http10_) {
      return "Transfer-Encoding in an HTTP/1.0 request";
    }
    if (te > 1 || !http::iequals(http::trim_ows(req.find("transfer-encoding")), "chunked")) {
      return "Transfer-Encoding other than chunked";
    }
  }
  http::request_target target;
  if (!http::parse_target(req.url, target)) {
    return "malformed request target";
  }
  if (target.form == http::target_form::authority) {
    return "authority-form target without CONNECT";
  }
  if (target.form == http::target_form::asterisk && req.method != "OPTIONS") {
    return "asterisk-form target without OPTIONS";
  }
  if (target.form == http::target_form::asterisk) {
    route_path_ = "*";
    forward_target_ = req.url;
    return nullptr;
  }
  // Dot segments are removed before routing, and the path routed on is the path forwarded, so
  // "/api/../admin" can neither escape a path_prefix route nor reach a backend that would resolve it.
  std::string_view path = target.path.empty() ? std::string_view("/") : target.path;
  if (http::remove_dot_segments(path, path_scratch_)) {
    path = path_scratch_;
  }
  route_path_ = path;
  if (target.form == http::target_form::origin && path.size() == target.path.size()) {
    forward_target_ = req.url;
  } else {
    // Absolute-form goes on in origin form, its authority replacing Host (RFC 9112 3.2.2).
    target_scratch_.assign(path);
    target_scratch_.append(target.query);
    forward_target_ = target_scratch_;
    if (target.form == http::target_form::absolute) {
      authority_scratch_.assign(target.authority);
      host_override_ = authority_scratch_;
    }
  }
  return nullptr;
}

void http_session::build_upstream_head(const http::message_head& req, bool drop_expect) {
  out_.clear();
  out_.append(req.method);
  out_.push_back(' ');
  out_.append(forward_target_);
  // HTTP/1.0 clients are forwarded as HTTP/1.0 so that the backend never answers them chunked.
  out_.append(client_http10_ ? " HTTP/1.0\r\n" : " HTTP/1.1\r\n");
  collect_connection_tokens(req, connection_tokens_);
  bool have_request_id = false;
  bool have_xff = false;
  for (const auto& h : req.headers) {
    if (is_hop_by_hop(h.name) || listed_in_connection(h.name, connection_tokens_)) {
      continue;
    }
    if (!host_override_.empty() && http::iequals(h.name, "host")) {
      // An absolute-form target's authority replaces Host (RFC 9112 section 3.2.2).
      append_header(out_, h.name, host_override_);
      continue;
    }
    if (http::iequals(h.name, "x-forwarded-for")) {
      have_xff = true;  // merged into one header below, with the client's address last
      continue;
    }
    if (http::iequals(h.name, "x-forwarded-proto")) {
      continue;  // set by us: a client cannot claim https
    }
    if (drop_expect && http::iequals(h.name, "expect")) {
      continue;  // Spillway answers 100-continue itself
    }
    if (http::iequals(h.name, "x-request-id")) {
      have_request_id = true;
    }
    append_header(out_, h.name, h.value);
  }
  out_.append("x-forwarded-for: ");
  if (have_xff) {
    for (const auto& h : req.headers) {
      if (http::iequals(h.name, "x-forwarded-for") && !h.value.empty()) {
        out_.append(h.value);
        out_.append(", ");
      }
    }
  }
  out_.append(client_ip_);
  out_.append(tls_ ? "\r\nx-forwarded-proto: https\r\n" : "\r\nx-forwarded-proto: http\r\n");
  if (!have_request_id) {
    if (request_id_[0] == '\0') {
      // A random version-4 UUID, made once per request so that retries carry the same one.
      auto a = worker_.random()();
      auto b = worker_.random()();
      a = (a & 0xffffffffffff0fffULL) | 0x0000000000004000ULL;
      b = (b & 0x3fffffffffffffffULL) | 0x8000000000000000ULL;
      fmt::format_to_n(request_id_.data(), request_id_.size(), "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}", a >> 32,
                       (a >> 16) & 0xffff, a & 0xffff, b >> 48, b & 0xffffffffffffULL);
    }
    out_.append("x-request-id: ");
    out_.append(request_id_.data(), request_id_.size());
    out_.append("\r\n");
  }
  if (req.count("host") == 0) {
    // HTTP/1.0 clients may omit Host; backends expect one.
    append_header(out_, "host", host_override_.empty() ? upstream_host_ : host_override_);
  }
  if (upgrade_) {
    // Connection and Upgrade are hop-by-hop, so they were dropped above; an upgrade asks the next
    // hop again for the same protocol.
    append_header(out_, "upgrade", req.find("upgrade"));
    out_.append("connection: upgrade\r\n");
  } else if (client_http10_) {
    out_.append("connection: keep-alive\r\n");
  }
  out_.append("\r\n");
}

void http_session::build_downstream_head(const http::message_head& resp, bool close) {
  out_.clear();
  fmt::format_to(std::back_inserter(out_), "HTTP/1.1 {} ", resp.status);
  out_.append(resp.reason);
  out_.append("\r\n");
  collect_connection_tokens(resp, connection_tokens_);
  // 1xx and 204 answers have no body and may not claim one; a 304 may carry the length the full
  // answer would have, never a transfer coding (RFC 9110 8.6, RFC 9112 6.1). A length left on them
  // would make a client wait for bytes that never come.
  const bool no_length = resp.status < 200 || resp.status == 204;
  const bool no_coding = no_length || resp.status == 304;
  for (const auto& h : resp.headers) {
    if (is_hop_by_hop(h.name) || listed_in_connection(h.name, connection_tokens_)) {
      continue;
    }
    if ((no_length && http::iequals(h.name, "content-length")) ||
        (no_coding && http::iequals(h.name, "transfer-encoding"))) {
      continue;
    }
    append_header(out_, h.name, h.value);
  }
  if (resp.status == 101) {
    append_header(out_, "upgrade", resp.find("upgrade"));
    out_.append("connection: upgrade\r\n");
  } else if (close) {
    out_.append("connection: close\r\n");
  } else if (client_http10_) {
    out_.append("connection: keep-alive\r\n");
  }
  out_.append("\r\n");
}

awaitable<http_session::outcome> http_session::send_local(local_reason reason, bool close, const config::upstream* up) {
  // A request whose body was not read to the end leaves the connection in an unknown state.
  close = close || !request_complete_ || draining_;
  const int status = status_of(reason);
  const char* name = to_string(reason);
  out_.clear();
  fmt::format_to(std::back_inserter(out_),
                 "HTTP/1.1 {} {}\r\ncontent-type: text/plain\r\ncontent-length: {}\r\nx-spillway-reason: {}\r\n",
                 status, http::reason_phrase(status), std::strlen(name) + 1, name);
  if (status == 503) {
    auto retry_after = up != nullptr ? up->degrade.retry_after : config::degradation{}.retry_after;
    auto secs = (retry_after.count() + 999) / 1000;
    fmt::format_to(std::back_inserter(out_), "retry-after: {}\r\n", secs);
  }
  if (close) {
    out_.append("connection: close\r\n");
  } else if (client_http10_) {
    out_.append("connection: keep-alive\r\n");
  }
  out_.append("\r\n");
  if (request_parser_.head().method != "HEAD") {
    out_.append(name);
    out_.push_back('\n');
  }
  phase_ = phase::streaming;
  rec_.status = status;
  rec_.reason = name;
  rec_.local = static_cast<int>(reason);
  // A client that does not read its answer (after a timeout, say) cannot hold the session.
  set_deadline(clock::now() + local_reply_timeout);
  auto [ec, n] = co_await asio::async_write(downstream_, asio::buffer(out_), nothrow);
  rec_.bytes_out += n;
  if (ec || close) {
    co_return outcome::close;
  }
  co_return outcome::keep_alive;
}

namespace {

// Counts one unit on an atomic gauge for as long as it lives.
class gauge_hold {
 public:
  explicit gauge_hold(std::atomic<std::int64_t>* g) : g_(g) {
    if (g_ != nullptr) {
      g_->fetch_add(1, std::memory_order_relaxed);
    }
  }
  // Takes over a unit the caller already added.
  static constexpr struct adopt_t {
  } adopt{};
  gauge_hold(std::atomic<std::int64_t>* g, adopt_t) : g_(g) {}
  ~gauge_hold() {
    if (g_ != nullptr) {
      g_->fetch_sub(1, std::memory_order_relaxed);
    }
  }
  gauge_hold(const gauge_hold&) = delete;
  gauge_hold& operator=(const gauge_hold&) = delete;

 private:
  std::atomic<std::int64_t>* g_;
};

bool contains(const std::vector<int>& v, int x) { return std::find(v.begin(), v.end(), x) != v.end(); }

}  // namespace

void http_session::report(upstream::host* h, const config::upstream& up, bool failure, int status) {
  if (failure) {
    h->failures_total.fetch_add(1, std::memory_order_relaxed);
  }
  // The breaker's verdict: connect errors, resets, timeouts, and the configured failure statuses
  // (every 5xx by default); a call is slow when its response head took longer than
  // slow_call_duration. One verdict per try: a failure later in the body is the outlier detector's
  // business only.
  const auto& fs = up.breaker.failure_status;
  const bool failed_status = status != 0 && (fs.empty() ? status >= 500 : contains(fs, status));
  if (breaker_token_ && breaker_host_ == h) {
    breaker::outcome o;
    o.failure = status == 0 ? failure : failed_status;
    o.slow = clock::now() - try_started_ > up.breaker.slow_call_duration;
    judge(worker_, *h, breaker_token_, o);
  }
  record_outlier(worker_, *h, up.outlier, failure, failed_status);
}

void http_session::release_breaker_token() {
  if (breaker_token_ && breaker_host_ != nullptr && breaker_host_->circuit) {
    breaker_host_->circuit->release(breaker_token_);
  }
  breaker_token_ = {};
  breaker_host_ = nullptr;
}

bool http_session::can_resend() const { return !body_started_ || (request_complete_ && replay_ok_); }

awaitable<http_session::send_result> http_session::send_request(const http::message_head& req, bool expect_continue,
                                                                std::uint64_t max_body) {
  build_upstream_head(req, expect_continue);
  if (body_started_) {
    // A retry after the body was read on an earlier try: it was kept whole, send it again.
    std::array<asio::const_buffer, 2> bufs{asio::buffer(out_), asio::buffer(replay_)};
    auto [ec, n] = co_await asio::async_write(upstream_->stream, bufs, nothrow);
    co_return ec ? send_result::upstream_write_failed : send_result::ok;
  }
  std::uint64_t body_bytes = 0;
  // Body bytes kept for a retry, as long as the whole body fits.
  auto keep = [&](const char* data, std::size_t n) {
    if (n == 0 || !replay_ok_) {
      return;
    }
    if (replay_.size() + n > max_replay_body) {
      replay_ok_ = false;
      replay_.clear();
      return;
    }
    replay_.append(data, n);
  };
  http::parser::result r;
  if (!request_complete_) {
    // Body bytes that arrived with the head go out in the same write as the head.
    r = request_parser_.feed(dbuf_.data() + dbegin_, dend_ - dbegin_);
    if (r.what == http::parser::event::error) {
      co_return request_parser_.error_too_large() ? send_result::trailers_too_large : send_result::malformed;
    }
    request_complete_ = r.what == http::parser::event::message_complete;
    if (max_body > 0 && r.consumed > max_body) {
      co_return send_result::too_large;
    }
  }
  bool sent_ok = true;
  {
    std::array<asio::const_buffer, 2> bufs{asio::buffer(out_), asio::buffer(dbuf_.data() + dbegin_, r.consumed)};
    keep(dbuf_.data() + dbegin_, r.consumed);
    body_bytes += r.consumed;
    rec_.bytes_in += r.consumed;
    dbegin_ += r.consumed;
    body_started_ = body_started_ || r.consumed > 0;
    auto [ec, n] = co_await asio::async_write(upstream_->stream, bufs, nothrow);
    sent_ok = !ec;
  }
  if (sent_ok && !request_complete_ && expect_continue && body_bytes == 0) {
    static constexpr std::string_view cont = "HTTP/1.1 100 Continue\r\n\r\n";
    auto [ec, n] = co_await asio::async_write(downstream_, asio::buffer(cont), nothrow);
    if (ec) {
      co_return send_result::client_gone;
    }
  }
  while (sent_ok && !request_complete_) {
    if (dbegin_ == dend_ && co_await read_downstream() == 0) {
      co_return send_result::client_gone;
    }
    r = request_parser_.feed(dbuf_.data() + dbegin_, dend_ - dbegin_);
    if (r.what == http::parser::event::error) {
      // Bad framing mid-body (e.g. an invalid chunk size): the bad bytes are never forwarded.
      co_return request_parser_.error_too_large() ? send_result::trailers_too_large : send_result::malformed;
    }
    request_complete_ = r.what == http::parser::event::message_complete;
    body_bytes += r.consumed;
    rec_.bytes_in += r.consumed;
    if (max_body > 0 && body_bytes > max_body) {
      co_return send_result::too_large;
    }
    body_started_ = true;
    keep(dbuf_.data() + dbegin_, r.consumed);
    auto [ec, n] =
        co_await asio::async_write(upstream_->stream, asio::buffer(dbuf_.data() + dbegin_, r.consumed), nothrow);
    dbegin_ += r.consumed;
    sent_ok = !ec;
  }
  co_return sent_ok ? send_result::ok : send_result::upstream_write_failed;
}

awaitable<http_session::head_result> http_session::read_response_head(bool expect_continue, bool head_request,
                                                                      const config::upstream& up) {
  response_parser_.reset();
  response_parser_.set_no_body(head_request);
  response_parser_.set_limits(up.max_response_headers, up.max_response_header_fields);
  ubegin_ = uend_ = 0;
  bool got_bytes = false;
  while (true) {
    if (ubegin_ == uend_) {
      ubegin_ = uend_ = 0;
      auto [ec, n] = co_await upstream_->stream.async_read_some(asio::buffer(ubuf_), nothrow);
      if (ec) {
        co_return got_bytes ? head_result::reset : head_result::closed_silently;
      }
      got_bytes = true;
      uend_ = n;
    }
    auto rr = response_parser_.feed(ubuf_.data() + ubegin_, uend_ - ubegin_);
    if (rr.what == http::parser::event::error || response_parser_.head_bytes() > up.max_response_headers) {
      if (rr.what != http::parser::event::error || response_parser_.error_too_large()) {
        rec_.cluster->stats->response_heads_too_large.fetch_add(1, std::memory_order_relaxed);
      }
      log::debug("malformed response from {} ({}): {}", upstream_host_, up.name,
                 rr.what == http::parser::event::error ? response_parser_.error_reason() : "head too large");
      co_return head_result::protocol_error;
    }
    ubegin_ += rr.consumed;
    if (rr.what != http::parser::event::headers_complete) {
      continue;
    }
    const auto& resp = response_parser_.head();
    if (resp.status >= 100 && resp.status < 200 && resp.status != 101) {
      // Interim answers are passed on (Spillway sent its own 100 Continue already when it
      // answered the Expect itself); the 1xx completes on the next feed, then the real head follows.
      if (!(resp.status == 100 && expect_continue)) {
        build_downstream_head(resp, false);
        auto [ec, n] = co_await asio::async_write(downstream_, asio::buffer(out_), nothrow);
        rec_.bytes_out += n;
        if (ec) {
          co_return head_result::client_gone;
        }
      }
      continue;
    }
    co_return head_result::ok;
  }
}

awaitable<http_session::outcome> http_session::stream_response(upstream::host* h, const config::upstream& up,
                                                               bool close_client, bool request_sent_ok) {
  const auto& resp = response_parser_.head();
  phase_ = phase::streaming;
  rec_.status = resp.status;
  const bool until_close = response_parser_.body_until_close();
  close_client = close_client || until_close;
  build_downstream_head(resp, close_client);
  auto rr = response_parser_.feed(ubuf_.data() + ubegin_, uend_ - ubegin_);
  if (rr.what == http::parser::event::error) {
    // Bad framing right after the head: nothing has reached the client yet.
    upstream_.reset();
    report(h, up, true);
    co_return co_await send_local(local_reason::upstream_protocol_error, true, &up);
  }
  bool response_complete = rr.what == http::parser::event::message_complete;
  bool upstream_failed = false;  // the backend broke the response (not the client going away)
  bool ok = true;
  {
    std::array<asio::const_buffer, 2> bufs{asio::buffer(out_), asio::buffer(ubuf_.data() + ubegin_, rr.consumed)};
    ubegin_ += rr.consumed;
    auto [ec, n] = co_await asio::async_write(downstream_, bufs, nothrow);
    rec_.bytes_out += n;
    ok = !ec;
  }
  while (ok && !response_complete) {
    ubegin_ = 0;
    auto [ec, n] = co_await upstream_->stream.async_read_some(asio::buffer(ubuf_), nothrow);
    if (ec) {
      if (ec == asio::error::eof && until_close) {
        response_complete = response_parser_.finish() == http::parser::event::message_complete;
      }
      upstream_failed = !response_complete;
      ok = response_complete;
      break;
    }
    uend_ = n;
    rr = response_parser_.feed(ubuf_.data(), uend_);
    if (rr.what == http::parser::event::error) {
      upstream_failed = true;
      ok = false;
      break;
    }
    response_complete = rr.what == http::parser::event::message_complete;
    auto [wec, wn] = co_await asio::async_write(downstream_, asio::buffer(ubuf_.data(), rr.consumed), nothrow);
    rec_.bytes_out += wn;
    ubegin_ = rr.consumed;
    ok = !wec;
  }
  if (!ok) {
    // Part of the response reached the client: the only honest signal left is to close.
    if (upstream_failed) {
      report(h, up, true);
    }
    upstream_.reset();
    co_return outcome::close;
  }
  // Reuse the upstream connection only when the exchange ended cleanly on both sides and the
  // backend sent nothing beyond its response.
  // A 1xx or 204 that claimed a body (which the client was not given) may be followed by those bytes.
  const bool claimed_body = (resp.status < 200 || resp.status == 204) && (resp.chunked || resp.content_length > 0);
  const bool reusable =
      resp.keep_alive && request_complete_ && request_sent_ok && !until_close && ubegin_ == uend_ && !claimed_body;
  if (reusable) {
    worker_.pool().put(std::move(upstream_));
  } else {
    upstream_.reset();
  }
  co_return close_client ? outcome::close : outcome::keep_alive;
}

awaitable<http_session::outcome> http_session::tunnel(const config::upstream& up) {
  phase_ = phase::streaming;
  // From here the request deadline no longer applies: the tunnel lives while bytes move, and the
  // idle timeout closes it.
  const auto idle = std::chrono::duration_cast<clock::duration>(up.timeout.idle);
  set_deadline(clock::now() + idle);
  build_downstream_head(response_parser_.head(), false);
  rec_.status = 101;
  {
    // The 101 and whatever the backend sent right behind it (the first frames, already).
    std::array<asio::const_buffer, 2> bufs{asio::buffer(out_), asio::buffer(ubuf_.data() + ubegin_, uend_ - ubegin_)};
    auto [ec, n] = co_await asio::async_write(downstream_, bufs, nothrow);
    rec_.bytes_out += n;
    if (ec) {
      upstream_.reset();
      co_return outcome::close;
    }
    ubegin_ = uend_ = 0;
  }
  if (dbegin_ < dend_) {
    // Bytes the client sent after its request, before the 101 reached it.
    auto [ec, n] =
        co_await asio::async_write(upstream_->stream, asio::buffer(dbuf_.data() + dbegin_, dend_ - dbegin_), nothrow);
    dbegin_ = dend_ = 0;
    if (ec) {
      upstream_.reset();
      co_return outcome::close;
    }
  }
  co_await (relay(downstream_, upstream_->stream, deadline_, idle, &rec_.bytes_in) &&
            relay(upstream_->stream, downstream_, deadline_, idle, &rec_.bytes_out));
  upstream_.reset();
  co_return outcome::close;
}

awaitable<http_session::outcome> http_session::forward(const std::shared_ptr<worker_view>& view,
                                                       std::size_t cluster_index) {
  const auto& cluster = *view->snap->clusters[cluster_index];
  auto& lb = *view->balancers[cluster_index];
  rec_.cluster = &cluster;
  const auto& up = cluster.cfg;
  auto& stats = *cluster.stats;
  const auto& req = request_parser_.head();
  const auto request_deadline = first_byte_ + up.timeout.request;
  phase_ = phase::upstream;
  set_deadline(request_deadline);

  const bool idempotent = is_idempotent(req.method);
  const bool expect_continue = !client_http10_ && http::has_token(req.find("expect"), "100-continue");
  const bool head_request = req.method == "HEAD";
  const std::uint64_t max_body = view->snap->find_listener(listen_)->cfg->max_request_body;
  const auto& policy = up.retry;

  // max_requests: a request is admitted only if the count it raised was below the limit, so the
  // admitted ones never exceed it; the counter itself may read up to (workers - 1) over for an
  // instant while refused requests back out.
  if (stats.active_requests.fetch_add(1, std::memory_order_relaxed) >= up.limit.max_requests) {
    stats.active_requests.fetch_sub(1, std::memory_order_relaxed);
    stats.overflow_max_requests.fetch_add(1, std::memory_order_relaxed);
    co_return co_await send_local(local_reason::upstream_overloaded, !request_complete_, &up);
  }
  gauge_hold in_flight(&stats.active_requests, gauge_hold::adopt);
  std::array<upstream::host*, 8> tried{};
  std::size_t tried_count = 0;
  std::uint32_t retries_left = policy.attempts;
  bool first_try = true;
  bool tried_available = false;  // some host tried was available (not only panic picks)
  local_reason failure = local_reason::no_healthy_upstream;
  replay_.clear();
  replay_ok_ = true;
  body_started_ = false;
  upstream::host* fresh_retry_host = nullptr;
  // Counted before the failure is reported, so that whoever sees the failure (the control thread
  // ejecting the host) sees its retry too: the degradation report compares the two.
  auto count_retry_of = [](upstream::host* failed, bool retry) {
    if (retry) {
      failed->note_retried();
    }
  };
  balancer::choose_context ctx;
  if (up.balance == config::balance_policy::consistent_hash) {
    ctx.hash = balancer::hash64(client_ip_);
  }

  // Whether the failed try may be followed by another: the condition is listed in `retries.on`
  // (decided by the caller), a retry is left, the request can be sent again, and the budget allows.
  //
  // A retry after a failed connect is not held to the budget: nothing reached a backend, so it adds
  // no load there, and refusing it would turn a dead host into client errors while others live.
  auto retry_allowed = [&](bool condition, bool budgeted = true) {
    if (!condition || retries_left == 0 || !can_resend()) {
      return false;
    }
    if (budgeted && !stats.retry_allowed(policy.budget)) {
      stats.retry_budget_exhausted.fetch_add(1, std::memory_order_relaxed);
      return false;
    }
    --retries_left;
    return true;
  };

  while (true) {
    upstream::host* h = fresh_retry_host;
    fresh_retry_host = nullptr;
    bool is_retry = false;
    if (h == nullptr) {
      release_breaker_token();  // a try that ended without a verdict gives its trial slot back
      // A half-open breaker with every trial slot taken refuses the call: that host is skipped
      // without using up a try. Bounded, since a refusing host joins `tried`.
      for (std::size_t refusals = 0; refusals <= tried.size(); ++refusals) {
        ctx.exclude = std::span<upstream::host* const>(tried.data(), tried_count);
        h = lb.choose_host(ctx);
        if (h == nullptr) {
          break;
        }
        if (tried_count < tried.size() &&
            std::find(tried.begin(), tried.begin() + tried_count, h) == tried.begin() + tried_count) {
          tried[tried_count++] = h;
        }
        if (!h->circuit) {
          break;
        }
        breaker_token_ = h->circuit->try_acquire(clock::now());
        if (breaker_token_) {
          breaker_host_ = h;
          break;
        }
        h = nullptr;
      }
      if (h == nullptr) {
        break;
      }
      is_retry = !first_try;
      first_try = false;
    }
    tried_available = tried_available || h->available();
    upstream::active_request load(h);  // retries count as load too
    gauge_hold retry_hold(is_retry ? &stats.active_retries : nullptr);
    auto retry_failed = [&] {
      if (is_retry) {
        stats.retries_failure.fetch_add(1, std::memory_order_relaxed);
      }
    };
    h->requests_total.fetch_add(1, std::memory_order_relaxed);
    rec_.host = h;
    ++rec_.tries;
    try_started_ = clock::now();
    const auto try_deadline = policy.per_try_timeout.count() > 0
                                  ? std::min(request_deadline, clock::now() + policy.per_try_timeout)
                                  : request_deadline;

    // --- a connection: pooled, or new ---
    upstream_ = worker_.pool().take(h, cluster.tls.get());
    bool reused = upstream_ != nullptr;
    expired_ = false;
    if (!reused && !stats.try_reserve_connection(up.limit.max_connections)) {
      // max_connections reached: wait as a pending request (at most max_pending of them) for a
      // connection to come free, until the connect timeout; then give up at once, never queue
      // without a deadline.
      if (stats.pending.fetch_add(1, std::memory_order_relaxed) >= up.limit.max_pending) {
        stats.pending.fetch_sub(1, std::memory_order_relaxed);
        stats.overflow_max_pending.fetch_add(1, std::memory_order_relaxed);
        failure = local_reason::upstream_overloaded;
        break;
      }
      gauge_hold pending(&stats.pending, gauge_hold::adopt);
      const auto give_up = std::min(try_deadline, clock::now() + up.timeout.connect);
      bool reserved = false;
      asio::steady_timer wait(worker_.io());
      while (!reused && !reserved && clock::now() < give_up) {
        wait.expires_after(std::chrono::milliseconds(2));
        co_await wait.async_wait(nothrow);
        upstream_ = worker_.pool().take(h, cluster.tls.get());
        reused = upstream_ != nullptr;
        reserved = !reused && stats.try_reserve_connection(up.limit.max_connections);
      }
      if (!reused && !reserved) {
        stats.overflow_max_connections.fetch_add(1, std::memory_order_relaxed);
        failure = local_reason::upstream_overloaded;
        break;
      }
    }
    if (!reused) {
      upstream_ = std::make_unique<upstream_connection>(tcp::socket(worker_.io()), h->shared_from_this(), cluster.stats,
                                                        cluster.tls);
      set_deadline(std::min(try_deadline, clock::now() + up.timeout.connect));
      const auto connect_start = clock::now();
      auto ec = co_await upstream::connect(upstream_->stream, *h, cluster.tls.get());
      rec_.connect_time = clock::now() - connect_start;
      if (!ec && view->snap->cfg->metrics) {
        cluster.stats->traffic.local(worker_.index()).connect_time.observe(rec_.connect_time);
      }
      if (ec) {
        upstream_.reset();
        h->connect_failures_total.fetch_add(1, std::memory_order_relaxed);
        // Nothing was sent: any method may go elsewhere.
        const bool past_deadline = clock::now() >= request_deadline;
        const bool retry = !past_deadline && retry_allowed(policy.on_connect_failure, false);
        count_retry_of(h, retry);
        report(h, up, true);
        retry_failed();
        log::debug("connect to {} ({}) failed: {}", h->address(), up.name, expired_ ? "timeout" : ec.message());
        failure = past_deadline ? local_reason::upstream_timeout : local_reason::upstream_connect_failure;
        if (retry) {
          continue;
        }
        break;
      }
    }
    set_deadline(try_deadline);
    upstream_->requests++;
    upstream_host_ = h->address();

    // --- the request ---
    auto sent = co_await send_request(req, expect_continue, max_body);
    if (sent == send_result::client_gone) {
      upstream_.reset();
      co_return outcome::close;
    }
    if (sent == send_result::malformed || sent == send_result::too_large || sent == send_result::trailers_too_large) {
      upstream_.reset();
      co_return co_await send_local(sent == send_result::malformed   ? local_reason::malformed_request
                                    : sent == send_result::too_large ? local_reason::body_too_large
                                                                     : local_reason::headers_too_large,
                                    true);
    }

    // --- the response head ---
    auto got = co_await read_response_head(expect_continue, head_request, up);
    if (got == head_result::client_gone) {
      upstream_.reset();
      co_return outcome::close;
    }
    if (got != head_result::ok) {
      const bool timed_out = expired_;
      upstream_.reset();
      if (!timed_out && got == head_result::closed_silently && reused && can_resend()) {
        // A pooled connection the backend closed just as we sent: not the backend's fault and
        // nothing was processed, so the same host gets the request again on a new connection.
        fresh_retry_host = h;
        continue;
      }
      bool retry = false;
      if (timed_out) {
        // This try's deadline passed; another try only if the request's own has not.
        failure = local_reason::upstream_timeout;
        retry = clock::now() < request_deadline && retry_allowed(policy.on_timeout && idempotent);
      } else {
        failure =
            got == head_result::protocol_error ? local_reason::upstream_protocol_error : local_reason::upstream_reset;
        retry = retry_allowed(got != head_result::protocol_error && policy.on_reset && idempotent);
      }
      count_retry_of(h, retry);
      report(h, up, true);
      retry_failed();
      if (retry) {
        continue;
      }
      break;
    }

    const auto& resp = response_parser_.head();
    rec_.upstream_time = clock::now() - try_started_;
    if (resp.status == 101 && upgrade_ && request_complete_) {
      report(h, up, false, resp.status);
      if (is_retry) {
        stats.retries_success.fetch_add(1, std::memory_order_relaxed);
      }
      stats.active_tunnels.fetch_add(1, std::memory_order_relaxed);
      auto result = co_await tunnel(up);
      stats.active_tunnels.fetch_sub(1, std::memory_order_relaxed);
      co_return result;
    }
    if (resp.status == 101) {
      // No upgrade was asked for (or the request body is still coming): a backend error.
      upstream_.reset();
      report(h, up, true);
      retry_failed();
      failure = local_reason::upstream_protocol_error;
      break;
    }
    const bool gateway_error = resp.status >= 502 && resp.status <= 504;
    const bool retry = contains(policy.on_status, resp.status) && retry_allowed(idempotent);
    count_retry_of(h, retry);
    report(h, up, gateway_error, resp.status);
    if (resp.status >= 500 && !gateway_error) {
      h->failures_total.fetch_add(1, std::memory_order_relaxed);
    }
    if (retry) {
      retry_failed();
      upstream_.reset();  // its body is not read: the connection cannot be reused
      continue;
    }
    if (is_retry) {
      (contains(policy.on_status, resp.status) ? stats.retries_failure : stats.retries_success)
          .fetch_add(1, std::memory_order_relaxed);
    }
    // The response goes to the client now; only the request deadline applies from here.
    set_deadline(request_deadline);
    const bool close_client = !req.keep_alive || draining_ || !request_complete_;
    co_return co_await stream_response(h, up, close_client, sent == send_result::ok);
  }

  upstream_.reset();
  if (!tried_available && failure != local_reason::upstream_timeout && failure != local_reason::upstream_overloaded) {
    // Nothing available was tried (only panic picks, or no host at all): the cause is that no
    // healthy backend exists, whatever the last connect said.
    failure = local_reason::no_healthy_upstream;
  }
  if (failure == local_reason::no_healthy_upstream) {
    stats.no_healthy_upstream.fetch_add(1, std::memory_order_relaxed);
  }
  co_return co_await send_local(failure, !request_complete_, &up);
}

}  // namespace spillway::proxy
