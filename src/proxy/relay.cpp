#include "proxy/relay.h"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <limits>
#include <optional>
#include <tuple>

namespace spillway::proxy {

namespace asio = boost::asio;

namespace {

constexpr auto nothrow = asio::as_tuple(asio::use_awaitable);

// The copy loop's reads and writes complete without a cancellation slot. With one, every operation
// registers a cancellation handler in the coroutine's slot and Asio frees it when the operation
// completes: with many connections those blocks overflow its per-thread cache (two blocks), and
// measured with uprobes on malloc that cost about one malloc per message, two per request through
// a tcp listener (HAProxy's mode tcp: none). Nothing here needs the slot: a direction that ends
// closes both streams, which aborts whatever the other direction is waiting for.
auto uncancelled() { return asio::bind_cancellation_slot(asio::cancellation_slot(), nothrow); }

// A pipe for splice(2), closed when done.
struct pipe_pair {
  int r = -1;
  int w = -1;
  pipe_pair() {
    int fds[2];
    if (::pipe2(fds, O_NONBLOCK | O_CLOEXEC) == 0) {
      r = fds[0];
      w = fds[1];
    }
  }
  ~pipe_pair() {
    if (r >= 0) {
      ::close(r);
      ::close(w);
    }
  }
  pipe_pair(const pipe_pair&) = delete;
  pipe_pair& operator=(const pipe_pair&) = delete;
};

constexpr std::size_t splice_chunk = 64 * 1024;  // the default pipe capacity

// Moves bytes from `from` to `to` with splice(2) through `pipe` until `limit` bytes have moved
// (then nullopt) or the direction ends (`from`'s EOF, which is not passed on here, or a failure,
// which closes both streams when `close_on_failure`).
asio::awaitable<std::optional<relay_end>> splice_through(const pipe_pair& pipe, tls::stream& from, tls::stream& to,
                                                         std::uint64_t limit, bool close_on_failure,
                                                         std::chrono::steady_clock::time_point& idle_deadline,
                                                         std::chrono::steady_clock::duration idle,
                                                         std::uint64_t* bytes) {
  boost::system::error_code ec;
  from.socket().native_non_blocking(true, ec);
  to.socket().native_non_blocking(true, ec);
  const int in = from.socket().native_handle();
  const int out = to.socket().native_handle();
  auto fail = [&](relay_end how) {
    if (close_on_failure) {
      from.close();
      to.close();
    }
    return how;
  };
  std::uint64_t moved = 0;
  while (moved < limit) {
    if (!from.socket().is_open() || !to.socket().is_open()) {
      co_return fail(relay_end::aborted);  // closed by the watchdog or the other direction meanwhile
    }
    const auto want = static_cast<std::size_t>(std::min<std::uint64_t>(splice_chunk, limit - moved));
    ssize_t n = ::splice(in, nullptr, pipe.w, nullptr, want, SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
    if (n == 0) {
      co_return relay_end::eof;
    }
    if (n < 0) {
      if (errno == EINTR) {
        continue;
      }
      if (errno != EAGAIN) {
        co_return fail(relay_end::read_failed);
      }
      auto [wec] = co_await from.socket().async_wait(asio::socket_base::wait_read, nothrow);
      if (wec || !from.socket().is_open()) {
        co_return fail(relay_end::aborted);
      }
      continue;
    }
    idle_deadline = std::chrono::steady_clock::now() + idle;
    moved += static_cast<std::uint64_t>(n);
    if (bytes != nullptr) {
      *bytes += static_cast<std::uint64_t>(n);
    }
    // Everything in the pipe goes out before more is read: the pipe never holds more than a chunk.
    while (n > 0) {
      ssize_t m =
          ::splice(pipe.r, nullptr, out, nullptr, static_cast<std::size_t>(n), SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
      if (m < 0) {
        if (errno == EINTR) {
          continue;
        }
        if (errno != EAGAIN) {
          co_return fail(relay_end::write_failed);
        }
        auto [wec] = co_await to.socket().async_wait(asio::socket_base::wait_write, nothrow);
        if (wec || !to.socket().is_open()) {
          co_return fail(relay_end::aborted);
        }
        continue;
      }
      n -= m;
    }
  }
  co_return std::nullopt;
}

// splice(2) until the end of the stream; nullopt when no pipe could be made (the caller copies).
asio::awaitable<std::optional<relay_end>> splice_relay(tls::stream& from, tls::stream& to,
                                                       std::chrono::steady_clock::time_point& idle_deadline,
                                                       std::chrono::steady_clock::duration idle, std::uint64_t* bytes) {
  pipe_pair pipe;
  if (pipe.r < 0) {
    co_return std::nullopt;
  }
  auto end = co_await splice_through(pipe, from, to, std::numeric_limits<std::uint64_t>::max(), true, idle_deadline,
                                     idle, bytes);
  if (end == relay_end::eof) {
    co_await to.shutdown_send();  // pass the FIN on; the other way stays open
  }
  co_return end;
}

}  // namespace

asio::awaitable<relay_end> relay(tls::stream& from, tls::stream& to,
                                 std::chrono::steady_clock::time_point& idle_deadline,
                                 std::chrono::steady_clock::duration idle, std::uint64_t* bytes, bool zero_copy) {
  // splice(2) only pays off for bulk data (measured: +15-20% on 1 MiB transfers, but -10% on small
  // request/response traffic, where it costs an extra system call per message). So the copy loop
  // runs first, and a read that fills the whole buffer switches the direction to splice.
  bool splice_ok = zero_copy && !from.is_tls() && !to.is_tls();
  std::array<char, 16384> buf;
  while (true) {
    auto [ec, n] = co_await from.async_read_some(asio::buffer(buf), uncancelled());
    if (ec) {
      if (tls::is_eof(ec)) {
        co_await to.shutdown_send();  // pass the FIN on; the other way stays open
        co_return relay_end::eof;
      }
      // A reset or an error: nothing more will flow either way.
      const bool aborted = ec == asio::error::operation_aborted || !from.socket().is_open();
      from.close();
      to.close();
      co_return aborted ? relay_end::aborted : relay_end::read_failed;
    }
    idle_deadline = std::chrono::steady_clock::now() + idle;
    // One send made on the spot (plain TCP): a small message goes whole, with no reactor
    // operation and no completion run later. Whatever the socket did not take (or TLS), with
    // write_some in a loop: asio::async_write's composed operation would take the coroutine's
    // slot again.
    boost::system::error_code wec;
    std::size_t sent = 0;
    std::tie(wec, sent) = to.try_write(tls::stream::buffer_list::of(asio::const_buffer(buf.data(), n)));
    while (!wec && sent < n) {
      std::size_t wn = 0;
      std::tie(wec, wn) = co_await to.async_write_some(asio::buffer(buf.data() + sent, n - sent), uncancelled());
      sent += wn;
    }
    if (wec) {
      const bool aborted = wec == asio::error::operation_aborted || !to.socket().is_open();
      from.close();
      to.close();
      co_return aborted ? relay_end::aborted : relay_end::write_failed;
    }
    if (bytes != nullptr) {
      *bytes += n;
    }
    if (splice_ok && n == buf.size()) {
      if (auto done = co_await splice_relay(from, to, idle_deadline, idle, bytes)) {
        co_return *done;
      }
      splice_ok = false;  // no pipe to be had: keep copying
    }
  }
}

asio::awaitable<splice_result> splice_exact(tls::stream& from, tls::stream& to, std::uint64_t count,
                                            std::uint64_t& moved) {
  pipe_pair pipe;
  if (pipe.r < 0) {
    co_return splice_result::no_pipe;
  }
  auto unused_deadline = std::chrono::steady_clock::time_point{};
  auto end = co_await splice_through(pipe, from, to, count, false, unused_deadline, {}, &moved);
  if (!end) {
    co_return splice_result::done;
  }
  switch (*end) {
    case relay_end::eof:
      co_return splice_result::truncated;
    case relay_end::read_failed:
      co_return splice_result::read_failed;
    case relay_end::write_failed:
      co_return splice_result::write_failed;
    case relay_end::aborted:
      break;
  }
  co_return splice_result::aborted;
}

}  // namespace spillway::proxy
