#include "proxy/h2_common.h"

#include "common/completion.h"

#include <boost/asio/post.hpp>
#include <boost/asio/write.hpp>

#include <algorithm>
#include <array>
#include <cstring>

namespace spillway::proxy {

namespace asio = boost::asio;

namespace {
// How many bytes the writer gathers from nghttp2 before it writes.
constexpr std::size_t write_batch = 64 * 1024;
}  // namespace

boost::asio::execution_context::id wakeups::id;

wakeups& wakeups::of(asio::io_context& io) { return asio::use_service<wakeups>(io); }

void wakeups::add(wakeup& w) {
  w.prev_ = nullptr;
  w.next_ = waiting_;
  if (waiting_ != nullptr) {
    waiting_->prev_ = &w;
  }
  waiting_ = &w;
  io_.get_executor().on_work_started();
}

void wakeups::remove(wakeup& w) {
  (w.prev_ != nullptr ? w.prev_->next_ : waiting_) = w.next_;
  if (w.next_ != nullptr) {
    w.next_->prev_ = w.prev_;
  }
  w.prev_ = w.next_ = nullptr;
  io_.get_executor().on_work_finished();
}

void wakeups::shutdown() {
  // Each waiter's handler is destroyed, which posts the destruction of its coroutine's frames (the
  // scheduler, shut down after this service, destroys them with its queue). Frames destroyed here
  // may end other waits, so the list is read afresh each time.
  while (waiting_ != nullptr) {
    auto& w = *waiting_;
    auto h = std::move(*w.waiter_);
    w.waiter_.reset();
    remove(w);
  }
}

wakeup::~wakeup() {
  if (waiter_) {
    // Cannot happen while the sleeping coroutine keeps the wakeup's owner alive, as every caller
    // does. Were it to, nothing could wake the coroutine any more: its frames are destroyed (the
    // handler posts their destruction) rather than left to leak.
    waiter_.reset();
    owner_.remove(*this);
  }
}

void wakeup::keep(handler h) {
  waiter_.emplace(std::move(h));
  owner_.add(*this);
  // Cancelling the sleeping coroutine (a timeout racing it with ||, as the health checker's does)
  // wakes it as a notify() would, and as a cancelled timer wait did: it then sees that it was
  // cancelled. The handler clears the slot when it runs, so this is never called after that.
  auto slot = asio::get_associated_cancellation_slot(*waiter_);
  if (slot.is_connected()) {
    slot.assign([this](asio::cancellation_type) {
      if (waiter_) {
        resume();
      }
    });
  }
}

void wakeup::notify() {
  pending_ = true;
  if (waiter_) {
    resume();
  }
}

void wakeup::resume() {
  pending_ = false;  // the wait this ends takes the notification
  // Posted, not called: notify() runs inside nghttp2's callbacks and other coroutines' steps.
  asio::post(owner_.io_, [h = std::move(*waiter_)]() mutable { h(); });
  waiter_.reset();
  owner_.remove(*this);
}

asio::awaitable<bool> write_session(nghttp2_session* ng, tls::stream& stream, std::string& wbuf, wakeup& wake,
                                    const bool& closed) {
  while (!closed) {
    wbuf.clear();
    while (wbuf.size() < write_batch) {
      const uint8_t* data = nullptr;
      const auto n = nghttp2_session_mem_send(ng, &data);
      if (n <= 0) {
        break;
      }
      wbuf.append(reinterpret_cast<const char*>(data), static_cast<std::size_t>(n));
    }
    if (closed) {
      break;
    }
    if (!wbuf.empty()) {
      auto [ec, n] = co_await stream.write_all(asio::buffer(wbuf));
      if (ec) {
        co_return false;
      }
      continue;
    }
    if (!nghttp2_session_want_read(ng) && !nghttp2_session_want_write(ng)) {
      break;  // GOAWAY exchanged and no stream left: the connection is done
    }
    if (!wake.ready()) {
      co_await wake.sleep();
    }
  }
  co_return true;
}

ssize_t pull_body(std::string& out, std::size_t& off, bool eof, uint8_t* buf, std::size_t length, uint32_t* flags) {
  const std::size_t n = std::min(length, out.size() - off);
  std::memcpy(buf, out.data() + off, n);
  off += n;
  if (off == out.size()) {
    out.clear();
    off = 0;
    if (eof) {
      *flags |= NGHTTP2_DATA_FLAG_EOF;
    } else if (n == 0) {
      return NGHTTP2_ERR_DEFERRED;
    }
  }
  return static_cast<ssize_t>(n);
}

void take_bytes(std::string& to, std::string& from) {
  if (to.empty()) {
    to.swap(from);
  } else {
    to.append(from);
  }
  from.clear();
}

void end_with_trailers(nghttp2_session* ng, std::int32_t id,
                       const std::vector<std::pair<std::string, std::string>>& trailers, uint32_t* flags) {
  if ((*flags & NGHTTP2_DATA_FLAG_EOF) == 0 || trailers.empty()) {
    return;
  }
  *flags |= NGHTTP2_DATA_FLAG_NO_END_STREAM;
  // nghttp2 copies the fields: a usual trailer section (gRPC's status and message) needs no heap.
  std::array<nghttp2_nv, 8> usual;
  std::vector<nghttp2_nv> many;
  nghttp2_nv* nva = usual.data();
  if (trailers.size() > usual.size()) {
    many.resize(trailers.size());
    nva = many.data();
  }
  for (std::size_t i = 0; i < trailers.size(); ++i) {
    nva[i] = make_nv(trailers[i].first, trailers[i].second);
  }
  nghttp2_submit_trailer(ng, id, nva, trailers.size());
}

bool unique_per_message(std::string_view name) {
  // Names reach here in lower case (HTTP/2 requires it; HTTP/1 heads are lowered on the way).
  switch (name.size()) {
    case 2:
      return name == "b3";
    case 11:
      return name == "traceparent" || name == "x-b3-spanid";
    case 12:
      return name == "x-request-id" || name == "grpc-timeout" || name == "x-b3-traceid";
    case 17:
      return name == "x-b3-parentspanid";
    default:
      return false;
  }
}

nghttp2_nv make_nv(std::string_view name, std::string_view value) {
  return nghttp2_nv{reinterpret_cast<uint8_t*>(const_cast<char*>(name.data())),
                    reinterpret_cast<uint8_t*>(const_cast<char*>(value.data())), name.size(), value.size(),
                    static_cast<uint8_t>(unique_per_message(name) ? NGHTTP2_NV_FLAG_NO_INDEX : NGHTTP2_NV_FLAG_NONE)};
}

}  // namespace spillway::proxy
