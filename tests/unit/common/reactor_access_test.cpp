// read_some_exhausting (src/common/reactor_access.h) on real loopback sockets: a short read leaves
// the next one to epoll (no recv(2) that finds nothing), and nothing that came is ever left unread:
// bytes, a FIN or a reset that came with the bytes a short read took, bytes epoll reported while no
// read was pending.

#include "common/reactor_access.h"

#include "support/loopback_pair.h"

#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/bind_executor.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/write.hpp>

#include <dlfcn.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <cstdarg>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace {
std::atomic<int> recv_calls{0};
}  // namespace

// Every recv(2) of this test binary goes through here and is counted (then made as usual): glibc's
// recv, and syscall(SYS_recvfrom, ...), which socket_calls::recv makes.
extern "C" ssize_t recv(int fd, void* buf, size_t n, int flags) {
  using recv_fn = ssize_t (*)(int, void*, size_t, int);
  static const auto real = reinterpret_cast<recv_fn>(::dlsym(RTLD_NEXT, "recv"));
  recv_calls.fetch_add(1, std::memory_order_relaxed);
  return real(fd, buf, n, flags);
}

// syscall(2) takes up to six arguments in registers whatever the call; the real one is given all
// six, as it reads them. The real one is looked up without a function-local static: a static's
// guard waits with syscall(SYS_futex), which would come back here.
extern "C" long syscall(long number, ...) noexcept {
  using syscall_fn = long (*)(long, ...);
  static std::atomic<syscall_fn> found{nullptr};
  auto real = found.load(std::memory_order_relaxed);
  if (real == nullptr) {
    real = reinterpret_cast<syscall_fn>(::dlsym(RTLD_NEXT, "syscall"));
    found.store(real, std::memory_order_relaxed);
  }
  va_list ap;
  va_start(ap, number);
  long a[6];
  for (auto& x : a) {
    x = va_arg(ap, long);
  }
  va_end(ap);
  if (number == SYS_recvfrom) {
    recv_calls.fetch_add(1, std::memory_order_relaxed);
  }
  return real(number, a[0], a[1], a[2], a[3], a[4], a[5]);
}

namespace spillway::reactor_access {
namespace {

using tcp = asio::ip::tcp;

using pair = spillway::test_support::loopback_pair;

struct result {
  boost::system::error_code ec;
  std::string bytes;
};

// One read of up to `size` bytes through read_some_exhausting (or Asio's own, `asio_own`);
// `done` is set by its handler.
struct reader {
  reader(pair& p, std::size_t size) : p(p), buf(size) {}
  void start(bool asio_own = false) {
    done.reset();
    auto handler = [this](boost::system::error_code ec, std::size_t n) {
      done = result{ec, std::string(buf.data(), n)};
    };
    if (asio_own) {
      p.ours.async_read_some(asio::buffer(buf), handler);
    } else {
      read_some_exhausting(p.ours, cached, asio::buffer(buf), handler);
    }
  }
  // Starts the read and runs what is ready, so that (with nothing to read) it waits in the reactor.
  void start_waiting(asio::io_context& io, bool asio_own = false) {
    start(asio_own);
    io.restart();
    io.poll();
  }
  // Runs `io` until the read completes or `limit` passes.
  void wait(asio::io_context& io, std::chrono::milliseconds limit = std::chrono::seconds(5)) {
    const auto until = std::chrono::steady_clock::now() + limit;
    while (!done && std::chrono::steady_clock::now() < until) {
      io.restart();
      io.run_one_until(until);
    }
  }
  pair& p;
  std::vector<char> buf;
  reactor* cached = nullptr;
  std::optional<result> done;
};

TEST(reactor_access, a_short_read_leaves_the_next_read_to_epoll_instead_of_a_recv_that_finds_nothing) {
  asio::io_context io;
  pair p(io);
  reader r(p, 16);
  asio::write(p.theirs, asio::buffer("abc", 3));
  r.start();
  r.wait(io);
  ASSERT_TRUE(r.done);
  EXPECT_EQ(r.done->bytes, "abc");
  // Nothing has come: the next read asks the kernel nothing and waits.
  recv_calls = 0;
  r.start_waiting(io);
  EXPECT_FALSE(r.done);
  EXPECT_EQ(recv_calls.load(), 0);
  // What comes is read when epoll reports it.
  asio::write(p.theirs, asio::buffer("de", 2));
  r.wait(io);
  ASSERT_TRUE(r.done);
  EXPECT_EQ(r.done->bytes, "de");
  EXPECT_EQ(recv_calls.load(), 1);

  // Asio's own read, for comparison: after a short read, its next read is a recv that finds nothing.
  asio::write(p.theirs, asio::buffer("f", 1));
  r.start(true);
  r.wait(io);
  ASSERT_TRUE(r.done);
  EXPECT_EQ(r.done->bytes, "f");
  recv_calls = 0;
  r.start_waiting(io, true);
  EXPECT_FALSE(r.done);
  EXPECT_EQ(recv_calls.load(), 1);  // the EAGAIN read_some_exhausting saves
  p.theirs.close();
  r.wait(io);
}

TEST(reactor_access, a_fin_that_came_with_the_bytes_a_short_read_took_ends_the_next_read_at_once) {
  asio::io_context io;
  pair p(io);
  reader r(p, 16);
  r.start_waiting(io);  // waiting before anything comes: the bytes and the FIN are reported by one event
  ASSERT_FALSE(r.done);
  asio::write(p.theirs, asio::buffer("abc", 3));
  p.theirs.shutdown(tcp::socket::shutdown_send);  // on loopback both are in our queue on return
  r.wait(io);
  ASSERT_TRUE(r.done);
  EXPECT_EQ(r.done->bytes, "abc");
  r.start();
  r.wait(io, std::chrono::seconds(2));
  ASSERT_TRUE(r.done) << "the FIN was left unread";
  EXPECT_EQ(r.done->ec, asio::error::eof);
}

TEST(reactor_access, a_fin_with_the_bytes_before_the_first_read_ends_the_next_read_at_once) {
  asio::io_context io;
  pair p(io);
  reader r(p, 16);
  asio::write(p.theirs, asio::buffer("abc", 3));
  p.theirs.shutdown(tcp::socket::shutdown_send);
  io.restart();
  io.poll();  // epoll reports both before the socket is registered for RDHUP
  r.start();  // the first read on the socket: tried at once
  r.wait(io);
  ASSERT_TRUE(r.done);
  EXPECT_EQ(r.done->bytes, "abc");
  r.start();
  r.wait(io, std::chrono::seconds(2));
  ASSERT_TRUE(r.done) << "the FIN was left unread";
  EXPECT_EQ(r.done->ec, asio::error::eof);
}

TEST(reactor_access, a_reset_that_came_with_the_bytes_fails_the_next_read_at_once) {
  asio::io_context io;
  pair p(io);
  reader r(p, 16);
  r.start_waiting(io);
  asio::write(p.theirs, asio::buffer("abc", 3));
  p.theirs.set_option(asio::socket_base::linger(true, 0));
  p.theirs.close();  // RST
  r.wait(io);
  ASSERT_TRUE(r.done);
  if (!r.done->ec) {  // the reset may discard the bytes; if they came, the reset comes next
    EXPECT_EQ(r.done->bytes, "abc");
    r.start();
    r.wait(io, std::chrono::seconds(2));
    ASSERT_TRUE(r.done) << "the reset was left unread";
  }
  EXPECT_TRUE(r.done->ec);
}

TEST(reactor_access, a_read_that_fills_the_buffer_tries_the_next_at_once) {
  asio::io_context io;
  pair p(io);
  reader r(p, 4);
  asio::write(p.theirs, asio::buffer("abcdefgh", 8));
  r.start();
  r.wait(io);
  ASSERT_TRUE(r.done);
  EXPECT_EQ(r.done->bytes, "abcd");
  recv_calls = 0;
  r.start();  // more may be there (it is): read now, no event will say so again
  r.wait(io);
  ASSERT_TRUE(r.done);
  EXPECT_EQ(r.done->bytes, "efgh");
  EXPECT_EQ(recv_calls.load(), 1);
}

TEST(reactor_access, bytes_epoll_reported_while_no_read_was_pending_are_read_by_the_next) {
  asio::io_context io;
  pair p(io);
  reader r(p, 16);
  asio::write(p.theirs, asio::buffer("a", 1));
  r.start();
  r.wait(io);
  ASSERT_TRUE(r.done);
  asio::write(p.theirs, asio::buffer("b", 1));
  io.restart();
  io.poll();  // epoll reports the socket; no read is pending to take it
  r.start();
  r.wait(io, std::chrono::seconds(2));
  ASSERT_TRUE(r.done) << "an event reported with no read pending was lost";
  EXPECT_EQ(r.done->bytes, "b");
}

TEST(reactor_access, urgent_data_behind_the_bytes_is_not_left_unread) {
  asio::io_context io;
  pair p(io);
  reader r(p, 16);
  r.start_waiting(io);
  asio::write(p.theirs, asio::buffer("abc", 3));
  p.theirs.send(asio::buffer("!", 1), tcp::socket::message_out_of_band);
  asio::write(p.theirs, asio::buffer("def", 3));
  std::string got;
  for (int i = 0; i < 4 && got.size() < 6; ++i) {  // recv stops before the urgent byte
    r.wait(io, std::chrono::seconds(2));
    ASSERT_TRUE(r.done) << "bytes behind urgent data were left unread; got " << got;
    ASSERT_FALSE(r.done->ec);
    got += r.done->bytes;
    if (got.size() < 6) {
      r.start();
    }
  }
  EXPECT_EQ(got, "abcdef");
}

TEST(reactor_access, a_handler_with_its_own_executor_takes_asios_path) {
  asio::io_context io;
  asio::io_context other;
  pair p(io);
  std::array<char, 16> buf;
  reactor* cached = nullptr;
  std::optional<std::size_t> got;
  read_some_exhausting(p.ours, cached, asio::buffer(buf),
                       asio::bind_executor(other, [&](boost::system::error_code, std::size_t n) { got = n; }));
  asio::write(p.theirs, asio::buffer("abc", 3));
  io.run_one_for(std::chrono::seconds(2));
  EXPECT_FALSE(got);  // dispatched to its executor, not run on the socket's thread
  other.run_one_for(std::chrono::seconds(2));
  ASSERT_TRUE(got);
  EXPECT_EQ(*got, 3u);
}

TEST(reactor_access, cancel_and_close_end_a_pending_read_with_operation_aborted) {
  asio::io_context io;
  pair p(io);
  reader r(p, 16);
  r.start_waiting(io);
  p.ours.cancel();
  r.wait(io);
  ASSERT_TRUE(r.done);
  EXPECT_EQ(r.done->ec, asio::error::operation_aborted);
  r.start_waiting(io);
  p.ours.close();
  r.wait(io);
  ASSERT_TRUE(r.done);
  EXPECT_EQ(r.done->ec, asio::error::operation_aborted);
  // A closed socket: Asio's own read answers (bad descriptor), as it would.
  r.start();
  r.wait(io);
  ASSERT_TRUE(r.done);
  EXPECT_TRUE(r.done->ec);
}

TEST(reactor_access, a_read_pending_when_the_io_context_goes_is_destroyed_with_it) {
  auto io = std::make_unique<asio::io_context>();
  auto p = std::make_unique<pair>(*io);
  auto alive = std::make_shared<int>(0);
  std::weak_ptr<int> watch = alive;
  reactor* cached = nullptr;
  std::array<char, 16> buf;
  bool called = false;
  read_some_exhausting(p->ours, cached, asio::buffer(buf),
                       [keep = std::move(alive), &called](boost::system::error_code, std::size_t) { called = true; });
  io->poll();
  p.reset();   // the socket closes: the read completes aborted, not yet run
  io.reset();  // the handler is destroyed, not called
  EXPECT_FALSE(called);
  EXPECT_TRUE(watch.expired());
}

// ---- async_connect_nodelay ----

struct connect_result {
  std::optional<boost::system::error_code> ec;
  void start(tcp::socket& s, const tcp::endpoint& ep) {
    async_connect_nodelay(s, ep, [this](boost::system::error_code e) { ec = e; });
  }
};

bool nodelay(tcp::socket& s) {
  tcp::no_delay opt;
  s.get_option(opt);
  return opt.value();
}

TEST(reactor_access, connect_opens_a_non_blocking_socket_with_nodelay_and_connects_it) {
  asio::io_context io;
  tcp::acceptor acceptor(io, tcp::endpoint(asio::ip::address_v4::loopback(), 0));
  tcp::socket s(io);
  connect_result c;
  c.start(s, acceptor.local_endpoint());
  io.run_for(std::chrono::seconds(2));
  ASSERT_TRUE(c.ec);
  EXPECT_FALSE(*c.ec) << c.ec->message();
  ASSERT_TRUE(s.is_open());
  EXPECT_TRUE(nodelay(s));
  EXPECT_NE(::fcntl(s.native_handle(), F_GETFL) & O_NONBLOCK, 0);
  EXPECT_EQ(s.remote_endpoint(), acceptor.local_endpoint());
  // The connection carries bytes both ways, with our reads and Asio's writes on it.
  auto peer = acceptor.accept();
  asio::write(peer, asio::buffer("ping", 4));
  std::array<char, 16> buf;
  reactor* cached = nullptr;
  std::optional<std::size_t> got;
  read_some_exhausting(s, cached, asio::buffer(buf), [&](boost::system::error_code, std::size_t n) { got = n; });
  io.restart();
  io.run_one_for(std::chrono::seconds(2));
  ASSERT_TRUE(got);
  EXPECT_EQ(std::string(buf.data(), *got), "ping");
  asio::write(s, asio::buffer("pong", 4));
  std::array<char, 4> back;
  asio::read(peer, asio::buffer(back));
  EXPECT_EQ(std::string(back.data(), 4), "pong");
}

TEST(reactor_access, a_connect_nobody_listens_for_is_refused) {
  asio::io_context io;
  tcp::endpoint closed;
  {
    tcp::acceptor a(io, tcp::endpoint(asio::ip::address_v4::loopback(), 0));
    closed = a.local_endpoint();
  }
  tcp::socket s(io);
  connect_result c;
  c.start(s, closed);
  io.run_for(std::chrono::seconds(2));
  ASSERT_TRUE(c.ec);
  EXPECT_EQ(*c.ec, asio::error::connection_refused);
}

// A listener that takes no more handshakes (its accept queue full, nothing accepting): a connect
// to it stays in SYN_SENT.
struct full_listener {
  explicit full_listener(asio::io_context& io) : acceptor(io) {
    acceptor.open(tcp::v4());
    acceptor.bind(tcp::endpoint(asio::ip::address_v4::loopback(), 0));
    acceptor.listen(0);
    const auto ep = acceptor.local_endpoint();
    for (int i = 0; i < 4; ++i) {  // fills the accept queue (backlog 0 holds one, maybe two)
      const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
      ::connect(fd, ep.data(), static_cast<socklen_t>(ep.size()));  // EINPROGRESS; some never finish
      fillers.push_back(fd);
    }
  }
  ~full_listener() {
    for (int fd : fillers) {
      ::close(fd);
    }
  }
  tcp::acceptor acceptor;
  std::vector<int> fillers;
};

TEST(reactor_access, closing_the_socket_ends_a_pending_connect_with_operation_aborted) {
  asio::io_context io;
  full_listener l(io);
  tcp::socket s(io);
  connect_result c;
  c.start(s, l.acceptor.local_endpoint());
  io.poll();
  EXPECT_FALSE(c.ec);  // not answered: the SYN was dropped
  s.close();
  io.run_for(std::chrono::seconds(2));
  ASSERT_TRUE(c.ec);
  EXPECT_EQ(*c.ec, asio::error::operation_aborted);
}

TEST(reactor_access, a_connect_with_a_cancellation_slot_takes_asios_path_and_can_be_cancelled) {
  asio::io_context io;
  full_listener l(io);
  tcp::socket s(io);
  asio::cancellation_signal cancel;
  std::optional<boost::system::error_code> ec;
  async_connect_nodelay(s, l.acceptor.local_endpoint(),
                        asio::bind_cancellation_slot(cancel.slot(), [&](boost::system::error_code e) { ec = e; }));
  io.poll();
  EXPECT_FALSE(ec);
  EXPECT_TRUE(nodelay(s));  // opened here before Asio's connect
  cancel.emit(asio::cancellation_type::all);
  io.run_for(std::chrono::seconds(2));
  ASSERT_TRUE(ec);
  EXPECT_EQ(*ec, asio::error::operation_aborted);
}

TEST(reactor_access, a_connect_pending_when_the_io_context_goes_is_destroyed_with_it) {
  auto io = std::make_unique<asio::io_context>();
  auto l = std::make_unique<full_listener>(*io);
  auto s = std::make_unique<tcp::socket>(*io);
  auto alive = std::make_shared<int>(0);
  std::weak_ptr<int> watch = alive;
  bool called = false;
  async_connect_nodelay(*s, l->acceptor.local_endpoint(),
                        [keep = std::move(alive), &called](boost::system::error_code) { called = true; });
  io->poll();
  s.reset();
  l.reset();
  io.reset();
  EXPECT_FALSE(called);
  EXPECT_TRUE(watch.expired());
}

// ---- async_wait_readable ----

struct wait_result {
  std::optional<boost::system::error_code> ec;
  void start(tcp::socket& s) {
    async_wait_readable(s, [this](boost::system::error_code e) { ec = e; });
  }
  void wait(asio::io_context& io) {
    const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    while (!ec && std::chrono::steady_clock::now() < until) {
      io.restart();
      io.run_one_until(until);
    }
  }
};

TEST(reactor_access, a_readability_wait_ends_when_bytes_come_and_reads_nothing) {
  asio::io_context io;
  pair p(io);
  wait_result w;
  recv_calls = 0;
  w.start(p.ours);
  io.poll();
  EXPECT_FALSE(w.ec);  // nothing yet
  asio::write(p.theirs, asio::buffer("hi", 2));
  w.wait(io);
  ASSERT_TRUE(w.ec);
  EXPECT_FALSE(*w.ec);
  EXPECT_EQ(recv_calls.load(), 0);
  EXPECT_EQ(p.ours.available(), 2u);  // left for the reader
  // Bytes already there: the next wait ends at once (the re-arm reports them).
  w.ec.reset();
  w.start(p.ours);
  w.wait(io);
  ASSERT_TRUE(w.ec);
  EXPECT_FALSE(*w.ec);
}

TEST(reactor_access, a_readability_wait_ends_at_the_peers_close) {
  asio::io_context io;
  pair p(io);
  wait_result w;
  w.start(p.ours);
  io.poll();
  p.theirs.close();
  w.wait(io);
  ASSERT_TRUE(w.ec);
  EXPECT_FALSE(*w.ec);  // readable: the reader finds the end
}

TEST(reactor_access, cancel_and_close_end_a_readability_wait_with_operation_aborted) {
  asio::io_context io;
  pair p(io);
  wait_result w;
  w.start(p.ours);
  io.poll();
  p.ours.cancel();
  w.wait(io);
  ASSERT_TRUE(w.ec);
  EXPECT_EQ(*w.ec, asio::error::operation_aborted);
  w.ec.reset();
  w.start(p.ours);
  io.restart();
  io.poll();
  p.ours.close();
  w.wait(io);
  ASSERT_TRUE(w.ec);
  EXPECT_EQ(*w.ec, asio::error::operation_aborted);
  // A closed socket: Asio's own wait answers (bad descriptor).
  w.ec.reset();
  w.start(p.ours);
  w.wait(io);
  ASSERT_TRUE(w.ec);
  EXPECT_TRUE(*w.ec);
}

TEST(reactor_access, a_readability_wait_pending_when_the_io_context_goes_is_destroyed_with_it) {
  auto io = std::make_unique<asio::io_context>();
  auto p = std::make_unique<pair>(*io);
  auto alive = std::make_shared<int>(0);
  std::weak_ptr<int> watch = alive;
  bool called = false;
  async_wait_readable(p->ours, [keep = std::move(alive), &called](boost::system::error_code) { called = true; });
  io->poll();
  EXPECT_FALSE(watch.expired());  // the pending wait holds its handler
  p.reset();
  io.reset();
  EXPECT_FALSE(called);
  EXPECT_TRUE(watch.expired());
}

}  // namespace
}  // namespace spillway::reactor_access
