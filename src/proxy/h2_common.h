#pragma once
// What both ends of HTTP/2 share (the client side, h2_connection.h, and the backend side,
// h2_upstream.h): a wake-up for coroutines on the worker's thread, and the loop that writes what an
// nghttp2 session has to send.

#include "http/parser.h"
#include "tls/stream.h"

#include <nghttp2/nghttp2.h>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>

#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace spillway::proxy {

// Wakes one coroutine on the worker's thread: a notify() before or during wait() ends the wait.
// The timer it waits on is made at the first wait that must sleep (most of a stream's wake-ups
// never wait), and a notify() with no one waiting touches no timer.
class wakeup {
 public:
  explicit wakeup(boost::asio::io_context& io) : io_(io) {}
  boost::asio::awaitable<void> wait();
  void notify();

 private:
  boost::asio::io_context& io_;
  std::optional<boost::asio::steady_timer> timer_;
  bool pending_ = false;
  bool waiting_ = false;
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
