// tls::stream::write_all on a plain socket, on real loopback sockets: what the socket takes goes at
// once (one sendmsg made on the spot), what a full socket buffer leaves goes later in order, and
// errors are reported, not thrown.

#include "tls/stream.h"

#include "support/loopback_pair.h"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <gtest/gtest.h>

#include <array>
#include <optional>
#include <string>
#include <thread>

namespace spillway::tls {
namespace {

namespace asio = boost::asio;

// A pattern nobody could mistake for another slice of it.
std::string pattern(std::size_t n, char salt) {
  std::string s(n, '\0');
  for (std::size_t i = 0; i < n; ++i) {
    s[i] = static_cast<char>('a' + (i * 7 + static_cast<std::size_t>(salt)) % 26);
  }
  return s;
}

// Runs `s.write_all(buffers)` to its end on `io` while a thread reads got.size() bytes on the peer.
template <typename Buffers>
std::tuple<boost::system::error_code, std::size_t> write_all(asio::io_context& io, stream& s, const Buffers& buffers,
                                                             asio::ip::tcp::socket& peer, std::string& got) {
  std::thread reader([&] {
    boost::system::error_code ignored;
    asio::read(peer, asio::buffer(got), ignored);
  });
  std::optional<std::tuple<boost::system::error_code, std::size_t>> result;
  asio::co_spawn(
      io, [&]() -> asio::awaitable<void> { result = co_await s.write_all(buffers); }, asio::detached);
  io.restart();
  io.run();
  reader.join();
  return result.value();
}

TEST(stream_write, a_small_write_goes_whole_in_buffer_order) {
  asio::io_context io;
  test_support::loopback_pair p(io);
  stream s(std::move(p.ours));
  const std::string head = "HTTP/1.1 200 OK\r\n\r\n", body = "hello";
  std::array<asio::const_buffer, 3> bufs{asio::buffer(head), asio::const_buffer(), asio::buffer(body)};
  std::string got(head.size() + body.size(), '\0');
  auto [ec, n] = write_all(io, s, bufs, p.theirs, got);
  EXPECT_FALSE(ec);
  EXPECT_EQ(n, head.size() + body.size());
  EXPECT_EQ(got, head + body);
}

TEST(stream_write, what_a_full_socket_buffer_leaves_goes_later_in_order) {
  asio::io_context io;
  test_support::loopback_pair p(io);
  p.ours.set_option(asio::socket_base::send_buffer_size(65536));
  stream s(std::move(p.ours));
  // Far more than the socket buffers hold: the first sendmsg takes part of `a`, the rest waits.
  const auto a = pattern(3 << 20, 1), b = pattern(1 << 20, 2);
  std::array<asio::const_buffer, 2> bufs{asio::buffer(a), asio::buffer(b)};
  std::string got(a.size() + b.size(), '\0');
  auto [ec, n] = write_all(io, s, bufs, p.theirs, got);
  EXPECT_FALSE(ec);
  EXPECT_EQ(n, a.size() + b.size());
  EXPECT_TRUE(got == a + b) << "bytes out of order or lost";
}

TEST(stream_write, a_peer_that_reset_or_a_closed_stream_is_an_error_not_an_exception) {
  asio::io_context io;
  test_support::loopback_pair p(io);
  stream s(std::move(p.ours));
  p.theirs.set_option(asio::socket_base::linger(true, 0));
  p.theirs.close();  // RST
  const auto data = pattern(4096, 3);
  std::optional<boost::system::error_code> reset, closed;
  asio::co_spawn(
      io,
      [&]() -> asio::awaitable<void> {
        // The first sends may still be taken before the reset is seen.
        for (int i = 0; i < 10 && !reset; ++i) {
          auto [ec, n] = co_await s.write_all(asio::buffer(data));
          if (ec) {
            reset = ec;
          }
        }
        s.close();
        auto [ec, n] = co_await s.write_all(asio::buffer(data));
        closed = ec;
      },
      asio::detached);
  io.run();
  ASSERT_TRUE(reset);
  EXPECT_TRUE(*reset);
  ASSERT_TRUE(closed);
  EXPECT_TRUE(*closed);
}

// try_write, the step relays make on their own: it never waits. One buffer (send) or several
// (sendmsg) go at once; a full socket takes part and then nothing, without blocking; a closed
// stream is an error.
TEST(stream_write, try_write_takes_what_the_socket_takes_and_never_waits) {
  asio::io_context io;
  test_support::loopback_pair p(io);
  p.ours.set_option(asio::socket_base::send_buffer_size(65536));
  stream s(std::move(p.ours));
  const std::string one = "GET / HTTP/1.1\r\n\r\n";
  auto [ec1, n1] = s.try_write(stream::buffer_list::of(asio::buffer(one)));
  EXPECT_FALSE(ec1);
  EXPECT_EQ(n1, one.size());
  const std::string head = "HTTP/1.1 200 OK\r\n\r\n", body = "hello";
  std::array<asio::const_buffer, 3> bufs{asio::buffer(head), asio::const_buffer(), asio::buffer(body)};
  auto [ec2, n2] = s.try_write(stream::buffer_list::of(bufs));
  EXPECT_FALSE(ec2);
  EXPECT_EQ(n2, head.size() + body.size());
  std::string got(one.size() + head.size() + body.size(), '\0');
  asio::read(p.theirs, asio::buffer(got));
  EXPECT_EQ(got, one + head + body);

  // Nobody reads: the socket buffers fill, a write takes part, then nothing.
  const auto big = pattern(1 << 20, 4);
  std::size_t taken = 0, zeros = 0;
  for (int i = 0; i < 64 && zeros == 0; ++i) {
    auto [ec, n] = s.try_write(stream::buffer_list::of(asio::buffer(big)));
    ASSERT_FALSE(ec);
    taken += n;
    zeros += n == 0 ? 1 : 0;
  }
  EXPECT_GT(taken, 0u);
  EXPECT_LT(taken, 64u * big.size());
  EXPECT_EQ(zeros, 1u) << "a full socket must take nothing, not block";

  s.close();
  auto [ec3, n3] = s.try_write(stream::buffer_list::of(asio::buffer(one)));
  EXPECT_TRUE(ec3);
  EXPECT_EQ(n3, 0u);
}

// start_write / finish_write, write_all in two steps for hot paths: what the socket takes whole
// leaves nothing pending (no coroutine needed); a write bigger than the socket buffers is pending
// with the rest, which finish_write sends after it, counted in `written`; a closed stream is an
// error with nothing pending.
TEST(stream_write, start_write_leaves_only_what_the_socket_did_not_take_for_finish_write) {
  asio::io_context io;
  test_support::loopback_pair p(io);
  p.ours.set_option(asio::socket_base::send_buffer_size(65536));
  stream s(std::move(p.ours));
  const std::string head = "HTTP/1.1 200 OK\r\n\r\n", body = "hello";
  std::array<asio::const_buffer, 2> small{asio::buffer(head), asio::buffer(body)};
  auto w1 = s.start_write(small);
  EXPECT_FALSE(w1.ec);
  EXPECT_FALSE(w1.pending());
  EXPECT_EQ(w1.written, head.size() + body.size());

  const auto a = pattern(3 << 20, 5), b = pattern(1 << 20, 6);
  std::array<asio::const_buffer, 2> big{asio::buffer(a), asio::buffer(b)};
  auto w2 = s.start_write(big);
  ASSERT_FALSE(w2.ec);
  ASSERT_TRUE(w2.pending()) << "4 MiB cannot fit in the socket buffers";
  EXPECT_LT(w2.written, a.size() + b.size());
  std::string got(head.size() + body.size() + a.size() + b.size(), '\0');
  std::thread reader([&] {
    boost::system::error_code ignored;
    asio::read(p.theirs, asio::buffer(got), ignored);
  });
  asio::co_spawn(
      io, [&]() -> asio::awaitable<void> { co_await s.finish_write(w2); }, asio::detached);
  io.run();
  reader.join();
  EXPECT_FALSE(w2.ec);
  EXPECT_FALSE(w2.pending());
  EXPECT_EQ(w2.written, a.size() + b.size());
  EXPECT_TRUE(got == head + body + a + b) << "bytes out of order or lost";

  s.close();
  auto w3 = s.start_write(asio::buffer(head));
  EXPECT_TRUE(w3.ec);
  EXPECT_FALSE(w3.pending());
  EXPECT_EQ(w3.written, 0u);
}

}  // namespace
}  // namespace spillway::tls
