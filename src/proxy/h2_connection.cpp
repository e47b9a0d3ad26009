#include "proxy/h2_connection.h"

#include "common/completion.h"
#include "common/log.h"
#include "proxy/grpc.h"
#include "proxy/http1_rewrite.h"
#include "proxy/http1_state.h"
#include "proxy/request_record.h"
#include "proxy/retry_policy.h"
#include "proxy/router.h"
#include "proxy/upstream_attempt.h"

#include <fmt/format.h>
#include <nghttp2/nghttp2.h>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/deferred.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/write.hpp>

#include <algorithm>
#include <charconv>
#include <cstring>

namespace spillway::proxy {

namespace asio = boost::asio;
using asio::awaitable;

namespace {

// Response bytes waiting for the client per stream before the backend is read again.
constexpr std::size_t out_high_water = 64 * 1024;
// Request bodies up to this size are kept for a retry on another host (as on HTTP/1).
constexpr std::size_t max_replay_body = 64 * 1024;

// Control frames: a burst, refilled at a rate; spending beyond it ends the connection (PING and
// SETTINGS floods cost a reply each, PRIORITY and empty DATA frames cost work and nothing else).
constexpr double control_burst = 200;
constexpr double control_per_second = 20;
// Rapid reset (CVE-2023-44487): a connection on which the client reset at least this many streams
// before their answers, and at least half of all its streams, is ended.
constexpr std::uint64_t rapid_reset_min = 100;
// How long a connection that said GOAWAY waits for the client to read it before closing.
constexpr std::chrono::seconds closing_grace{1};
// A client that leaves once its whole request reached an HTTP/1 backend: the answer is still read
// (and dropped), so that the backend connection goes back to the pool instead of being closed,
// when it ends within this time and this many bytes (else the connection is closed). A client
// that cancels (a browser navigating away, an RPC deadline, a load generator stopping) would
// otherwise cost a new connection per cancelled request, and a burst of new connections later.
constexpr std::chrono::seconds salvage_time{1};
constexpr std::size_t salvage_bytes = 256 * 1024;

}  // namespace

// --- a stream ---

struct h2_stream final : deadline_listener, std::enable_shared_from_this<h2_stream> {
  h2_stream(h2_connection& c, std::int32_t stream_id)
      : conn(c), id(stream_id), watch(c.stream_deadlines_), wake(c.wakeups_) {}

  // The request deadline passed: the try's connection is closed, and the coroutine answers 504,
  // moves on to another host, or (once the answer began) resets the stream.
  void deadline_passed() override {
    if (attempt != nullptr && attempt->conn()) {
      attempt->conn()->stream.close();
    }
    abandon_call();
    wake.notify();
  }

  // The client closed the stream, or the whole connection ended: `salvage` (a client that left)
  // lets an HTTP/1 exchange whose request went out whole finish within salvage_time, to keep its
  // connection (h2_connection::salvage()); otherwise, or mid-request, the backend connection is
  // closed. A stream to an HTTP/2 backend is reset either way (its connection lives on).
  void client_left(bool salvage) {
    closed = true;
    if (attempt != nullptr && attempt->conn()) {
      if (salvage && request_complete) {
        watch.set_deadline(std::min(watch.deadline(), std::chrono::steady_clock::now() + salvage_time));
      } else {
        attempt->conn()->stream.close();
      }
    }
    abandon_call();
    wake.notify();
  }

  // Resets the stream to an HTTP/2 backend, if any: the request gave up on it.
  void abandon_call() {
    if (call) {
      if (call->conn != nullptr) {
        call->conn->cancel(*call);
      }
      call->wake.notify();
      call->sent.notify();
    }
  }

  // The request can go to a backend (again): nothing of its body was sent, or all of it is kept.
  bool can_resend() const { return !body_started || (request_complete && replay_ok); }

  // Copies `n` body bytes of the answer into `out` (from the response parser's chunked sink too).
  static void append_out(void* ctx, const char* data, std::size_t n) {
    auto* s = static_cast<h2_stream*>(ctx);
    s->out.append(data, n);
    s->out_bytes += n;
  }

  h2_connection& conn;
  std::int32_t id;
  std::size_t slot = 0;  // in conn.streams_

  // The request head as it arrives: field bytes in `raw` (the pseudo-header fields' values too, at
  // `pseudo`), cookies joined (RFC 9113 8.2.3); room for a usual head is made at once (a string
  // and a vector growing field by field cost 8 allocations a stream).
  static constexpr std::size_t usual_head_bytes = 256;
  static constexpr std::size_t usual_head_fields = 16;
  std::string raw;
  struct field_span {
    std::uint32_t name_off, name_len, value_off, value_len;
  };
  std::vector<field_span> spans;
  enum pseudo_field : std::uint8_t { pseudo_method, pseudo_scheme, pseudo_authority, pseudo_path, pseudo_fields };
  std::array<std::pair<std::uint32_t, std::uint32_t>, pseudo_fields> pseudo{};  // offset and length in raw
  std::string_view method, scheme, authority, path;  // views of `pseudo` once the head is whole
  std::string cookie;
  std::size_t head_bytes = 0;
  std::size_t field_count = 0;
  bool too_large = false;
  bool malformed = false;   // a field value Spillway refuses (answered 400)
  http::message_head head;  // built once the head is whole (views into the strings above)

  // The request body: bytes received and not yet written upstream (`body`), and the ones being
  // written (`sending`), so that bytes arriving during a write never move the buffer it uses.
  std::string body;
  std::string sending;
  bool end_stream = false;  // the client's side ended
  bool body_started = false;
  bool replay_ok = true;
  bool request_complete = false;  // the whole request went upstream

  // The answer's body, pulled by nghttp2 from out[out_off, size).
  std::string out;
  std::size_t out_off = 0;
  std::uint64_t out_bytes = 0;
  bool out_eof = false;
  std::vector<std::pair<std::string, std::string>> trailers;  // sent after the body (gRPC status)
  std::string trailer_text;                                   // an HTTP/1 backend's chunked trailer section, as checked
  std::vector<std::pair<std::string, std::string>> request_trailers;  // the client's, for the backend
  std::size_t trailer_bytes = 0;
  std::string last_chunk;  // the chunked request body's end, with the trailers
  bool responded = false;  // the response head was submitted
  bool discard = false;    // the request body is not read any more: acknowledged as it arrives

  bool closed = false;           // nghttp2 closed the stream (done, or reset)
  bool reset_by_client = false;  // the client sent RST_STREAM
  std::chrono::steady_clock::time_point first_byte;

  watchdog watch;
  wakeup wake;
  upstream_attempt* attempt = nullptr;  // while the request forwards
  std::shared_ptr<h2_call> call;        // the current try's stream to an HTTP/2 backend
  std::unique_ptr<request_state> st;    // while serve() runs
  std::unique_ptr<http1_state> wire;    // from an HTTP/1 backend's first try until serve() ends
};

// --- nghttp2 callbacks ---

struct h2_connection::callbacks {
  static h2_connection& self(void* user_data) { return *static_cast<h2_connection*>(user_data); }
  static h2_stream* stream(nghttp2_session* session, std::int32_t id) {
    return static_cast<h2_stream*>(nghttp2_session_get_stream_user_data(session, id));
  }

  static int on_begin_headers(nghttp2_session* session, const nghttp2_frame* frame, void* user_data) {
    auto& c = self(user_data);
    if (frame->hd.type != NGHTTP2_HEADERS) {
      return 0;
    }
    c.in_header_block_ = true;
    const auto now = h2_connection::clock::now();
    c.header_deadline_ = now + c.header_timeout_;
    c.update_deadline();
    if (frame->headers.cat != NGHTTP2_HCAT_REQUEST) {
      return 0;  // trailers
    }
    auto s = std::make_shared<h2_stream>(c, frame->hd.stream_id);
    s->raw.reserve(h2_stream::usual_head_bytes);
    s->spans.reserve(h2_stream::usual_head_fields);
    s->first_byte = now;
    nghttp2_session_set_stream_user_data(session, frame->hd.stream_id, s.get());
    s->slot = c.streams_.size();
    c.streams_.push_back(std::move(s));
    ++c.streams_total_;
    if (auto* t = c.down_.traffic()) {
      t->h2_streams.add();
    }
    return 0;
  }

  static int on_header(nghttp2_session* session, const nghttp2_frame* frame, const uint8_t* name_p,
                       std::size_t name_len, const uint8_t* value_p, std::size_t value_len, uint8_t /*flags*/,
                       void* user_data) {
    auto& c = self(user_data);
    auto* s = stream(session, frame->hd.stream_id);
    if (s == nullptr) {
      return 0;
    }
    if (frame->headers.cat != NGHTTP2_HCAT_REQUEST) {
      return on_trailer(c, *s, name_p, name_len, value_p, value_len);
    }
    // Held to the listener's limits as an HTTP/1 head would be (name, ": ", value, CRLF): an HPACK
    // bomb (small frames that decode to a huge list) stops here, before anything is kept.
    s->head_bytes += name_len + value_len + 4;
    if (s->too_large || s->head_bytes > c.max_request_headers_ || ++s->field_count > c.max_request_fields_ + 4) {
      s->too_large = true;
      return 0;
    }
    const std::string_view name(reinterpret_cast<const char*>(name_p), name_len);
    const std::string_view value(reinterpret_cast<const char*>(value_p), value_len);
    if (!strict_value(value, name == ":path")) {
      // nghttp2 refuses only NUL, CR and LF in values: a control character, or whitespace at either
      // end (RFC 9113 8.2.1), would reach an HTTP/1 backend as a head its parser may read otherwise.
      s->malformed = true;
      return 0;
    }
    if (!name.empty() && name[0] == ':') {
      // nghttp2 checked the pseudo-header fields: known names, once each, before the others.
      const auto k = name == ":method"      ? h2_stream::pseudo_method
                     : name == ":scheme"    ? h2_stream::pseudo_scheme
                     : name == ":authority" ? h2_stream::pseudo_authority
                     : name == ":path"      ? h2_stream::pseudo_path
                                            : h2_stream::pseudo_fields;
      if (k != h2_stream::pseudo_fields) {
        s->pseudo[k] = {static_cast<std::uint32_t>(s->raw.size()), static_cast<std::uint32_t>(value_len)};
        s->raw.append(value);
      }
      return 0;
    }
    if (name == "cookie") {
      if (!s->cookie.empty()) {
        s->cookie.append("; ");
      }
      s->cookie.append(value);
      return 0;
    }
    const auto at = static_cast<std::uint32_t>(s->raw.size());
    s->raw.append(name);
    s->raw.append(value);
    s->spans.push_back({at, static_cast<std::uint32_t>(name_len), static_cast<std::uint32_t>(at + name_len),
                        static_cast<std::uint32_t>(value_len)});
    return 0;
  }

  // A request trailer field: held to the head's limits and strictness, and to what a trailer may
  // carry (no framing, routing or authorisation: http::forbidden_trailer), as HTTP/1's chunked
  // trailers are; kept for the backend. One that breaks a rule resets the stream (its request is
  // under way already, and never completes at the backend).
  static int on_trailer(h2_connection& c, h2_stream& s, const uint8_t* name_p, std::size_t name_len,
                        const uint8_t* value_p, std::size_t value_len) {
    const std::string_view name(reinterpret_cast<const char*>(name_p), name_len);
    const std::string_view value(reinterpret_cast<const char*>(value_p), value_len);
    s.trailer_bytes += name_len + value_len + 4;
    const bool too_large =
        s.trailer_bytes > c.max_request_headers_ || s.request_trailers.size() >= c.max_request_fields_;
    if (too_large || !strict_value(value, false) || http::forbidden_trailer(name)) {
      c.count_refusal(static_cast<std::size_t>(too_large ? stats::h2_refusal::headers_too_large
                                                         : stats::h2_refusal::protocol_error));
      return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;  // RST_STREAM
    }
    s.request_trailers.emplace_back(name, value);
    return 0;
  }

  // A field value as strict as an HTTP/1 head's: visible ASCII, obs-text, and SP or HTAB inside,
  // never at either end; a :path only visible ASCII.
  static bool strict_value(std::string_view v, bool path) {
    if (!v.empty() && (v.front() == ' ' || v.front() == '\t' || v.back() == ' ' || v.back() == '\t')) {
      return false;
    }
    for (unsigned char ch : v) {
      const bool visible = ch > 0x20 && ch < 0x7f;
      if (!(visible || (!path && (ch == ' ' || ch == '\t' || ch >= 0x80)))) {
        return false;
      }
    }
    return true;
  }

  static int on_frame_recv(nghttp2_session* session, const nghttp2_frame* frame, void* user_data) {
    auto& c = self(user_data);
    auto* s = frame->hd.stream_id != 0 ? stream(session, frame->hd.stream_id) : nullptr;
    const bool end = (frame->hd.flags & NGHTTP2_FLAG_END_STREAM) != 0;
    switch (frame->hd.type) {
      case NGHTTP2_HEADERS:
        c.in_header_block_ = false;
        c.header_deadline_ = h2_connection::clock::time_point::max();
        if (s != nullptr && frame->headers.cat == NGHTTP2_HCAT_REQUEST) {
          s->end_stream = end;
          c.start_stream(frame->hd.stream_id);
        } else if (s != nullptr && end) {
          s->end_stream = true;  // trailers end the request
          s->wake.notify();
        }
        c.update_deadline();
        break;
      case NGHTTP2_DATA:
        if (frame->hd.length == 0 && !end) {
          if (++c.empty_data_run_ > 1 && !c.spend_control_budget()) {
            return 0;
          }
        } else {
          c.empty_data_run_ = 0;
        }
        if (s != nullptr && end) {
          s->end_stream = true;
          s->wake.notify();
        }
        break;
      case NGHTTP2_RST_STREAM:
        if (s != nullptr) {
          s->reset_by_client = true;
          if (!s->out_eof) {
            ++c.premature_resets_;
            if (c.premature_resets_ >= rapid_reset_min && c.premature_resets_ * 2 >= c.streams_total_) {
              log::debug("h2 client {} reset {} of {} streams: ending the connection", c.down_.client_ip(),
                         c.premature_resets_, c.streams_total_);
              c.refuse_connection(NGHTTP2_ENHANCE_YOUR_CALM, static_cast<std::size_t>(stats::h2_refusal::rapid_reset));
            }
          }
        }
        break;
      case NGHTTP2_SETTINGS:
        if ((frame->hd.flags & NGHTTP2_FLAG_ACK) == 0) {
          if (c.got_settings_) {
            c.spend_control_budget();
          }
          c.got_settings_ = true;
          c.update_deadline();
        }
        break;
      case NGHTTP2_PING:
        if ((frame->hd.flags & NGHTTP2_FLAG_ACK) == 0) {
          c.spend_control_budget();
        }
        break;
      case NGHTTP2_PRIORITY:
        c.spend_control_budget();
        break;
      default:
        break;
    }
    return 0;
  }

  static int on_data_chunk_recv(nghttp2_session* session, uint8_t /*flags*/, std::int32_t stream_id,
                                const uint8_t* data, std::size_t len, void* /*user_data*/) {
    auto* s = stream(session, stream_id);
    if (s == nullptr || s->discard) {
      nghttp2_session_consume(session, stream_id, len);  // nobody reads it: let the client go on
      return 0;
    }
    s->body.append(reinterpret_cast<const char*>(data), len);
    s->wake.notify();
    return 0;
  }

  static int on_stream_close(nghttp2_session* session, std::int32_t stream_id, uint32_t /*error_code*/,
                             void* user_data) {
    auto& c = self(user_data);
    if (auto* s = stream(session, stream_id)) {
      s->client_left(true);
      nghttp2_session_set_stream_user_data(session, stream_id, nullptr);
      // Out of the list: the last one takes its slot.
      const auto slot = s->slot;
      if (slot + 1 != c.streams_.size()) {
        c.streams_[slot] = std::move(c.streams_.back());
        c.streams_[slot]->slot = slot;
      }
      c.streams_.pop_back();
    }
    if (c.streams_.empty()) {
      c.idle_since_ = h2_connection::clock::now();
    }
    c.update_deadline();
    return 0;
  }

  static int on_frame_send(nghttp2_session* session, const nghttp2_frame* frame, void* user_data) {
    auto& c = self(user_data);
    if (frame->hd.type == NGHTTP2_RST_STREAM && frame->rst_stream.error_code == NGHTTP2_REFUSED_STREAM) {
      c.count_refusal(static_cast<std::size_t>(stats::h2_refusal::refused_stream));
    } else if (frame->hd.type == NGHTTP2_GOAWAY && frame->goaway.error_code != NGHTTP2_NO_ERROR && !c.terminating_) {
      // nghttp2 ended the connection for a protocol error or one of its own limits.
      c.terminating_ = true;
      c.count_refusal(static_cast<std::size_t>(frame->goaway.error_code == NGHTTP2_ENHANCE_YOUR_CALM
                                                   ? stats::h2_refusal::flood
                                                   : stats::h2_refusal::protocol_error));
      log::debug("h2 connection from {} ended: {}", c.down_.client_ip(),
                 nghttp2_http2_strerror(frame->goaway.error_code));
    } else if ((frame->hd.type == NGHTTP2_HEADERS || frame->hd.type == NGHTTP2_DATA) &&
               (frame->hd.flags & NGHTTP2_FLAG_END_STREAM) != 0) {
      // The answer is whole while the client still sends its request: tell it to stop (RFC 9113
      // section 8.1).
      if (auto* s = stream(session, frame->hd.stream_id); s != nullptr && !s->end_stream) {
        nghttp2_submit_rst_stream(session, NGHTTP2_FLAG_NONE, frame->hd.stream_id, NGHTTP2_NO_ERROR);
      }
    }
    return 0;
  }

  static int on_invalid_frame_recv(nghttp2_session*, const nghttp2_frame*, int error, void* user_data) {
    auto& c = self(user_data);
    c.count_refusal(static_cast<std::size_t>(stats::h2_refusal::protocol_error));
    log::debug("h2 stream error from {}: {}", c.down_.client_ip(), nghttp2_strerror(error));
    return 0;
  }

  // The response body, pulled by nghttp2 as the flow-control windows allow.
  static ssize_t read_body(nghttp2_session* session, std::int32_t stream_id, uint8_t* buf, std::size_t length,
                           uint32_t* data_flags, nghttp2_data_source* source, void*) {
    auto* s = static_cast<h2_stream*>(source->ptr);
    const auto n = pull_body(s->out, s->out_off, s->out_eof, buf, length, data_flags);
    end_with_trailers(session, stream_id, s->trailers, data_flags);  // the backend's (gRPC's status)
    if (n > 0) {
      s->wake.notify();  // room for more of the answer
      if (s->call) {
        s->call->wake.notify();  // the same, to the loop relaying an HTTP/2 backend's answer
      }
    }
    return n;
  }
};

// --- the connection ---

h2_connection::h2_connection(downstream_connection& down)
    : down_(down),
      stream_deadlines_(down.owner().io()),
      wakeups_(wakeups::of(down.owner().io())),
      write_wake_(wakeups_),
      writer_done_(wakeups_) {
  nghttp2_session_callbacks* cb = nullptr;
  nghttp2_session_callbacks_new(&cb);
  nghttp2_session_callbacks_set_on_begin_headers_callback(cb, callbacks::on_begin_headers);
  nghttp2_session_callbacks_set_on_header_callback(cb, callbacks::on_header);
  nghttp2_session_callbacks_set_on_frame_recv_callback(cb, callbacks::on_frame_recv);
  nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cb, callbacks::on_data_chunk_recv);
  nghttp2_session_callbacks_set_on_stream_close_callback(cb, callbacks::on_stream_close);
  nghttp2_session_callbacks_set_on_frame_send_callback(cb, callbacks::on_frame_send);
  nghttp2_session_callbacks_set_on_invalid_frame_recv_callback(cb, callbacks::on_invalid_frame_recv);
  nghttp2_option* opt = nullptr;
  nghttp2_option_new(&opt);
  // Request bodies are acknowledged only once written upstream (see send_request).
  nghttp2_option_set_no_auto_window_update(opt, 1);
  nghttp2_option_set_max_settings(opt, 32);
  nghttp2_option_set_no_closed_streams(opt, 1);  // no RFC 7540 priority tree to keep them for
  nghttp2_option_set_max_outbound_ack(opt, 1000);
  nghttp2_option_set_max_continuations(opt, 8);
  nghttp2_option_set_stream_reset_rate_limit(opt, 1000, 33);
  nghttp2_session_server_new2(&ng_, cb, this, opt);
  nghttp2_option_del(opt);
  nghttp2_session_callbacks_del(cb);
  started_ = idle_since_ = budget_at_ = clock::now();
  control_budget_ = control_burst;
}

h2_connection::~h2_connection() {
  for (auto& s : streams_) {
    nghttp2_session_set_stream_user_data(ng_, s->id, nullptr);
  }
  nghttp2_session_del(ng_);
}

void h2_connection::count_refusal(std::size_t why) {
  if (auto* t = down_.traffic()) {
    t->h2_refusals[why].add();
  }
}

bool h2_connection::spend_control_budget() {
  const auto now = clock::now();
  control_budget_ = std::min(
      control_burst, control_budget_ + std::chrono::duration<double>(now - budget_at_).count() * control_per_second);
  budget_at_ = now;
  if (--control_budget_ >= 0) {
    return true;
  }
  if (!terminating_) {
    log::debug("h2 client {} sent control frames beyond their budget: ending the connection", down_.client_ip());
    refuse_connection(NGHTTP2_ENHANCE_YOUR_CALM, static_cast<std::size_t>(stats::h2_refusal::flood));
  }
  return false;
}

void h2_connection::refuse_connection(std::uint32_t code, std::size_t why) {
  if (terminating_) {
    return;
  }
  terminating_ = true;
  count_refusal(why);
  nghttp2_session_terminate_session(ng_, code);
  update_deadline();
  wake_writer();
}

awaitable<void> h2_connection::run(std::string initial, std::shared_ptr<void> keep) {
  keep_ = keep;
  stream_deadlines_.set_owner(keep);
  if (auto* t = down_.traffic()) {
    t->h2_connections.add();
  }
  {
    const auto* lv = down_.owner().view()->snap->find_listener(down_.listen());
    if (lv != nullptr) {
      header_timeout_ = lv->header_timeout;
      idle_timeout_ = lv->idle_timeout;
      max_request_headers_ = lv->cfg->max_request_headers;
      max_request_fields_ = lv->cfg->max_request_header_fields;
    }
    draining_ = draining_ || down_.owner().draining() || lv == nullptr;
  }
  const nghttp2_settings_entry settings[] = {
      {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, max_concurrent_streams},
      {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, static_cast<std::uint32_t>(stream_window)},
      {NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, static_cast<std::uint32_t>(max_request_headers_)},
      {NGHTTP2_SETTINGS_ENABLE_PUSH, 0},
  };
  nghttp2_submit_settings(ng_, NGHTTP2_FLAG_NONE, settings, std::size(settings));
  nghttp2_session_set_local_window_size(ng_, NGHTTP2_FLAG_NONE, 0, connection_window);
  if (draining_) {
    drain();
  }
  writer_running_ = true;
  asio::co_spawn(down_.owner().io(), writer(keep), asio::detached);
  update_deadline();
  bool ok = initial.empty() || receive(initial.data(), initial.size());
  bool client_gone = false;
  while (ok && !closed_) {
    auto [ec, n] = co_await down_.stream().async_read_some(asio::buffer(rbuf_), nothrow_deferred);
    if (ec || closed_) {
      client_gone = true;  // the client left, or a deadline or a drain closed the connection
      break;
    }
    ok = receive(rbuf_.data(), n);
    if (!nghttp2_session_want_read(ng_)) {
      break;  // GOAWAY went both ways or was sent for an error: what is left is to write it
    }
  }
  if (!client_gone && !closed_ && writer_running_) {
    // Let the writer flush the last frames (a GOAWAY, the last answers); bounded by the deadline.
    if (!terminating_) {
      terminating_ = true;
      update_deadline();
    }
    wake_writer();
    if (!writer_done_.ready()) {
      co_await writer_done_.sleep();
    }
  }
  shut();
  keep_.reset();
  stream_deadlines_.close();  // streams still running keep their deadlines; then the timer lets go
}

bool h2_connection::receive(const char* data, std::size_t n) {
  const auto rv = nghttp2_session_mem_recv(ng_, reinterpret_cast<const uint8_t*>(data), n);
  if (rv < 0) {
    // The preface was wrong, or a flood nghttp2 counts itself; nothing more is read.
    log::debug("h2 connection from {} failed: {}", down_.client_ip(), nghttp2_strerror(static_cast<int>(rv)));
    count_refusal(static_cast<std::size_t>(rv == NGHTTP2_ERR_FLOODED ? stats::h2_refusal::flood
                                                                     : stats::h2_refusal::protocol_error));
    if (!terminating_) {
      terminating_ = true;
      nghttp2_session_terminate_session(ng_,
                                        rv == NGHTTP2_ERR_FLOODED ? NGHTTP2_ENHANCE_YOUR_CALM : NGHTTP2_PROTOCOL_ERROR);
      update_deadline();
    }
    start_streams();
    wake_writer();
    return false;
  }
  start_streams();
  wake_writer();
  return true;
}

void h2_connection::wake_writer() { write_wake_.notify(); }

awaitable<void> h2_connection::writer(std::shared_ptr<void> keep) {
  const bool ok = co_await write_session(ng_, down_.stream(), wbuf_, write_wake_, closed_);
  writer_running_ = false;
  writer_done_.notify();
  if (!ok || !closed_) {
    shut();  // a write failed, or the session is done: wakes the reader from its read
  }
  (void)keep;
}

void h2_connection::shut(bool salvage) {
  if (closed_) {
    return;
  }
  closed_ = true;
  down_.close();
  for (auto& s : streams_) {
    s->client_left(salvage);
  }
  write_wake_.notify();
}

void h2_connection::drain() {
  draining_ = true;
  if (closed_ || terminating_ || !keep_) {
    return;  // run() drains once it starts
  }
  // Streams up to the last one begun finish; nghttp2 refuses newer ones. The connection ends when
  // the last stream does (nghttp2 then wants neither to read nor to write).
  nghttp2_submit_goaway(ng_, NGHTTP2_FLAG_NONE, nghttp2_session_get_last_proc_stream_id(ng_), NGHTTP2_NO_ERROR, nullptr,
                        0);
  if (streams_.empty()) {
    terminating_ = true;
  }
  update_deadline();
  wake_writer();
}

void h2_connection::force_close() { shut(false); }

h2_connection::clock::time_point h2_connection::due() const {
  if (terminating_) {
    return clock::time_point::max();  // set once, in update_deadline()
  }
  if (in_header_block_) {
    return header_deadline_;
  }
  if (!got_settings_) {
    return started_ + header_timeout_;  // the preface and the client's SETTINGS
  }
  if (streams_.empty()) {
    return idle_since_ + idle_timeout_;
  }
  return clock::time_point::max();  // each stream has deadlines of its own
}

void h2_connection::update_deadline() {
  if (closed_) {
    return;
  }
  if (terminating_) {
    if (down_.deadline() == clock::time_point::max() || down_.deadline() > clock::now() + closing_grace) {
      down_.set_deadline(clock::now() + closing_grace);
    }
    return;
  }
  down_.set_deadline(due());
}

void h2_connection::deadline_passed() {
  down_.clear_expired();
  if (closed_) {
    return;
  }
  if (terminating_) {
    shut();  // the client did not take the GOAWAY in time
    return;
  }
  const auto at = due();
  if (clock::now() < at) {
    down_.set_deadline(at);
    return;
  }
  // Idle, or a head or preface that did not come in time: GOAWAY, then close.
  terminating_ = true;
  nghttp2_session_terminate_session(ng_, NGHTTP2_NO_ERROR);
  update_deadline();
  wake_writer();
}

// --- one stream ---

void h2_connection::start_stream(std::int32_t id) {
  auto* found = callbacks::stream(ng_, id);
  if (found == nullptr) {
    return;
  }
  auto& s = *found;
  // The head is whole (`raw` changes no more): views for the router and the HTTP/1 head to the
  // backend.
  const auto pseudo = [&s](h2_stream::pseudo_field k) {
    return std::string_view(s.raw.data() + s.pseudo[k].first, s.pseudo[k].second);
  };
  s.method = pseudo(h2_stream::pseudo_method);
  s.scheme = pseudo(h2_stream::pseudo_scheme);
  s.authority = pseudo(h2_stream::pseudo_authority);
  s.path = pseudo(h2_stream::pseudo_path);
  auto& h = s.head;
  h.method = s.method;
  h.url = s.path;
  h.version_major = 1;
  h.version_minor = 1;
  h.headers.clear();
  h.headers.reserve(s.spans.size() + 3);
  bool has_host = false;
  for (const auto& f : s.spans) {
    const std::string_view name(s.raw.data() + f.name_off, f.name_len);
    const std::string_view value(s.raw.data() + f.value_off, f.value_len);
    has_host = has_host || name == "host";
    h.headers.push_back({name, value});
  }
  if (!s.cookie.empty()) {
    h.headers.push_back({"cookie", s.cookie});
  }
  if (!s.authority.empty() && !has_host) {
    h.headers.push_back({"host", s.authority});
  }
  if (auto cl = h.find("content-length"); !cl.empty()) {
    // nghttp2 checked that it is a number and that the DATA frames add up to it.
    h.has_content_length = true;
    std::from_chars(cl.data(), cl.data() + cl.size(), h.content_length);
  } else if (!s.end_stream) {
    // A body of unknown length goes to an HTTP/1 backend chunked.
    h.chunked = true;
    h.headers.push_back({"transfer-encoding", "chunked"});
  }
  // Not spawned here: co_spawn would run serve() at once, inside nghttp2's callback, before the
  // rest of the bytes read (a RST_STREAM right behind the HEADERS, the rapid-reset pattern) were
  // seen. It starts once the whole read is processed (start_streams()), and a stream reset by then
  // costs no backend anything (serve() returns at once).
  starting_.push_back(streams_[s.slot]);
}

void h2_connection::start_streams() {
  // Spawned right after the read, each runs until it first waits (its request written to a
  // backend): the stream's fields, written moments ago by nghttp2's callbacks, are still in cache,
  // and no handler is posted per stream. (Posting each cost a scheduler round, and at 640 streams
  // in flight the stream had left the cache by the time it ran.) serve() never starts streams, so
  // the list does not grow while it is walked.
  //
  // Each stream is a coroutine thread of its own, as co_spawn(..., detached) would make it, but
  // with serve() as its bottom frame: co_spawn's entry coroutine (a 464-byte frame, a dispatch
  // with its own frame, and two work guards on the executor, per stream) is not needed here.
  const asio::any_io_executor ex = down_.owner().io().get_executor();
  for (auto& sp : starting_) {
    asio::detail::awaitable_thread<asio::any_io_executor>(serve(std::move(sp), keep_), ex, {}, {}).launch();
  }
  starting_.clear();
}

h2_connection::stream_entry h2_connection::serve(std::shared_ptr<h2_stream> sp, std::shared_ptr<void> keep) {
  auto& s = *sp;
  if (s.closed || closed_) {
    co_return;  // reset before it began (a rapid reset costs no backend anything)
  }
  auto& w = down_.owner();
  s.st = w.request_states().take();
  s.st->reset();
  s.st->facts.client_ip = down_.client_ip();
  s.st->facts.tls = down_.tls();
  s.st->rec.started = true;
  s.watch.start(sp, &s);
  s.st->rec.view = w.view();
  // Checked and routed without a coroutine of its own (a frame per stream saved); a route with a
  // rate limit waits for its verdict here. Nothing escapes this bottom frame of the stream's
  // coroutine (it would escape the worker's event loop): a failure resets the stream.
  try {
    if (const auto* route = admit(s)) {
      bool limited = false;
      if (route->rate_limit >= 0) {
        auto& view = *s.st->rec.view;
        auto r = co_await check_rate_limit(*view.snap, route->rate_limit, w, down_.client_address(), &s.head,
                                           route->route_key, s.st->rate_key);
        if (r.limited) {
          reply_local(s, error_kind::rate_limited, {}, answer_of(r));
          limited = true;
        }
      }
      if (!limited) {
        co_await forward(s, route->upstream_index);
      }
    }
  } catch (const std::exception& e) {
    log::error("HTTP/2 stream {} from {} failed: {}", s.id, down_.client_ip(), e.what());
    reset_stream(s, NGHTTP2_INTERNAL_ERROR);
  }
  auto& st = *s.st;
  request_fields f;
  f.method = s.method;
  f.path = s.path;
  f.host = s.authority.empty() ? s.head.find("host") : s.authority;
  f.request_id =
      st.have_request_id ? std::string_view(st.request_id.data(), st.request_id.size()) : s.head.find("x-request-id");
  f.request_id_ours = st.have_request_id;
  st.rec.bytes_out += s.out_bytes;
  record_request(down_, st.rec, f, s.first_byte);
  s.watch.stop();
  discard_body(s);
  if (s.wire) {
    s.wire->response_parser.set_chunked_sink(nullptr, nullptr);
    s.wire->response_parser.set_trailer_capture(nullptr);
    w.http1_states().give(std::move(s.wire));
  }
  w.request_states().give(std::move(s.st));
  (void)keep;
}

const compiled_route* h2_connection::admit(h2_stream& s) {
  auto& st = *s.st;
  const auto& view = st.rec.view;
  st.rec.bytes_in += s.head_bytes;
  begin_trace(st.rec, *view->snap->cfg, s.head, down_.owner().random());
  const auto* lv = view->snap->find_listener(down_.listen());
  if (lv == nullptr) {
    reply_local(s, error_kind::no_route);
    return nullptr;
  }
  if (s.too_large) {
    count_refusal(static_cast<std::size_t>(stats::h2_refusal::headers_too_large));
    reply_local(s, error_kind::headers_too_large);
    return nullptr;
  }
  if (s.malformed) {
    count_refusal(static_cast<std::size_t>(stats::h2_refusal::protocol_error));
    reply_local(s, error_kind::malformed_request);
    return nullptr;
  }
  const auto& h = s.head;
  if (!http::known_method(h.method)) {
    reply_local(s, error_kind::malformed_request);  // as the HTTP/1 parser answers it
    return nullptr;
  }
  if (h.method == "CONNECT") {
    reply_local(s, error_kind::method_not_allowed);
    return nullptr;
  }
  if (!s.authority.empty()) {
    // A Host beside :authority must name the same thing (RFC 9113 section 8.3.1).
    if (auto host = h.find("host"); !host.empty() && !http::iequals(host, s.authority)) {
      reply_local(s, error_kind::malformed_request);
      return nullptr;
    }
  }
  if (const char* why = check_request(h, false, st.facts.shape, st.scratch)) {
    log::debug("refused h2 request from {}: {}", down_.client_ip(), why);
    reply_local(s, error_kind::malformed_request);
    return nullptr;
  }
  if (lv->cfg->max_request_body > 0 && h.content_length > lv->cfg->max_request_body) {
    reply_local(s, error_kind::body_too_large);
    return nullptr;
  }
  const auto& shape = st.facts.shape;
  auto host = normalize_host(shape.host_override.empty() ? h.find("host") : shape.host_override, st.host_scratch);
  const auto* route = find_route(lv->routes, host, shape.route_path, h);
  if (route == nullptr) {
    reply_local(s, error_kind::no_route);
    return nullptr;
  }
  st.rec.route = static_cast<int>(route - lv->routes.data());
  return route;
}

awaitable<void> h2_connection::forward(h2_stream& s, std::size_t cluster_index) {
  auto& st = *s.st;
  const auto& view = st.rec.view;
  const auto& h = s.head;
  upstream_attempt attempt(down_.owner(), *view, cluster_index, s.watch, down_.client_ip(), is_idempotent(h.method),
                           true);
  struct forget {
    upstream_attempt*& slot;
    ~forget() { slot = nullptr; }
  } forget_attempt{s.attempt};
  s.attempt = &attempt;
  const bool grpc = is_grpc(h.find("content-type"));
  attempt.set_grpc(grpc);
  attempt.set_has_body(!(s.end_stream && s.body.empty()));
  if (st.rec.traced) {
    attempt.trace_tries(&st.rec.tries_traced);
  }
  const auto& up = attempt.cfg();
  st.rec.cluster = &attempt.cluster();
  auto request_deadline = s.first_byte + up.timeout.request;
  if (grpc) {
    // The client's deadline (grpc-timeout) bounds the request when it is the sooner one; passing it
    // answers DEADLINE_EXCEEDED.
    if (auto t = parse_grpc_timeout(h.find("grpc-timeout"))) {
      request_deadline = std::min(request_deadline, s.first_byte + std::chrono::duration_cast<clock::duration>(*t));
    }
  }
  s.watch.set_deadline(request_deadline);
  if (!has_request_id(h)) {
    st.request_id = make_request_id(down_.owner().random()(), down_.owner().random()());
    st.have_request_id = true;
  }
  st.facts.request_id = st.have_request_id ? std::string_view(st.request_id.data(), st.request_id.size()) : "";
  const auto max_body = view->snap->find_listener(down_.listen())->cfg->max_request_body;
  auto can_resend = [&s] { return s.can_resend(); };
  if (!attempt.admit()) {
    reply_local(s, error_kind::upstream_overloaded, up.degrade.retry_after);
    co_return;
  }
  while (true) {
    auto error = co_await attempt.start_try(request_deadline, can_resend());
    st.rec.host = attempt.host();
    st.rec.tries = attempt.tries();
    st.rec.connect_time = attempt.connect_time();
    if (s.closed) {
      co_return;  // the client reset the stream
    }
    if (error) {
      reply_local(s, *error, up.degrade.retry_after);
      co_return;
    }
    trace_try(st.rec, st.facts);
    st.facts.default_host = attempt.host()->authority();
    if (attempt.h2()) {
      if (co_await forward_h2(s, attempt, request_deadline)) {
        continue;  // another try
      }
      co_return;
    }
    auto& conn = *attempt.conn();
    if (!s.wire) {
      // The buffers and the response parser of an HTTP/1 exchange, taken at its first try.
      s.wire = down_.owner().http1_states().take();
      s.wire->reset_wire();  // read_response_head() resets the response parser
    }
    const auto sent = co_await send_request(s, conn, max_body);
    if (sent == send_result::client_gone || (s.closed && sent != send_result::ok)) {
      co_return;
    }
    if (sent == send_result::too_large) {
      attempt.conn().reset();  // the backend never sees the rest of a request refused midway
      reply_local(s, error_kind::body_too_large);
      co_return;
    }
    const auto got = co_await read_response_head(s, conn, up.max_response_headers, up.max_response_header_fields);
    if (got == head_result::client_gone || s.closed) {
      if (got == head_result::ok && s.closed) {
        co_await salvage(s, attempt.conn());  // the client left after its request went out whole
      }
      co_return;
    }
    if (got != head_result::ok) {
      const auto end = s.watch.expired()                                         ? try_end::timeout
                       : got == head_result::closed_silently && attempt.reused() ? try_end::stale_connection
                       : got == head_result::protocol_error                      ? try_end::protocol_error
                                                                                 : try_end::reset;
      if (attempt.try_failed(end, can_resend(), clock::now() < request_deadline) != retry_verdict::no) {
        continue;
      }
      reply_local(s, attempt.failure(), up.degrade.retry_after);
      co_return;
    }
    const auto& resp = s.wire->response_parser.head();
    st.rec.upstream_time = attempt.head_arrived();
    if (resp.status == 101) {
      // HTTP/2 has no upgrades, and none was asked for: a backend error.
      attempt.try_failed(try_end::protocol_error, false, true);
      reply_local(s, attempt.failure(), up.degrade.retry_after);
      co_return;
    }
    if (attempt.got_response(resp.status, can_resend()) == retry_verdict::retry) {
      continue;
    }
    co_await stream_response(s, attempt, sent == send_result::ok);
    co_return;
  }
}

awaitable<bool> h2_connection::forward_h2(h2_stream& s, upstream_attempt& attempt, clock::time_point request_deadline) {
  auto& st = *s.st;
  auto& up2 = *attempt.h2();
  const auto& h = s.head;
  const bool tls = attempt.cluster().tls != nullptr;
  // The request head: the client's fields as nghttp2 checked them, Host as :authority, the path
  // as routed (dot segments removed), and the forwarding fields.
  const auto authority = s.authority.empty() ? h.find("host") : s.authority;
  const auto path = st.facts.shape.forward_target.empty() ? s.path : st.facts.shape.forward_target;
  h2_request_fields(h, st.facts, tls ? "https" : "http", authority, path, st.scratch, st.h2_fields);
  const bool has_body = !(s.end_stream && s.body.empty() && !s.body_started);
  auto call = up2.submit(st.h2_fields, has_body);
  if (!call) {
    // The connection cannot take it (it was told GOAWAY, or its streams ran out): nothing was
    // sent, so the same host gets it on another connection.
    co_return attempt.try_failed(try_end::stale_connection, s.can_resend(), clock::now() < request_deadline) !=
        retry_verdict::no;
  }
  s.call = call;
  // When this try is over, its body pump (if any) sees the stream's call change and ends.
  struct forget {
    h2_stream& s;
    ~forget() {
      if (auto c = std::move(s.call)) {
        c->sent.notify();
      }
      s.wake.notify();
    }
  } forget_call{s};
  if (s.body_started) {
    call->out = st.replay;  // a retry: the body was kept whole
    call->out_trailers = s.request_trailers;
    call->out_eof = true;
    up2.resume(*call);
  } else if (has_body && s.end_stream) {
    // The whole body is here already (a unary gRPC call's message comes with its head): it goes
    // at once, with no body pump.
    if (!s.body.empty()) {
      hand_body(s, *call);
    }
    end_body(s, *call);
  } else if (has_body) {
    asio::co_spawn(down_.owner().io(), pump_body(s.shared_from_this(), call), asio::detached);
  }

  // The answer's head.
  while (!call->head_done && !call->closed && !s.closed) {
    if (!call->wake.ready()) {
      co_await call->wake.sleep();
    }
  }
  if (s.closed) {
    call->cancel();
    co_return false;  // the client reset its stream
  }
  if (!call->head_done) {
    if (attempt.h2_try_failed(*call, s.watch.expired(), s.can_resend(), clock::now() < request_deadline) !=
        retry_verdict::no) {
      co_return true;
    }
    reply_local(s, attempt.failure(), attempt.cfg().degrade.retry_after);
    co_return false;
  }
  st.rec.upstream_time = attempt.head_arrived();
  if (attempt.got_h2_response(*call, s.can_resend()) == retry_verdict::retry) {
    call->cancel();
    co_return true;
  }
  st.rec.status = call->status;
  const bool whole = call->whole_with_head();
  submit_head(s, call->status, call->headers, whole);

  // The body and the trailers, as they come and as the client takes them.
  while (!whole) {
    if (s.closed || s.watch.expired()) {
      break;
    }
    if (!call->body.empty() && s.out.size() - s.out_off < out_high_water) {
      const auto n = call->body.size();
      take_bytes(s.out, call->body);  // s.out is empty only with nothing pulled from it (pull_body)
      s.out_bytes += n;
      up2.consume(*call, n);
      if (!closed_) {
        nghttp2_session_resume_data(ng_, s.id);
        wake_writer();
      }
      continue;
    }
    if (call->ended && call->body.empty()) {
      break;
    }
    if (!call->wake.ready()) {
      co_await call->wake.sleep();
    }
  }
  if (whole) {
    co_return false;
  }
  if (s.closed || s.watch.expired() || call->error != 0) {
    // Cut off: by the client, the deadline, or the backend (which then counts as failing).
    attempt.h2_response_ended(*call, true);
    call->cancel();
    reset_stream(s, NGHTTP2_INTERNAL_ERROR);
    co_return false;
  }
  attempt.h2_response_ended(*call, false);
  s.trailers = std::move(call->trailers);
  s.out_eof = true;
  if (!closed_ && !s.closed) {
    nghttp2_session_resume_data(ng_, s.id);
    wake_writer();
  }
  co_return false;
}

awaitable<void> h2_connection::pump_body(std::shared_ptr<h2_stream> sp, std::shared_ptr<h2_call> call) {
  auto& s = *sp;
  // Runs while its try does: once forward_h2() is done with `call` (the answer is whole, or the try
  // failed and another may start), the stream's call changes and this ends without touching the
  // request's state, which serve() gives back.
  auto current = [&] { return s.call == call && s.st && !call->closed && !s.closed && !closed_; };
  while (current()) {
    if (!s.body.empty() && call->out.size() - call->out_off < out_high_water) {
      hand_body(s, *call);
      continue;
    }
    if (s.end_stream && s.body.empty()) {
      end_body(s, *call);
      co_return;
    }
    if (!s.body.empty()) {
      if (!call->sent.ready()) {  // the backend's window is full: wait for it to take some
        co_await call->sent.sleep();
      }
    } else {
      if (!s.wake.ready()) {  // wait for the client
        co_await s.wake.sleep();
      }
    }
  }
}

void h2_connection::hand_body(h2_stream& s, h2_call& call) {
  auto& st = *s.st;
  const auto n = s.body.size();
  if (s.replay_ok) {
    if (st.replay.size() + n > max_replay_body) {
      s.replay_ok = false;
      st.replay.clear();
    } else {
      st.replay.append(s.body);
    }
  }
  take_bytes(call.out, s.body);
  s.body_started = true;
  st.rec.bytes_in += n;
  nghttp2_session_consume(ng_, s.id, n);  // the client may send that much more
  wake_writer();
  if (call.conn != nullptr) {
    call.conn->resume(call);
  }
}

void h2_connection::end_body(h2_stream& s, h2_call& call) {
  call.out_trailers = s.request_trailers;
  call.out_eof = true;
  s.request_complete = true;
  if (call.conn != nullptr) {
    call.conn->resume(call);
  }
}

awaitable<h2_connection::send_result> h2_connection::send_request(h2_stream& s, upstream_connection& conn,
                                                                  std::uint64_t max_body) {
  auto& st = *s.st;
  auto& wire = *s.wire;
  build_upstream_head(s.head, st.facts, st.scratch, wire.out);
  if (s.body_started) {
    // A retry after the body went out on an earlier try: it was kept whole, send it again.
    std::array<asio::const_buffer, 2> bufs{asio::buffer(wire.out), asio::buffer(st.replay)};
    auto [ec, n] = co_await conn.stream.write_all(bufs);
    co_return ec ? send_result::upstream_write_failed : send_result::ok;
  }
  const bool chunked = s.head.chunked;
  bool head_sent = false;
  std::uint64_t body_bytes = 0;
  while (true) {
    if (s.closed && !s.end_stream) {
      co_return send_result::client_gone;  // reset mid-request
    }
    if (s.watch.expired()) {
      co_return send_result::upstream_write_failed;  // the request deadline passed
    }
    if (s.body.empty() && !s.end_stream && head_sent) {
      if (!s.wake.ready()) {
        co_await s.wake.sleep();
      }
      continue;
    }
    // The head (first time), then what arrived of the body, framed as chunks for a body of
    // unknown length, and the last chunk once the client's side ended.
    std::swap(s.body, s.sending);
    const std::size_t n = s.sending.size();
    body_bytes += n;
    st.rec.bytes_in += n;
    if (max_body > 0 && body_bytes > max_body) {
      co_return send_result::too_large;
    }
    const bool last = s.end_stream && s.body.empty();
    char size_line[24];
    std::size_t size_len = 0;
    if (chunked && n > 0) {
      auto r = std::to_chars(size_line, size_line + 16, n, 16);
      size_len = static_cast<std::size_t>(r.ptr - size_line);
      size_line[size_len++] = '\r';
      size_line[size_len++] = '\n';
    }
    static constexpr std::string_view crlf = "\r\n";
    if (chunked && last) {
      // The last chunk, with the client's trailers (a body with a length has nowhere to put them).
      s.last_chunk.assign("0\r\n");
      for (const auto& [name, value] : s.request_trailers) {
        s.last_chunk.append(name).append(": ").append(value).append("\r\n");
      }
      s.last_chunk.append("\r\n");
    }
    const std::string_view last_chunk = s.last_chunk;
    std::array<asio::const_buffer, 5> bufs{asio::buffer(wire.out.data(), head_sent ? 0 : wire.out.size()),
                                           asio::buffer(size_line, size_len), asio::buffer(s.sending),
                                           asio::buffer(crlf.data(), chunked && n > 0 ? crlf.size() : 0),
                                           asio::buffer(last_chunk.data(), chunked && last ? last_chunk.size() : 0)};
    if (s.replay_ok) {
      if (st.replay.size() + n + size_len + 2 + last_chunk.size() > max_replay_body) {
        s.replay_ok = false;
        st.replay.clear();
      } else {
        for (std::size_t i = 1; i < bufs.size(); ++i) {
          st.replay.append(static_cast<const char*>(bufs[i].data()), bufs[i].size());
        }
      }
    }
    s.body_started = s.body_started || n > 0;
    auto [ec, written] = co_await conn.stream.write_all(bufs);
    s.sending.clear();
    if (n > 0 && !closed_ && !s.closed) {
      // Written upstream: the client may send that much more (WINDOW_UPDATE).
      nghttp2_session_consume(ng_, s.id, n);
      wake_writer();
    }
    if (ec) {
      co_return send_result::upstream_write_failed;
    }
    head_sent = true;
    if (last) {
      s.request_complete = true;
      co_return send_result::ok;
    }
  }
}

awaitable<h2_connection::head_result> h2_connection::read_response_head(h2_stream& s, upstream_connection& conn,
                                                                        std::size_t max_head, std::size_t max_fields) {
  auto& st = *s.st;
  auto& wire = *s.wire;
  wire.response_parser.reset();
  wire.response_parser.set_no_body(s.head.method == "HEAD");
  wire.response_parser.set_limits(max_head, max_fields);
  wire.response_parser.set_chunked_sink(&h2_stream::append_out, &s);
  wire.response_parser.set_trailer_capture(&s.trailer_text);
  s.trailer_text.clear();
  wire.ubegin = wire.uend = 0;
  bool got_bytes = false;
  while (true) {
    if (wire.ubegin == wire.uend) {
      wire.ubegin = wire.uend = 0;
      auto [ec, n] = co_await conn.stream.async_read_some(asio::buffer(wire.ubuf), nothrow_deferred);
      if (s.closed && !s.request_complete) {
        co_return head_result::client_gone;  // the backend connection was closed (client_left)
      }
      if (ec) {
        co_return got_bytes ? head_result::reset : head_result::closed_silently;
      }
      got_bytes = true;
      wire.uend = n;
      wire.upstream_drained = n < wire.ubuf.size();
    }
    auto rr = wire.response_parser.feed(wire.ubuf.data() + wire.ubegin, wire.uend - wire.ubegin);
    if (rr.what == http::parser::event::error || wire.response_parser.head_bytes() > max_head) {
      if (rr.what != http::parser::event::error || wire.response_parser.error_too_large()) {
        st.rec.cluster->stats->response_heads_too_large.fetch_add(1, std::memory_order_relaxed);
      }
      co_return head_result::protocol_error;
    }
    wire.ubegin += rr.consumed;
    if (rr.what != http::parser::event::headers_complete) {
      continue;
    }
    const auto status = wire.response_parser.head().status;
    if (status >= 100 && status < 200 && status != 101) {
      continue;  // interim answers are not passed on to HTTP/2 clients
    }
    co_return head_result::ok;
  }
}

void h2_connection::submit_head(h2_stream& s, int status, const std::vector<http::header>& fields, bool end) {
  char digits[4];
  const auto r = std::to_chars(digits, digits + sizeof digits, status);
  auto& nva = nva_;  // reused: nghttp2 copies the fields when the response is submitted
  nva.clear();
  nva.push_back(make_nv(":status", std::string_view(digits, static_cast<std::size_t>(r.ptr - digits))));
  for (const auto& f : fields) {
    nva.push_back(make_nv(f.name, f.value));
  }
  nghttp2_data_provider prd{};
  prd.source.ptr = &s;
  prd.read_callback = callbacks::read_body;
  s.responded = true;
  if (end) {
    s.out_eof = true;
  }
  if (!closed_ && !s.closed) {
    nghttp2_submit_response(ng_, s.id, nva.data(), nva.size(), end ? nullptr : &prd);
    wake_writer();
  }
}

void h2_connection::reset_stream(h2_stream& s, std::uint32_t code) {
  if (!closed_ && !s.closed) {
    nghttp2_submit_rst_stream(ng_, NGHTTP2_FLAG_NONE, s.id, code);
    wake_writer();
  }
}

void h2_connection::discard_body(h2_stream& s) {
  s.discard = true;
  if (!s.body.empty() && !closed_ && !s.closed) {
    nghttp2_session_consume(ng_, s.id, s.body.size());
    wake_writer();
  }
  s.body.clear();
}

namespace {

void add_rate_limit_fields(const rate_limit_answer& limit, std::vector<http::header>& fields) {
  if (limit.policy != nullptr) {
    fields.push_back({"retry-after", limit.retry_after});
    fields.push_back({"ratelimit-policy", *limit.policy});
    fields.push_back({"ratelimit", limit.state});
  }
}

}  // namespace

void h2_connection::reply_local(h2_stream& s, error_kind kind, config::duration retry_after,
                                const rate_limit_answer& limit) {
  auto& st = *s.st;
  discard_body(s);
  const int status = status_of(kind);
  const auto name = to_string(kind);
  st.rec.local = kind;
  std::vector<http::header> fields;
  if (is_grpc(s.head.find("content-type"))) {
    // gRPC clients read the status from grpc-status: an HTTP 200 with the trailers-only answer.
    st.rec.status = 200;
    const auto code = std::to_string(grpc_status_of(kind));
    fields = {{"content-type", "application/grpc"},
              {"grpc-status", code},
              {"grpc-message", name},
              {"x-spillway-reason", name}};
    add_rate_limit_fields(limit, fields);
    submit_head(s, 200, fields, true);
    return;
  }
  st.rec.status = status;
  const bool head_request = s.head.method == "HEAD";
  s.out.assign(name);
  s.out.push_back('\n');
  const auto length = std::to_string(s.out.size());
  const auto retry = std::to_string((retry_after.count() + 999) / 1000);
  fields = {{"content-type", "text/plain"}, {"content-length", length}, {"x-spillway-reason", name}};
  if (status == 503) {
    fields.push_back({"retry-after", retry});
  }
  add_rate_limit_fields(limit, fields);
  if (head_request) {
    s.out.clear();
  } else {
    s.out_bytes += s.out.size();
    s.out_eof = true;
  }
  submit_head(s, status, fields, head_request);
}

awaitable<void> h2_connection::stream_response(h2_stream& s, upstream_attempt& attempt, bool request_sent_ok) {
  auto& st = *s.st;
  auto& wire = *s.wire;
  auto& conn = attempt.conn();
  const auto& resp = wire.response_parser.head();
  st.rec.status = resp.status;
  const bool until_close = wire.response_parser.body_until_close();
  // The head: field names in lower case (RFC 9113 section 8.2.1), connection-specific ones out.
  h2_response_fields(resp, st.scratch, st.h2_fields);
  const auto& fields = st.h2_fields;
  auto rr = wire.response_parser.feed(wire.ubuf.data() + wire.ubegin, wire.uend - wire.ubegin);
  if (rr.what == http::parser::event::error) {
    // Bad framing right after the head: nothing has reached the client yet.
    attempt.response_failed();
    s.out.clear();
    s.out_bytes = 0;
    reply_local(s, error_kind::upstream_protocol_error);
    co_return;
  }
  if (!resp.chunked) {
    h2_stream::append_out(&s, wire.ubuf.data() + wire.ubegin, rr.consumed);
  }
  wire.ubegin += rr.consumed;
  bool complete = rr.what == http::parser::event::message_complete;
  if (complete) {
    conn->watch_idle(wire.upstream_drained);
  }
  submit_head(s, resp.status, fields, complete && s.out.empty() && s.trailer_text.empty());
  bool upstream_failed = false;
  bool ok = true;
  bool client_left = false;  // the client reset the stream: not the backend's doing
  while (ok && !complete) {
    if (s.closed) {
      client_left = true;
      ok = false;
      break;
    }
    if (s.watch.expired()) {
      ok = false;
      break;
    }
    if (s.out.size() - s.out_off >= out_high_water) {
      if (!s.wake.ready()) {  // the client reads slower than the backend sends
        co_await s.wake.sleep();
      }
      continue;
    }
    wire.ubegin = wire.uend = 0;
    auto [ec, n] = co_await conn->stream.async_read_some(asio::buffer(wire.ubuf), nothrow_deferred);
    if (s.closed) {
      client_left = !ec;
      wire.uend = ec ? 0 : n;  // salvage() reads these bytes
      wire.upstream_drained = n < wire.ubuf.size();
      ok = false;
      break;
    }
    if (ec) {
      if (ec == asio::error::eof && until_close) {
        complete = wire.response_parser.finish() == http::parser::event::message_complete;
      }
      upstream_failed = !complete && !s.watch.expired();
      ok = complete;
      break;
    }
    rr = wire.response_parser.feed(wire.ubuf.data(), n);
    if (rr.what == http::parser::event::error) {
      upstream_failed = true;
      ok = false;
      break;
    }
    if (!resp.chunked) {
      h2_stream::append_out(&s, wire.ubuf.data(), rr.consumed);
    }
    wire.ubegin = rr.consumed;
    wire.uend = n;
    complete = rr.what == http::parser::event::message_complete;
    if (complete) {
      conn->watch_idle(n < wire.ubuf.size());
    }
    if (!closed_) {
      nghttp2_session_resume_data(ng_, s.id);
      wake_writer();
    }
  }
  if (client_left && request_sent_ok) {
    co_await salvage(s, conn);
    co_return;
  }
  if (!ok) {
    // Part of the answer may have reached the client: the stream is reset, the connection lives.
    if (upstream_failed) {
      attempt.response_failed();
    }
    conn.reset();
    reset_stream(s, NGHTTP2_INTERNAL_ERROR);
    co_return;
  }
  http::split_trailer_fields(s.trailer_text, s.trailers);  // a chunked answer's trailers (gRPC's status)
  s.out_eof = true;
  if (!closed_ && !s.closed) {
    nghttp2_session_resume_data(ng_, s.id);
    wake_writer();
  }
  finish_exchange(s, conn, request_sent_ok);
}

bool h2_connection::finish_exchange(h2_stream& s, upstream_connection_ptr& conn, bool request_sent_ok) {
  const bool reusable = s.wire->upstream_reusable(s.request_complete && request_sent_ok);
  if (reusable) {
    down_.owner().pool().put(std::move(conn));
  } else {
    conn.reset();
  }
  return reusable;
}

awaitable<void> h2_connection::salvage(h2_stream& s, upstream_connection_ptr& conn) {
  auto& st = *s.st;
  auto& wire = *s.wire;
  wire.response_parser.set_chunked_sink(nullptr, nullptr);  // nobody takes the body any more
  s.out.clear();
  s.out_off = 0;
  std::size_t dropped = 0;
  for (;;) {  // `conn` stays set: only this ends it
    const auto rr = wire.response_parser.feed(wire.ubuf.data() + wire.ubegin, wire.uend - wire.ubegin);
    if (rr.what == http::parser::event::error) {
      break;
    }
    wire.ubegin += rr.consumed;
    dropped += rr.consumed;
    if (rr.what == http::parser::event::message_complete) {
      conn->watch_idle(wire.upstream_drained);
      if (finish_exchange(s, conn, true)) {
        st.rec.cluster->stats->connections_salvaged.fetch_add(1, std::memory_order_relaxed);
      }
      co_return;
    }
    if (dropped > salvage_bytes || s.watch.expired()) {
      break;
    }
    wire.ubegin = wire.uend = 0;
    auto [ec, n] = co_await conn->stream.async_read_some(asio::buffer(wire.ubuf), nothrow_deferred);
    if (ec) {
      break;  // the deadline closed it, or the backend did (an answer until close is not reusable)
    }
    wire.uend = n;
    wire.upstream_drained = n < wire.ubuf.size();
  }
  conn.reset();
}

}  // namespace spillway::proxy
