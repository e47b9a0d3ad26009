#include "proxy/relay.h"

#include "common/completion.h"

#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <limits>
#include <memory>
#include <optional>
#include <tuple>

namespace spillway::proxy {

namespace asio = boost::asio;

namespace {

// The copy loop of one direction, driven by plain completion handlers: per message a read and
// (nearly always) one send made on the spot, and no coroutine resumed. As a coroutine, every read
// cost an awaitable initiation (a frame of its own), a handler resuming the coroutine, an executor
// copy and a cancellation slot cleared. run() completes once, when the loop stops: the sender's
// EOF, a failure (both streams closed, so that the other direction ends too), or, with `bulk`, a
// read that filled the buffer (the caller switches to splice). The loop outlives every operation
// it starts: its owner waits for run() to complete.
//
// Its reads and writes have no cancellation slot. With the coroutine's, every operation registered
// a cancellation handler there and Asio freed it when the operation completed: with many
// connections those blocks overflowed its per-thread cache (two blocks), measured with uprobes on
// malloc at about one malloc per message (HAProxy's mode tcp: none). Nothing here needs a slot: a
// direction that ends closes both streams, which aborts whatever the other one is waiting for.
class copy_loop {
 public:
  enum class stop { eof, read_failed, write_failed, aborted, bulk };

  copy_loop(tls::stream& from, tls::stream& to, std::chrono::steady_clock::time_point& idle_deadline,
            std::chrono::steady_clock::duration idle, std::uint64_t* bytes)
      : from_(from), to_(to), idle_deadline_(idle_deadline), idle_(idle), bytes_(bytes) {}

  template <typename Token>
  auto run(bool bulk, Token&& token) {
    return asio::async_initiate<Token, void(stop)>(
        [this, bulk](auto handler) {
          bulk_ = bulk;
          read(std::make_unique<done_impl<decltype(handler)>>(std::move(handler)));
        },
        token);
  }

 private:
  // run()'s handler. The operation in flight owns it (not the loop, which lives in the frame of
  // the coroutine that handler resumes): an io_context destroyed with the operation pending
  // destroys the handler and with it that coroutine, as it would an Asio operation's. (Not
  // asio::any_completion_handler: Boost 1.81's recurses without end when moved.)
  struct done_base {
    virtual ~done_base() = default;
    virtual void call(stop s) = 0;
  };
  template <typename Handler>
  struct done_impl final : done_base {
    explicit done_impl(Handler&& h) : handler(std::move(h)) {}
    void call(stop s) override { std::move(handler)(s); }
    Handler handler;
  };
  using done_ptr = std::unique_ptr<done_base>;

  struct on_read {
    copy_loop* self;
    done_ptr done;
    void operator()(boost::system::error_code ec, std::size_t n) { self->got(std::move(done), ec, n); }
  };
  struct on_written {
    copy_loop* self;
    done_ptr done;
    void operator()(boost::system::error_code ec, std::size_t n) { self->wrote(std::move(done), ec, n); }
  };

  void read(done_ptr done) { from_.async_read_some(asio::buffer(buf_), on_read{this, std::move(done)}); }

  void got(done_ptr done, boost::system::error_code ec, std::size_t n) {
    if (ec) {
      if (tls::is_eof(ec)) {
        finish(std::move(done), stop::eof);
        return;
      }
      // A reset or an error: nothing more will flow either way.
      const bool aborted = ec == asio::error::operation_aborted || !from_.socket().is_open();
      from_.close();
      to_.close();
      finish(std::move(done), aborted ? stop::aborted : stop::read_failed);
      return;
    }
    idle_deadline_ = std::chrono::steady_clock::now() + idle_;
    n_ = n;
    // One send made on the spot (plain TCP): a small message goes whole, with no reactor operation
    // and no completion run later. Whatever the socket did not take (or TLS) goes with write_some
    // (asio::async_write's composed operation would allocate its state per message).
    auto [wec, sent] = to_.try_write(tls::stream::buffer_list::of(asio::const_buffer(buf_.data(), n)));
    sent_ = 0;
    wrote(std::move(done), wec, sent);
  }

  void wrote(done_ptr done, boost::system::error_code ec, std::size_t n) {
    if (ec) {
      const bool aborted = ec == asio::error::operation_aborted || !to_.socket().is_open();
      from_.close();
      to_.close();
      finish(std::move(done), aborted ? stop::aborted : stop::write_failed);
      return;
    }
    sent_ += n;
    if (sent_ < n_) {
      to_.async_write_some(asio::buffer(buf_.data() + sent_, n_ - sent_), on_written{this, std::move(done)});
      return;
    }
    if (bytes_ != nullptr) {
      *bytes_ += n_;
    }
    if (bulk_ && n_ == buf_.size()) {
      finish(std::move(done), stop::bulk);
      return;
    }
    read(std::move(done));
  }

  // Completes run(): the coroutine resumes in it and may end, destroying the loop, so the caller
  // touches nothing after.
  static void finish(done_ptr done, stop s) { done->call(s); }

  tls::stream& from_;
  tls::stream& to_;
  std::chrono::steady_clock::time_point& idle_deadline_;
  std::chrono::steady_clock::duration idle_;
  std::uint64_t* bytes_;
  bool bulk_ = false;
  std::size_t n_ = 0;     // bytes of the message being written
  std::size_t sent_ = 0;  // ... written so far
  std::array<char, 16384> buf_;
};

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
  copy_loop loop(from, to, idle_deadline, idle, bytes);
  while (true) {
    switch (co_await loop.run(splice_ok, asio::use_awaitable)) {
      case copy_loop::stop::eof:
        co_await to.shutdown_send();  // pass the FIN on; the other way stays open
        co_return relay_end::eof;
      case copy_loop::stop::read_failed:
        co_return relay_end::read_failed;
      case copy_loop::stop::write_failed:
        co_return relay_end::write_failed;
      case copy_loop::stop::aborted:
        co_return relay_end::aborted;
      case copy_loop::stop::bulk:
        if (auto done = co_await splice_relay(from, to, idle_deadline, idle, bytes)) {
          co_return *done;
        }
        splice_ok = false;  // no pipe to be had: keep copying
        break;
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
