#pragma once
// What both ends of HTTP/2 share (the client side, h2_connection.h, and the backend side,
// h2_upstream.h): a wake-up for coroutines on the worker's thread, and the loop that writes what an
// nghttp2 session has to send.

#include "http/parser.h"
#include "tls/stream.h"

#include <nghttp2/nghttp2.h>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/deferred.hpp>
#include <boost/asio/io_context.hpp>

#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

namespace spillway::proxy {

class wakeups;

// Wakes one coroutine on the worker's thread. A notify() with no coroutine asleep is kept for the
// next wait; a coroutine waits with
//
//     if (!w.ready()) {
//       co_await w.sleep();
//     }
//
// ready() takes a notification that came since the last wait; sleep() suspends the coroutine
// until the next notify(), which posts its resumption to the worker's io_context (no timer, no
// reactor, no lock but the scheduler's, and no coroutine frame of its own: sleep() is a deferred
// operation awaited in the caller's frame). Cancelling the sleeping coroutine wakes it too. The
// sleeping coroutine must keep the wakeup alive.
class wakeup {
 public:
  explicit wakeup(wakeups& owner) : owner_(owner) {}
  ~wakeup();
  wakeup(const wakeup&) = delete;
  wakeup& operator=(const wakeup&) = delete;

  bool ready() { return std::exchange(pending_, false); }
  auto sleep() {
    return boost::asio::async_initiate<const boost::asio::deferred_t&, void()>(
        [this](auto h) {
          static_assert(std::is_same_v<decltype(h), handler>);
          keep(std::move(h));
        },
        boost::asio::deferred);
  }
  void notify();

 private:
  friend class wakeups;
  // What co_await of a deferred operation with signature void() hands the operation.
  using handler = boost::asio::detail::awaitable_async_op_handler<void(), boost::asio::any_io_executor>;

  void keep(handler h);
  void resume();

  wakeups& owner_;
  std::optional<handler> waiter_;
  wakeup* prev_ = nullptr;  // the owner's list of wakeups with a waiter
  wakeup* next_ = nullptr;
  bool pending_ = false;
};

// An io_context's wakeups with a coroutine waiting (an Asio service): the waits count as the
// context's outstanding work, as a timer's would, and a context shut down with coroutines still
// waiting destroys them, as it destroys pending operations. Worker thread only.
class wakeups : public boost::asio::execution_context::service {
 public:
  using key_type = wakeups;
  static boost::asio::execution_context::id id;

  explicit wakeups(boost::asio::io_context& io) : service(io), io_(io) {}
  // The io_context's wakeups (a service lookup: once per connection, not per request).
  static wakeups& of(boost::asio::io_context& io);

 private:
  friend class wakeup;
  void shutdown() override;
  void add(wakeup& w);
  void remove(wakeup& w);

  boost::asio::io_context& io_;
  wakeup* waiting_ = nullptr;
};

// Writes what `ng` has to send to `stream`, in batches gathered into `wbuf`, waiting on `wake`
// when there is nothing, until `closed` is set or the session wants neither to read nor to write.
// Returns false when a write failed.
boost::asio::awaitable<bool> write_session(nghttp2_session* ng, tls::stream& stream, std::string& wbuf, wakeup& wake,
                                           const bool& closed);

// A body nghttp2 pulls from a buffer: out[off, size) is what waits, `eof` says nothing more comes.
// Copies up to `length` bytes into `buf` for nghttp2's data read callback and returns how many, or
// NGHTTP2_ERR_DEFERRED when the buffer is empty and the body goes on (resume_data follows).
// Sets NGHTTP2_DATA_FLAG_EOF in `flags` once the last byte went.
ssize_t pull_body(std::string& out, std::size_t& off, bool eof, uint8_t* buf, std::size_t length, uint32_t* flags);

// Moves `from`'s bytes to the end of `to` and leaves `from` empty: when `to` is empty the two
// buffers are swapped, so the bytes change hands without a copy or an allocation.
void take_bytes(std::string& to, std::string& from);

// For a data read callback that just set NGHTTP2_DATA_FLAG_EOF in `flags`: when `trailers` is not
// empty, they end stream `id` instead of the last DATA frame.
void end_with_trailers(nghttp2_session* ng, std::int32_t id,
                       const std::vector<std::pair<std::string, std::string>>& trailers, uint32_t* flags);

// An nghttp2 header field over views (nghttp2 copies names and values when a frame is submitted).
// A field whose value is new in every message (unique_per_message) is sent without entering the
// HPACK dynamic table.
nghttp2_nv make_nv(std::string_view name, std::string_view value);

// True for a field name whose value differs in every message: X-Request-Id, W3C traceparent,
// Zipkin's B3 ids and gRPC's grpc-timeout (the time a call has left).
// Indexed, each would take a new dynamic-table entry per message that no later message can use,
// evict entries that could be used, and, all hashing alike by name, lengthen the chain nghttp2's
// encoder walks for every such field.
bool unique_per_message(std::string_view name);

}  // namespace spillway::proxy
