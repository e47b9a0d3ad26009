#include "proxy/h2_upstream.h"

#include "common/completion.h"
#include "common/log.h"
#include "proxy/grpc.h"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/deferred.hpp>
#include <boost/asio/detached.hpp>

#include <openssl/ssl.h>

#include <charconv>
#include <cstring>

namespace spillway::proxy {

namespace asio = boost::asio;

namespace {
// The window each response stream grants, and the connection's: what a call buffers at most.
constexpr std::int32_t stream_window = 64 * 1024;
constexpr std::int32_t connection_window = 1024 * 1024;
}  // namespace

struct h2_upstream::callbacks {
  static h2_upstream& self(void* user_data) { return *static_cast<h2_upstream*>(user_data); }
  static h2_call* call(nghttp2_session* session, std::int32_t id) {
    return static_cast<h2_call*>(nghttp2_session_get_stream_user_data(session, id));
  }

  static int on_header(nghttp2_session* session, const nghttp2_frame* frame, const uint8_t* name_p,
                       std::size_t name_len, const uint8_t* value_p, std::size_t value_len, uint8_t /*flags*/,
                       void* user_data) {
    auto& u = self(user_data);
    auto* c = call(session, frame->hd.stream_id);
    if (c == nullptr) {
      return 0;
    }
    const std::string_view name(reinterpret_cast<const char*>(name_p), name_len);
    const std::string_view value(reinterpret_cast<const char*>(value_p), value_len);
    std::size_t bytes = name_len + value_len + 4;
    std::size_t fields = 0;
    if (c->head_done) {
      for (const auto& [n, v] : c->trailers) {
        bytes += n.size() + v.size() + 4;
      }
      fields = c->trailers.size();
    } else {
      bytes += c->head_bytes;
      fields = c->head_fields;
    }
    if (bytes > u.max_head_ || fields >= u.max_fields_) {
      c->too_large = true;
      return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;  // the stream is reset; the call fails
    }
    if (name == ":status") {
      std::from_chars(value.data(), value.data() + value.size(), c->status);
      return 0;
    }
    if (!c->head_done) {
      c->add_head_field(name, value);
      return 0;
    }
    if (c->trailers.empty()) {
      c->trailers.reserve(4);  // room for a usual trailer section at once
    }
    c->trailers.emplace_back(name, value);
    return 0;
  }

  static int on_frame_recv(nghttp2_session* session, const nghttp2_frame* frame, void* user_data) {
    auto& u = self(user_data);
    if (frame->hd.type == NGHTTP2_GOAWAY) {
      u.goaway_ = true;  // calls above its last stream id are closed as refused by nghttp2
      return 0;
    }
    auto* c = frame->hd.stream_id != 0 ? call(session, frame->hd.stream_id) : nullptr;
    if (c == nullptr) {
      return 0;
    }
    if (frame->hd.type == NGHTTP2_HEADERS && !c->head_done) {
      if (c->status >= 200) {
        c->head_done = true;
        c->head_complete();
      } else {
        c->clear_head();  // an interim answer: the final head follows
        c->status = 0;
      }
    }
    if ((frame->hd.type == NGHTTP2_HEADERS || frame->hd.type == NGHTTP2_DATA) &&
        (frame->hd.flags & NGHTTP2_FLAG_END_STREAM) != 0) {
      c->ended = true;
    }
    c->wake.notify();
    return 0;
  }

  static int on_data_chunk_recv(nghttp2_session* session, uint8_t /*flags*/, std::int32_t stream_id,
                                const uint8_t* data, std::size_t len, void* /*user_data*/) {
    auto* c = call(session, stream_id);
    if (c == nullptr) {
      nghttp2_session_consume(session, stream_id, len);
      return 0;
    }
    c->body.append(reinterpret_cast<const char*>(data), len);
    c->wake.notify();
    return 0;
  }

  static int on_stream_close(nghttp2_session* session, std::int32_t stream_id, uint32_t error_code, void* user_data) {
    auto& u = self(user_data);
    if (auto* c = call(session, stream_id)) {
      c->closed = true;
      c->ended = true;
      c->error = error_code;
      c->refused = error_code == NGHTTP2_REFUSED_STREAM && !c->head_done;
      c->conn = nullptr;
      c->wake.notify();
      c->sent.notify();
      nghttp2_session_set_stream_user_data(session, stream_id, nullptr);
    }
    u.calls_.erase(stream_id);
    if (u.calls_.empty()) {
      u.idle_since_ = clock::now();
    }
    return 0;
  }

  // The request body, pulled by nghttp2 as the backend's windows allow.
  static ssize_t read_body(nghttp2_session* session, std::int32_t stream_id, uint8_t* buf, std::size_t length,
                           uint32_t* data_flags, nghttp2_data_source* source, void*) {
    auto* c = static_cast<h2_call*>(source->ptr);
    const auto n = pull_body(c->out, c->out_off, c->out_eof, buf, length, data_flags);
    end_with_trailers(session, stream_id, c->out_trailers, data_flags);
    if (n > 0) {
      c->sent.notify();  // room for more of the request body
    }
    return n;
  }
};

h2_upstream::h2_upstream(asio::io_context& io, upstream_connection_ptr conn, h2_pool* pool, std::size_t max_head,
                         std::size_t max_fields)
    : conn_(std::move(conn)),
      pool_(pool),
      wakeups_(wakeups::of(io)),
      write_wake_(wakeups_),
      io_(io),
      max_head_(max_head),
      max_fields_(max_fields),
      idle_since_(clock::now()) {
  nghttp2_session_callbacks* cb = nullptr;
  nghttp2_session_callbacks_new(&cb);
  nghttp2_session_callbacks_set_on_header_callback(cb, callbacks::on_header);
  nghttp2_session_callbacks_set_on_frame_recv_callback(cb, callbacks::on_frame_recv);
  nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cb, callbacks::on_data_chunk_recv);
  nghttp2_session_callbacks_set_on_stream_close_callback(cb, callbacks::on_stream_close);
  nghttp2_option* opt = nullptr;
  nghttp2_option_new(&opt);
  nghttp2_option_set_no_auto_window_update(opt, 1);  // acknowledged as the front end takes the data
  nghttp2_option_set_max_settings(opt, 32);
  nghttp2_option_set_no_closed_streams(opt, 1);
  nghttp2_option_set_max_outbound_ack(opt, 1000);
  nghttp2_session_client_new2(&ng_, cb, this, opt);
  nghttp2_option_del(opt);
  nghttp2_session_callbacks_del(cb);
}

h2_upstream::~h2_upstream() { nghttp2_session_del(ng_); }

bool h2_upstream::alpn_ok(upstream_connection& conn) {
  SSL* ssl = conn.stream.native_tls();
  if (ssl == nullptr) {
    return true;  // cleartext: prior knowledge
  }
  const unsigned char* proto = nullptr;
  unsigned len = 0;
  SSL_get0_alpn_selected(ssl, &proto, &len);
  return len == 2 && proto[0] == 'h' && proto[1] == '2';
}

void h2_upstream::start() {
  const nghttp2_settings_entry settings[] = {
      {NGHTTP2_SETTINGS_ENABLE_PUSH, 0},
      {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, static_cast<std::uint32_t>(stream_window)},
      {NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, static_cast<std::uint32_t>(max_head_)},
  };
  nghttp2_submit_settings(ng_, NGHTTP2_FLAG_NONE, settings, std::size(settings));
  nghttp2_session_set_local_window_size(ng_, NGHTTP2_FLAG_NONE, 0, connection_window);
  auto self = shared_from_this();
  asio::co_spawn(io_, reader(self), asio::detached);
  asio::co_spawn(io_, writer(self), asio::detached);
}

bool h2_upstream::usable() const {
  if (closed_ || goaway_) {
    return false;
  }
  const auto limit = nghttp2_session_get_remote_settings(ng_, NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS);
  return calls_.size() < limit;
}

std::shared_ptr<h2_call> h2_upstream::submit(const std::vector<http::header>& fields, bool has_body) {
  if (!usable()) {
    return nullptr;
  }
  auto c = std::make_shared<h2_call>(wakeups_);
  nghttp2_data_provider prd{};
  prd.source.ptr = c.get();
  prd.read_callback = callbacks::read_body;
  nva_.clear();
  for (const auto& f : fields) {
    nva_.push_back(make_nv(f.name, f.value));
  }
  const auto id = nghttp2_submit_request(ng_, nullptr, nva_.data(), nva_.size(), has_body ? &prd : nullptr, c.get());
  if (id < 0) {
    goaway_ = goaway_ || id == NGHTTP2_ERR_STREAM_ID_NOT_AVAILABLE;  // stream ids ran out
    return nullptr;
  }
  c->id = id;
  c->conn = this;
  calls_.emplace(id, c);
  wake_writer();
  return c;
}

void h2_upstream::resume(h2_call& c) {
  if (!closed_ && c.conn == this) {
    nghttp2_session_resume_data(ng_, c.id);
    wake_writer();
  }
}

void h2_upstream::consume(h2_call& c, std::size_t n) {
  if (!closed_ && n > 0) {
    if (c.conn == this) {
      nghttp2_session_consume(ng_, c.id, n);
    } else {
      nghttp2_session_consume_connection(ng_, n);
    }
    wake_writer();
  }
}

void h2_upstream::cancel(h2_call& c) {
  if (!closed_ && c.conn == this) {
    nghttp2_submit_rst_stream(ng_, NGHTTP2_FLAG_NONE, c.id, NGHTTP2_CANCEL);
    wake_writer();
  }
}

void h2_upstream::drain() {
  if (closed_ || goaway_) {
    return;
  }
  goaway_ = true;
  nghttp2_submit_goaway(ng_, NGHTTP2_FLAG_NONE, 0, NGHTTP2_NO_ERROR, nullptr, 0);
  wake_writer();
}

void h2_upstream::close() { shut(); }

asio::awaitable<void> h2_upstream::reader(std::shared_ptr<h2_upstream> self) {
  while (!closed_) {
    auto [ec, n] = co_await conn_->stream.async_read_some(asio::buffer(rbuf_), nothrow_deferred);
    if (ec || closed_) {
      break;
    }
    const auto rv = nghttp2_session_mem_recv(ng_, reinterpret_cast<const uint8_t*>(rbuf_.data()), n);
    if (rv < 0) {
      log::debug("h2 backend {}: {}", conn_->host->address(), nghttp2_strerror(static_cast<int>(rv)));
      break;
    }
    wake_writer();
  }
  shut();
  (void)self;  // held: the connection outlives its coroutines
}

asio::awaitable<void> h2_upstream::writer(std::shared_ptr<h2_upstream> self) {
  co_await write_session(ng_, conn_->stream, wbuf_, write_wake_, closed_);
  shut();
  (void)self;
}

void h2_upstream::shut() {
  if (closed_) {
    return;
  }
  closed_ = true;
  goaway_ = true;
  conn_->stream.close();
  for (auto& [id, c] : calls_) {
    c->closed = true;
    c->ended = true;
    if (c->error == 0) {
      c->error = NGHTTP2_INTERNAL_ERROR;  // the connection went away under it
    }
    c->conn = nullptr;
    nghttp2_session_set_stream_user_data(ng_, id, nullptr);
    c->wake.notify();
    c->sent.notify();
  }
  calls_.clear();
  write_wake_.notify();
  if (pool_ != nullptr) {
    auto* pool = std::exchange(pool_, nullptr);
    pool->remove(this);  // may drop the pool's reference: the coroutines hold their own
  }
}

// --- a call ---

namespace {
// h2_call::head_raw: a field's name and value lengths, then its bytes.
struct raw_field_lengths {
  std::uint32_t name, value;
};

template <typename List>
std::string_view find_field(const List& list, std::string_view name) {
  for (const auto& [n, v] : list) {
    if (n == name) {
      return v;
    }
  }
  return {};
}
}  // namespace

void h2_call::add_head_field(std::string_view name, std::string_view value) {
  if (head_raw.empty()) {
    head_raw.reserve(256);  // room for a usual head at once
  }
  const raw_field_lengths len{static_cast<std::uint32_t>(name.size()), static_cast<std::uint32_t>(value.size())};
  head_raw.append(reinterpret_cast<const char*>(&len), sizeof len).append(name).append(value);
  ++head_fields;
  head_bytes += name.size() + value.size() + 4;
}

void h2_call::head_complete() {
  headers.clear();
  headers.reserve(head_fields);
  for (std::size_t at = 0; at + sizeof(raw_field_lengths) <= head_raw.size();) {
    raw_field_lengths len{};
    std::memcpy(&len, head_raw.data() + at, sizeof len);
    at += sizeof len;
    const std::string_view name(head_raw.data() + at, len.name);
    const std::string_view value(head_raw.data() + at + len.name, len.value);
    at += len.name + len.value;
    headers.push_back({name, value});
  }
}

void h2_call::clear_head() {
  head_raw.clear();
  head_fields = 0;
  head_bytes = 0;
  headers.clear();
}

std::string_view h2_call::header(std::string_view name) const { return find_field(headers, name); }
std::string_view h2_call::trailer(std::string_view name) const { return find_field(trailers, name); }

int h2_call::early_grpc_status() const {
  if (!is_grpc(header("content-type")) || !ended || error != 0 || !body.empty()) {
    return -1;
  }
  return parse_grpc_status(header("grpc-status"));
}

void h2_call::cancel() {
  if (conn != nullptr) {
    conn->cancel(*this);
  }
}

// --- the pool ---

h2_pool::~h2_pool() { shut_down(); }

void h2_pool::shut_down() {
  shut_down_ = true;
  while (!connecting_.empty()) {
    finish_connect(*connecting_.back(), h2_connecting::outcome::given_up);
  }
  auto all = std::move(by_host_);
  by_host_.clear();
  for (auto& [h, v] : all) {
    for (auto& c : v) {
      c->close();
    }
  }
}

std::shared_ptr<h2_upstream> h2_pool::find(const upstream::host* h, const tls::client_context* tls) {
  auto it = by_host_.find(h);
  if (it == by_host_.end()) {
    return nullptr;
  }
  for (const auto& c : it->second) {
    if (c->tls() == tls && c->usable()) {
      return c;
    }
  }
  return nullptr;
}

void h2_pool::keep_only(const std::function<bool(const upstream::host*)>& configured) {
  std::vector<std::shared_ptr<h2_upstream>> gone;
  for (const auto& [h, v] : by_host_) {
    if (!configured(h)) {
      gone.insert(gone.end(), v.begin(), v.end());
    }
  }
  for (const auto& c : gone) {
    if (c->active() == 0) {
      c->close();  // removes itself from by_host_
    } else {
      c->drain();  // its calls finish; it takes no more
    }
  }
}

void h2_pool::add(std::shared_ptr<h2_upstream> c) {
  if (!shut_down_) {
    by_host_[c->host()].push_back(std::move(c));
  }
}

void h2_pool::remove(h2_upstream* c) {
  if (shut_down_) {
    return;
  }
  auto it = by_host_.find(c->host());
  if (it == by_host_.end()) {
    return;
  }
  auto& v = it->second;
  for (auto i = v.begin(); i != v.end(); ++i) {
    if (i->get() == c) {
      auto keep = std::move(*i);  // destroyed after the vector is consistent again
      v.erase(i);
      if (v.empty()) {
        by_host_.erase(it);
      }
      return;
    }
  }
}

void h2_pool::sweep(std::chrono::steady_clock::time_point now, std::chrono::steady_clock::duration max_idle) {
  std::vector<std::shared_ptr<h2_upstream>> idle;
  for (const auto& [h, v] : by_host_) {
    for (const auto& c : v) {
      if (c->active() == 0 && now - c->idle_since() > max_idle) {
        idle.push_back(c);
      }
    }
  }
  for (const auto& c : idle) {
    c->close();
  }
}

void h2_pool::drain() {
  std::vector<std::shared_ptr<h2_upstream>> all;
  for (const auto& [h, v] : by_host_) {
    all.insert(all.end(), v.begin(), v.end());
  }
  for (const auto& c : all) {
    if (c->active() == 0) {
      c->close();
    } else {
      c->drain();
    }
  }
}

std::shared_ptr<h2_connecting> h2_pool::begin_connect(const upstream::host* h, const tls::client_context* tls) {
  auto p = std::make_shared<h2_connecting>();
  p->host = h;
  p->tls = tls;
  if (!shut_down_) {
    connecting_.push_back(p);
  }
  return p;
}

void h2_pool::finish_connect(h2_connecting& p, h2_connecting::outcome result, std::shared_ptr<h2_upstream> made) {
  if (p.result != h2_connecting::outcome::pending) {
    return;
  }
  p.result = result;
  p.made = std::move(made);
  std::shared_ptr<h2_connecting> keep;  // the pool's reference may be the last one
  for (auto it = connecting_.begin(); it != connecting_.end(); ++it) {
    if (it->get() == &p) {
      keep = std::move(*it);
      connecting_.erase(it);
      break;
    }
  }
  for (auto* t : p.timers) {
    t->cancel();
  }
}

std::shared_ptr<h2_connecting> h2_pool::joinable(const upstream::host* h, const tls::client_context* tls) const {
  for (const auto& p : connecting_) {
    if (p->host == h && p->tls == tls && p->timers.size() + 1 < streams_before_settings) {
      return p;
    }
  }
  return nullptr;
}

asio::awaitable<void> h2_pool::wait_connect(asio::io_context& io, std::shared_ptr<h2_connecting> p,
                                            std::chrono::steady_clock::time_point give_up) {
  asio::steady_timer timer(io, give_up);
  // Leaves the list however the wait ends (also when the coroutine's frame is destroyed).
  struct registration {
    h2_connecting& p;
    asio::steady_timer* t;
    ~registration() { std::erase(p.timers, t); }
  } reg{*p, &timer};
  p->timers.push_back(&timer);
  if (p->result == h2_connecting::outcome::pending) {
    co_await timer.async_wait(nothrow);
  }
}

std::size_t h2_pool::size() const {
  std::size_t n = 0;
  for (const auto& [h, v] : by_host_) {
    n += v.size();
  }
  return n;
}

}  // namespace spillway::proxy
