#include "proxy/idle_watch.h"

#include "common/reactor_access.h"
#include "support/loopback_pair.h"

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/write.hpp>

#include <gtest/gtest.h>

#include <array>
#include <memory>

namespace spillway::proxy {
namespace {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using state = idle_watch::state;

// `ours` runs on `io` (the proxy's side), `theirs` is the backend.
using pair = spillway::test_support::loopback_pair;

// The backend answers; the proxy reads the answer with an asynchronous read (as the response
// reader does) and starts the watch in the read's handler, the socket left empty.
void answer_and_watch(asio::io_context& io, pair& p, idle_watch& w) {
  asio::write(p.theirs, asio::buffer("HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n", 38));
  std::array<char, 1024> buf;
  bool read = false;
  p.ours.async_read_some(asio::buffer(buf), [&](boost::system::error_code ec, std::size_t n) {
    ASSERT_FALSE(ec);
    ASSERT_EQ(n, 38u);  // a short read: the socket is empty now
    w.start(p.ours);
    read = true;
  });
  while (!read && io.run_one() > 0) {
  }
  ASSERT_TRUE(read);
  ASSERT_TRUE(w.watching());
}

// Runs the reactor until `w` stops watching, at most `rounds` handlers (the events are on loopback,
// already queued: a few rounds suffice).
void run_until_fired(asio::io_context& io, const idle_watch& w, int rounds = 50) {
  for (int i = 0; i < rounds && w.watching(); ++i) {
    io.restart();
    io.run_one_for(std::chrono::milliseconds(100));
  }
}

TEST(idle_watch, a_quiet_connection_reads_quiet_and_the_socket_serves_again) {
  asio::io_context io;
  pair p(io);
  idle_watch w;
  answer_and_watch(io, p, w);
  io.restart();
  io.poll();
  EXPECT_TRUE(w.watching());
  EXPECT_EQ(w.stop(p.ours), state::quiet);
  EXPECT_FALSE(w.watching());
  // Taken out of the read queue and freed on the spot: no completion runs, and the scheduler's
  // count of outstanding work went down with it (run() finds nothing left to wait for and returns).
  io.restart();
  EXPECT_EQ(io.poll(), 0u);
  io.restart();
  EXPECT_EQ(io.run_for(std::chrono::seconds(5)), 0u);
  EXPECT_TRUE(io.stopped());
  // The socket's read queue is clear: the next request's answer is read as usual.
  asio::write(p.theirs, asio::buffer("next", 4));
  std::array<char, 16> buf;
  std::size_t got = 0;
  p.ours.async_read_some(asio::buffer(buf), [&](boost::system::error_code ec, std::size_t n) {
    EXPECT_FALSE(ec);
    got = n;
  });
  io.restart();
  io.run_one_for(std::chrono::seconds(5));
  EXPECT_EQ(got, 4u);
  EXPECT_EQ(w.stop(p.ours), state::off);  // no longer watching: the caller would peek
}

TEST(idle_watch, bytes_sent_while_idle_stir_it) {
  asio::io_context io;
  pair p(io);
  idle_watch w;
  answer_and_watch(io, p, w);
  asio::write(p.theirs, asio::buffer("HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nEVIL!", 43));
  run_until_fired(io, w);
  EXPECT_FALSE(w.watching());
  EXPECT_EQ(w.stop(p.ours), state::stirred);
  std::array<char, 64> buf;  // the bytes are still there: the watch only peeked
  EXPECT_EQ(p.ours.read_some(asio::buffer(buf)), 43u);
}

TEST(idle_watch, a_close_while_idle_stirs_it) {
  asio::io_context io;
  pair p(io);
  idle_watch w;
  answer_and_watch(io, p, w);
  p.theirs.close();
  run_until_fired(io, w);
  EXPECT_EQ(w.stop(p.ours), state::stirred);
}

TEST(idle_watch, an_event_left_from_the_answer_is_not_a_stir) {
  asio::io_context io;
  pair p(io);
  idle_watch w;
  // The answer arrives and is read without the reactor (epoll may still report its arrival), then
  // the watch starts on the empty socket.
  asio::write(p.theirs, asio::buffer("answer", 6));
  std::array<char, 64> buf;
  p.ours.non_blocking(false);
  ASSERT_EQ(p.ours.read_some(asio::buffer(buf)), 6u);
  w.start(p.ours);
  io.restart();
  io.run_for(std::chrono::milliseconds(50));  // if the old arrival is reported: one peek, EAGAIN
  EXPECT_TRUE(w.watching());
  EXPECT_EQ(w.stop(p.ours), state::quiet);
}

TEST(idle_watch, a_closed_socket_is_never_quiet) {
  asio::io_context io;
  pair p(io);
  idle_watch w;
  answer_and_watch(io, p, w);
  p.ours.close();  // aborts the watch
  EXPECT_EQ(w.stop(p.ours), state::stirred);
  io.restart();
  io.poll();
}

TEST(idle_watch, the_connection_may_go_first_or_the_reactor) {
  {
    // The connection (watch, then socket) is destroyed while watching; the reactor frees the op.
    asio::io_context io;
    auto p = std::make_unique<pair>(io);
    auto w = std::make_unique<idle_watch>();
    answer_and_watch(io, *p, *w);
    w.reset();
    p.reset();
    io.restart();
    io.poll();
  }
  {
    // The io_context is destroyed with the watch pending (as at a worker's end, when connections
    // held by coroutine frames go with it): the reactor destroys the op and unhooks the watch.
    auto w = std::make_unique<idle_watch>();
    {
      asio::io_context io;
      auto p = std::make_shared<pair>(io);
      answer_and_watch(io, *p, *w);
      asio::post(io, [p] {});  // a pending handler holds the sockets until io goes
      p.reset();
    }
    EXPECT_FALSE(w->watching());
  }
}

// The response read as the proxy reads it (tls::stream's plain reads: a short read leaves the next
// one to epoll), after an earlier exchange on the connection (as a pooled connection has had), the
// read waiting before the response comes; `between` runs after the read completed and before the
// watch starts.
template <typename Between>
void answer_read_then_watch(asio::io_context& io, pair& p, idle_watch& w, bool fin, Between between) {
  std::array<char, 1024> buf;
  reactor_access::reactor* cached = nullptr;
  std::size_t got = 0;
  bool read = false;
  auto start_read = [&] {
    read = false;
    reactor_access::read_some_exhausting(p.ours, cached, asio::buffer(buf),
                                         [&](boost::system::error_code ec, std::size_t n) {
                                           ASSERT_FALSE(ec);
                                           got = n;
                                           read = true;
                                         });
  };
  asio::write(p.theirs, asio::buffer("x", 1));  // the earlier exchange
  start_read();
  while (!read && io.run_one() > 0) {
  }
  ASSERT_TRUE(read);
  start_read();  // waiting for the response
  io.restart();
  io.poll();
  ASSERT_FALSE(read);
  asio::write(p.theirs, asio::buffer("HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n", 38));
  if (fin) {
    p.theirs.shutdown(tcp::socket::shutdown_send);  // the FIN comes with the response's bytes
  }
  io.restart();
  while (!read && io.run_one() > 0) {
  }
  ASSERT_TRUE(read);
  ASSERT_EQ(got, 38u);  // a short read
  between();
  w.start(p.ours);
}

TEST(idle_watch, bytes_epoll_reported_before_the_watch_started_stir_it) {
  asio::io_context io;
  pair p(io);
  idle_watch w;
  answer_read_then_watch(io, p, w, false, [&] {
    asio::write(p.theirs, asio::buffer("stray", 5));
    io.restart();
    io.poll();  // reported while nothing waits on the socket
  });
  run_until_fired(io, w);
  EXPECT_EQ(w.stop(p.ours), state::stirred);
}

TEST(idle_watch, a_fin_that_came_with_the_responses_last_bytes_stirs_it) {
  asio::io_context io;
  pair p(io);
  idle_watch w;
  answer_read_then_watch(io, p, w, true, [] {});
  run_until_fired(io, w);
  EXPECT_EQ(w.stop(p.ours), state::stirred);
}

TEST(idle_watch, a_quiet_connection_read_the_proxys_way_reads_quiet) {
  asio::io_context io;
  pair p(io);
  idle_watch w;
  answer_read_then_watch(io, p, w, false, [] {});
  io.restart();
  io.poll();
  EXPECT_TRUE(w.watching());
  EXPECT_EQ(w.stop(p.ours), state::quiet);
  io.restart();
  io.poll();
}

}  // namespace
}  // namespace spillway::proxy
