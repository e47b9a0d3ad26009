// One try's exchange with a backend on the HTTP/1 front end: the request out (head rewritten,
// body streamed or replayed), the response head in (1xx passed on), then the response streamed to
// the client or, after a 101, a tunnel. The session's other half is in http_session.cpp.

#include "common/completion.h"
#include "common/log.h"
#include "http/status.h"
#include "proxy/h2_upstream.h"
#include "proxy/http_session.h"
#include "proxy/relay.h"
#include "proxy/upstream_attempt.h"

#include <boost/asio/deferred.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/write.hpp>

#include <charconv>

namespace spillway::proxy {

namespace asio = boost::asio;
using asio::awaitable;
using namespace asio::experimental::awaitable_operators;

namespace {

// An HTTP/2 backend's stream takes request body bytes while less than this waits for its window.
constexpr std::size_t h2_body_high_water = 64 * 1024;

void append_to(void* ctx, const char* data, std::size_t n) { static_cast<std::string*>(ctx)->append(data, n); }

// Bodies (or what is left of them) of at least this many bytes are spliced when the listener allows
// it: below it the pipe's three system calls cost more than the copies they save.
constexpr std::uint64_t splice_body_min = 64 * 1024;
}  // namespace

awaitable<http_session::send_result> http_session::send_request(upstream_connection& conn,
                                                                const http::message_head& req, bool expect_continue,
                                                                std::uint64_t max_body) {
  build_upstream_head(req, st_->facts, st_->scratch, st_->out);
  if (body_started_) {
    // A retry after the body was read on an earlier try: it was kept whole, send it again.
    std::array<asio::const_buffer, 2> bufs{asio::buffer(st_->out), asio::buffer(st_->replay)};
    auto [ec, n] = co_await conn.stream.write_all(bufs);
    co_return ec ? send_result::upstream_write_failed : send_result::ok;
  }
  std::uint64_t body_bytes = 0;
  // Body bytes kept for a retry, as long as the whole body fits.
  auto keep = [&](const char* data, std::size_t n) {
    if (n == 0 || !replay_ok_) {
      return;
    }
    if (st_->replay.size() + n > max_replay_body) {
      replay_ok_ = false;
      st_->replay.clear();
      return;
    }
    st_->replay.append(data, n);
  };
  http::parser::result r;
  if (!request_complete_) {
    // Body bytes that arrived with the head go out in the same write as the head.
    r = st_->request_parser.feed(st_->dbuf.data() + st_->dbegin, st_->dend - st_->dbegin);
    if (r.what == http::parser::event::error) {
      co_return st_->request_parser.error_too_large() ? send_result::trailers_too_large : send_result::malformed;
    }
    request_complete_ = r.what == http::parser::event::message_complete;
    if (max_body > 0 && r.consumed > max_body) {
      co_return send_result::too_large;
    }
  }
  bool sent_ok = true;
  {
    std::array<asio::const_buffer, 2> bufs{asio::buffer(st_->out),
                                           asio::buffer(st_->dbuf.data() + st_->dbegin, r.consumed)};
    keep(st_->dbuf.data() + st_->dbegin, r.consumed);
    body_bytes += r.consumed;
    st_->rec.bytes_in += r.consumed;
    st_->dbegin += r.consumed;
    body_started_ = body_started_ || r.consumed > 0;
    auto [ec, n] = co_await conn.stream.write_all(bufs);
    sent_ok = !ec;
  }
  if (sent_ok && !request_complete_ && expect_continue && body_bytes == 0) {
    static constexpr std::string_view cont = "HTTP/1.1 100 Continue\r\n\r\n";
    auto [ec, n] = co_await down_.stream().write_all(asio::buffer(cont));
    if (ec) {
      co_return send_result::client_gone;
    }
  }
  while (sent_ok && !request_complete_) {
    if (const auto left = st_->request_parser.body_remaining(); left >= splice_body_min && splice_bodies_ &&
                                                                st_->dbegin == st_->dend && !conn.stream.is_tls() &&
                                                                st_->replay.size() + left > max_replay_body) {
      // A big upload of known length, too big to keep for a retry anyway: splice it (as in
      // stream_response).
      replay_ok_ = false;
      st_->replay.clear();
      std::uint64_t moved = 0;
      const auto res = co_await splice_exact(down_.stream(), conn.stream, left, moved);
      if (res != splice_result::no_pipe) {
        body_bytes += moved;
        st_->rec.bytes_in += moved;
        body_started_ = body_started_ || moved > 0;
        r = st_->request_parser.skip_body(moved);
        request_complete_ = r.what == http::parser::event::message_complete;
        if (res == splice_result::write_failed) {
          sent_ok = false;
        } else if (res != splice_result::done) {
          co_return send_result::client_gone;  // the client stopped short, or a deadline closed it
        }
        continue;
      }
      splice_bodies_ = false;  // no pipe to be had: copy
    }
    if (st_->dbegin == st_->dend && co_await read_downstream() == 0) {
      co_return send_result::client_gone;
    }
    r = st_->request_parser.feed(st_->dbuf.data() + st_->dbegin, st_->dend - st_->dbegin);
    if (r.what == http::parser::event::error) {
      // Bad framing mid-body (e.g. an invalid chunk size): the bad bytes are never forwarded.
      co_return st_->request_parser.error_too_large() ? send_result::trailers_too_large : send_result::malformed;
    }
    request_complete_ = r.what == http::parser::event::message_complete;
    body_bytes += r.consumed;
    st_->rec.bytes_in += r.consumed;
    if (max_body > 0 && body_bytes > max_body) {
      co_return send_result::too_large;
    }
    body_started_ = true;
    keep(st_->dbuf.data() + st_->dbegin, r.consumed);
    auto [ec, n] = co_await conn.stream.write_all(asio::buffer(st_->dbuf.data() + st_->dbegin, r.consumed));
    st_->dbegin += r.consumed;
    sent_ok = !ec;
  }
  co_return sent_ok ? send_result::ok : send_result::upstream_write_failed;
}

void http_session::begin_response_head(bool head_request, const config::upstream& up) {
  st_->response_parser.reset();
  st_->response_parser.set_no_body(head_request);
  st_->response_parser.set_limits(up.max_response_headers, up.max_response_header_fields);
  st_->ubegin = st_->uend = 0;
}

http_session::head_step http_session::response_head_step(bool expect_continue, const config::upstream& up) {
  while (st_->ubegin != st_->uend) {
    auto rr = st_->response_parser.feed(st_->ubuf.data() + st_->ubegin, st_->uend - st_->ubegin);
    if (rr.what == http::parser::event::error || st_->response_parser.head_bytes() > up.max_response_headers) {
      if (rr.what != http::parser::event::error || st_->response_parser.error_too_large()) {
        st_->rec.cluster->stats->response_heads_too_large.fetch_add(1, std::memory_order_relaxed);
      }
      log::debug("malformed response from {} ({}): {}", st_->facts.default_host, up.name,
                 rr.what == http::parser::event::error ? st_->response_parser.error_reason() : "head too large");
      return head_step::protocol_error;
    }
    st_->ubegin += rr.consumed;
    if (rr.what != http::parser::event::headers_complete) {
      continue;
    }
    const auto& resp = st_->response_parser.head();
    if (resp.status >= 100 && resp.status < 200 && resp.status != 101) {
      // Interim answers are passed on (Spillway sent its own 100 Continue already when it
      // answered the Expect itself); the 1xx completes on the next feed, then the real head follows.
      if (!(resp.status == 100 && expect_continue)) {
        build_downstream_head(resp, false, st_->facts.http10, st_->scratch, st_->out);
        return head_step::interim;
      }
      continue;
    }
    return head_step::done;
  }
  return head_step::more;
}

awaitable<http_session::next> http_session::stream_response(upstream_attempt& attempt, bool close_client,
                                                            bool request_sent_ok) {
  auto& conn = attempt.conn();
  const auto& resp = st_->response_parser.head();
  phase_ = phase::streaming;
  st_->rec.status = resp.status;
  const bool until_close = st_->response_parser.body_until_close();
  close_client = close_client || until_close;
  build_downstream_head(resp, close_client, st_->facts.http10, st_->scratch, st_->out);
  auto rr = st_->response_parser.feed(st_->ubuf.data() + st_->ubegin, st_->uend - st_->ubegin);
  if (rr.what == http::parser::event::error) {
    // Bad framing right after the head: nothing has reached the client yet.
    attempt.response_failed();
    co_return co_await send_local(error_kind::upstream_protocol_error, true, &attempt.cfg());
  }
  bool response_complete = rr.what == http::parser::event::message_complete;
  if (response_complete) {
    conn->watch_idle(st_->upstream_drained);
  }
  bool upstream_failed = false;  // the backend broke the response (not the client going away)
  bool ok = true;
  {
    std::array<asio::const_buffer, 2> bufs{asio::buffer(st_->out),
                                           asio::buffer(st_->ubuf.data() + st_->ubegin, rr.consumed)};
    st_->ubegin += rr.consumed;
    auto w = down_.stream().start_write(bufs);
    if (w.pending()) {
      co_await down_.stream().finish_write(w);
    }
    st_->rec.bytes_out += w.written;
    ok = !w.ec;
  }
  while (ok && !response_complete) {
    if (const auto left = st_->response_parser.body_remaining();
        left >= splice_body_min && splice_bodies_ && !conn->stream.is_tls()) {
      // A big body of known length between plain sockets goes through a pipe with splice(2):
      // the kernel moves the pages and they never reach this process.
      std::uint64_t moved = 0;
      const auto r = co_await splice_exact(conn->stream, down_.stream(), left, moved);
      if (r != splice_result::no_pipe) {
        st_->rec.bytes_out += moved;
        rr = st_->response_parser.skip_body(moved);
        st_->ubegin = st_->uend = 0;
        if (r == splice_result::done) {
          response_complete = rr.what == http::parser::event::message_complete;
          ok = response_complete;
          upstream_failed = !ok;
          continue;
        }
        upstream_failed = r == splice_result::truncated || r == splice_result::read_failed;  // not the client
        ok = false;
        break;
      }
      splice_bodies_ = false;  // no pipe to be had: copy
    }
    st_->ubegin = 0;
    auto [ec, n] = co_await conn->stream.async_read_some(asio::buffer(st_->ubuf), nothrow_deferred);
    if (ec) {
      if (ec == asio::error::eof && until_close) {
        response_complete = st_->response_parser.finish() == http::parser::event::message_complete;
      }
      upstream_failed = !response_complete;
      ok = response_complete;
      break;
    }
    st_->uend = n;
    rr = st_->response_parser.feed(st_->ubuf.data(), st_->uend);
    if (rr.what == http::parser::event::error) {
      upstream_failed = true;
      ok = false;
      break;
    }
    response_complete = rr.what == http::parser::event::message_complete;
    if (response_complete) {
      conn->watch_idle(n < st_->ubuf.size());
    }
    auto w = down_.stream().start_write(asio::buffer(st_->ubuf.data(), rr.consumed));
    if (w.pending()) {
      co_await down_.stream().finish_write(w);
    }
    st_->rec.bytes_out += w.written;
    st_->ubegin = rr.consumed;
    ok = !w.ec;
  }
  // The upstream connection is reused when the backend's side of the exchange ended cleanly, even
  // if the client's did not (it left as the last bytes were written to it: its connection closes).
  if (response_complete && st_->upstream_reusable(request_complete_ && request_sent_ok)) {
    down_.owner().pool().put(std::move(conn));
  } else {
    conn.reset();
  }
  if (!ok) {
    // Part of the response reached the client: the only honest signal left is to close.
    if (upstream_failed) {
      attempt.response_failed();
    }
    co_return next::close;
  }
  co_return close_client ? next::close : next::keep_alive;
}

awaitable<std::optional<http_session::next>> http_session::exchange_h2(upstream_attempt& attempt,
                                                                       const try_context& t) {
  const auto& req = st_->request_parser.head();
  const auto& up = attempt.cfg();
  const auto& facts = st_->facts;
  auto authority = facts.shape.host_override.empty() ? req.find("host") : facts.shape.host_override;
  if (authority.empty()) {
    authority = facts.default_host;  // an HTTP/1.0 request without Host
  }
  h2_request_fields(req, facts, attempt.cluster().tls ? "https" : "http", authority, facts.shape.forward_target,
                    st_->scratch, st_->h2_fields);
  auto call = attempt.h2()->submit(st_->h2_fields, req.chunked || req.content_length > 0);
  if (!call) {
    // The connection cannot take it (told GOAWAY, or out of stream ids): nothing was sent.
    if (attempt.try_failed(try_end::stale_connection, can_resend(), clock::now() < t.request_deadline) !=
        retry_verdict::no) {
      co_return std::nullopt;
    }
    co_return co_await send_local(attempt.failure(), !request_complete_, &up);
  }
  h2_call_ = call;  // for deadline_passed()
  struct forget {
    std::shared_ptr<h2_call>& slot;
    ~forget() {
      if (slot && !slot->closed) {
        slot->cancel();  // a stream this try leaves open (say, a request body the answer cut short)
      }
      slot.reset();
    }
  } forget_call{h2_call_};

  const auto sent = co_await send_body_h2(*call, t);
  if (sent == send_result::client_gone) {
    co_return next::close;
  }
  if (sent == send_result::malformed || sent == send_result::too_large || sent == send_result::trailers_too_large) {
    co_return co_await send_local(refusal_of(sent), true);  // the backend's stream is reset
  }
  while (!call->head_done && !call->closed && !down_.expired()) {
    if (!call->wake.ready()) {
      co_await call->wake.sleep();
    }
  }
  if (!call->head_done) {
    if (attempt.h2_try_failed(*call, down_.expired(), can_resend(), clock::now() < t.request_deadline) !=
        retry_verdict::no) {
      co_return std::nullopt;
    }
    co_return co_await send_local(attempt.failure(), !request_complete_, &up);
  }
  st_->rec.upstream_time = attempt.head_arrived();
  if (attempt.got_h2_response(*call, can_resend()) == retry_verdict::retry) {
    co_return std::nullopt;
  }
  co_return co_await stream_h2_response(attempt, *call, t);
}

awaitable<http_session::send_result> http_session::send_body_h2(h2_call& call, const try_context& t) {
  const auto& req = st_->request_parser.head();
  if (!req.chunked && req.content_length == 0) {
    co_return send_result::ok;  // the head ended the stream
  }
  if (body_started_) {
    // A retry after the body was read on an earlier try: it was kept whole (as data, no framing).
    call.out = st_->replay;
    call.out_trailers = h2_trailers_;
    call.out_eof = true;
    call.conn->resume(call);
    co_return send_result::ok;
  }
  // A chunked body's data goes to the stream without its framing, and its trailers as the
  // stream's; other bodies are their data.
  std::string trailer_text;
  st_->request_parser.set_chunked_sink(&append_to, &call.out);
  st_->request_parser.set_trailer_capture(&trailer_text);
  struct unsink {
    http::parser& p;
    ~unsink() {
      p.set_chunked_sink(nullptr, nullptr);
      p.set_trailer_capture(nullptr);
    }
  } unsink_parser{st_->request_parser};
  std::uint64_t body_bytes = 0;
  bool asked = false;  // Spillway answered the client's Expect: 100-continue
  while (!request_complete_) {
    if (call.closed || down_.expired()) {
      co_return send_result::upstream_write_failed;  // the backend ended the stream, maybe with an answer
    }
    if (call.out.size() - call.out_off >= h2_body_high_water) {
      if (!call.sent.ready()) {  // the backend's window is full: wait for it to take some
        co_await call.sent.sleep();
      }
      continue;
    }
    if (st_->dbegin == st_->dend) {
      if (t.expect_continue && !asked && body_bytes == 0) {
        asked = true;
        static constexpr std::string_view cont = "HTTP/1.1 100 Continue\r\n\r\n";
        auto [ec, n] = co_await down_.stream().write_all(asio::buffer(cont));
        if (ec) {
          co_return send_result::client_gone;
        }
      }
      if (co_await read_downstream() == 0) {
        co_return send_result::client_gone;
      }
      continue;
    }
    const auto before = call.out.size();
    const auto r = st_->request_parser.feed(st_->dbuf.data() + st_->dbegin, st_->dend - st_->dbegin);
    if (r.what == http::parser::event::error) {
      co_return st_->request_parser.error_too_large() ? send_result::trailers_too_large : send_result::malformed;
    }
    request_complete_ = r.what == http::parser::event::message_complete;
    if (!req.chunked) {
      call.out.append(st_->dbuf.data() + st_->dbegin, r.consumed);
    }
    st_->dbegin += r.consumed;
    st_->rec.bytes_in += r.consumed;
    const auto added = call.out.size() - before;
    body_bytes += added;
    if (t.max_body > 0 && body_bytes > t.max_body) {
      co_return send_result::too_large;
    }
    body_started_ = body_started_ || r.consumed > 0;
    if (replay_ok_ && added > 0) {
      if (st_->replay.size() + added > max_replay_body) {
        replay_ok_ = false;
        st_->replay.clear();
      } else {
        st_->replay.append(call.out, before, added);
      }
    }
    if (request_complete_) {
      http::split_trailer_fields(trailer_text, call.out_trailers);
      h2_trailers_ = call.out_trailers;  // for a retry
      call.out_eof = true;
    }
    if (call.conn != nullptr && (added > 0 || request_complete_)) {
      call.conn->resume(call);
    }
  }
  co_return send_result::ok;
}

awaitable<http_session::next> http_session::stream_h2_response(upstream_attempt& attempt, h2_call& call,
                                                               const try_context& t) {
  const auto& req = st_->request_parser.head();
  const bool http10 = st_->facts.http10;
  phase_ = phase::streaming;
  down_.set_deadline(t.request_deadline);
  st_->rec.status = call.status;
  // The head as HTTP/1: a length when the backend gave one or the answer is whole already, else
  // chunked (HTTP/1.1) or delimited by the close (HTTP/1.0).
  http::message_head resp;
  resp.status = call.status;
  resp.reason = http::reason_phrase(call.status);
  resp.headers.reserve(call.headers.size() + 1);
  for (const auto& [name, value] : call.headers) {
    resp.headers.push_back({name, value});
  }
  const bool bodiless = t.head_request || call.status == 204 || call.status == 304;
  bool chunked = false;
  bool until_close = false;
  char length[24];
  if (!bodiless && call.header("content-length").empty()) {
    if (call.whole_with_head() || (call.ended && call.error == 0 && call.trailers.empty())) {
      const auto end = std::to_chars(length, length + sizeof length, call.body.size()).ptr;
      resp.headers.push_back({"content-length", std::string_view(length, end - length)});
    } else if (!http10) {
      chunked = true;
      resp.headers.push_back({"transfer-encoding", "chunked"});
    } else {
      until_close = true;
    }
  }
  const bool close_client = !req.keep_alive || draining_ || !request_complete_ || until_close;
  build_downstream_head(resp, close_client, http10, st_->scratch, st_->out);
  bool ok = true;
  {
    auto [ec, n] = co_await down_.stream().write_all(asio::buffer(st_->out));
    st_->rec.bytes_out += n;
    ok = !ec;
  }
  // The body as the client takes it: the backend's window opens only as much as went out.
  std::string data;
  while (ok && !down_.expired()) {
    if (!call.body.empty()) {
      data.clear();
      std::swap(data, call.body);  // nghttp2 appends to call.body while the write is under way
      char size_line[24];
      std::size_t size_len = 0;
      if (chunked) {
        auto* end = std::to_chars(size_line, size_line + 20, data.size(), 16).ptr;
        *end++ = '\r';
        *end++ = '\n';
        size_len = static_cast<std::size_t>(end - size_line);
      }
      std::array<asio::const_buffer, 3> bufs{asio::buffer(size_line, size_len), asio::buffer(data),
                                             asio::buffer("\r\n", chunked ? 2 : 0)};
      auto [ec, n] = co_await down_.stream().write_all(bufs);
      st_->rec.bytes_out += n;
      ok = !ec;
      if (call.conn != nullptr) {
        call.conn->consume(call, data.size());
      }
      continue;
    }
    if (call.ended) {
      break;
    }
    if (!call.wake.ready()) {
      co_await call.wake.sleep();
    }
  }
  if (!ok || down_.expired() || call.error != 0 || !call.ended) {
    // Cut off (by the client, the deadline or the backend) after part of it went out: close.
    attempt.h2_response_ended(call, true);
    co_return next::close;
  }
  attempt.h2_response_ended(call, false);
  if (chunked) {
    // The last chunk, with the trailers for a client that said it takes them (RFC 9110 6.5.1).
    auto& out = st_->out;
    out.assign("0\r\n");
    if (http::has_token(req.find("te"), "trailers")) {
      for (const auto& [name, value] : call.trailers) {
        out.append(name).append(": ").append(value).append("\r\n");
      }
    }
    out.append("\r\n");
    auto [ec, n] = co_await down_.stream().write_all(asio::buffer(out));
    st_->rec.bytes_out += n;
    if (ec) {
      co_return next::close;
    }
  }
  co_return close_client ? next::close : next::keep_alive;
}

awaitable<http_session::next> http_session::tunnel(upstream_connection& conn, const upstream_attempt& attempt) {
  const auto& up = attempt.cfg();
  stats::gauge_hold in_tunnel(attempt.cluster().stats->active_tunnels);
  phase_ = phase::streaming;
  // From here the request deadline no longer applies: the tunnel lives while bytes move, and the
  // idle timeout closes it.
  const auto idle = std::chrono::duration_cast<clock::duration>(up.timeout.idle);
  down_.set_deadline(clock::now() + idle);
  build_downstream_head(st_->response_parser.head(), false, st_->facts.http10, st_->scratch, st_->out);
  st_->rec.status = 101;
  {
    // The 101 and whatever the backend sent right behind it (the first frames, already).
    std::array<asio::const_buffer, 2> bufs{asio::buffer(st_->out),
                                           asio::buffer(st_->ubuf.data() + st_->ubegin, st_->uend - st_->ubegin)};
    auto [ec, n] = co_await down_.stream().write_all(bufs);
    st_->rec.bytes_out += n;
    if (ec) {
      co_return next::close;
    }
    st_->ubegin = st_->uend = 0;
  }
  if (st_->dbegin < st_->dend) {
    // Bytes the client sent after its request, before the 101 reached it.
    auto [ec, n] =
        co_await conn.stream.write_all(asio::buffer(st_->dbuf.data() + st_->dbegin, st_->dend - st_->dbegin));
    st_->dbegin = st_->dend = 0;
    if (ec) {
      co_return next::close;
    }
  }
  co_await (relay(down_.stream(), conn.stream, down_.deadline(), idle, &st_->rec.bytes_in) &&
            relay(conn.stream, down_.stream(), down_.deadline(), idle, &st_->rec.bytes_out));
  co_return next::close;
}

}  // namespace spillway::proxy
