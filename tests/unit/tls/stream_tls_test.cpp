// tls::stream with TLS, on real loopback sockets, both ends tls::stream (a server and a client
// with a throwaway certificate): OpenSSL driven straight on the non-blocking socket. The handshake,
// bytes both ways, several buffers in one record, a write bigger than the socket buffers, the
// ends of a connection (close_notify, a bare close), cancellation, what OpenSSL holds back, and an
// io_context destroyed with an operation pending.

#include "tls/stream.h"

#include "support/loopback_pair.h"

#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <openssl/x509.h>

#include <array>
#include <functional>
#include <memory>
#include <optional>
#include <string>

namespace spillway::tls {
namespace {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;

// A server context with a fresh self-signed EC P-256 certificate, and a client context that does
// not check it.
struct contexts {
  contexts() {
    EVP_PKEY* key = EVP_EC_gen("P-256");
    X509* cert = X509_new();
    X509_set_version(cert, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(cert), 1);
    X509_gmtime_adj(X509_getm_notBefore(cert), 0);
    X509_gmtime_adj(X509_getm_notAfter(cert), 3600);
    X509_set_pubkey(cert, key);
    X509_NAME* name = X509_get_subject_name(cert);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, reinterpret_cast<const unsigned char*>("test"), -1, -1, 0);
    X509_set_issuer_name(cert, name);
    X509_sign(cert, key, EVP_sha256());
    SSL_CTX_use_certificate(server.native_handle(), cert);
    SSL_CTX_use_PrivateKey(server.native_handle(), key);
    SSL_CTX_set_mode(server.native_handle(), SSL_MODE_RELEASE_BUFFERS);
    SSL_CTX_set_verify(client.native_handle(), SSL_VERIFY_NONE, nullptr);
    X509_free(cert);
    EVP_PKEY_free(key);
  }
  asio::ssl::context server{asio::ssl::context::tls_server};
  asio::ssl::context client{asio::ssl::context::tls_client};
};

// Runs `io` until `done()` or 5 s.
void run_until(asio::io_context& io, const std::function<bool()>& done) {
  const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (!done() && std::chrono::steady_clock::now() < until) {
    io.restart();
    io.run_one_until(until);
  }
}

struct read_result {
  boost::system::error_code ec;
  std::string bytes;
};

// Two streams over a loopback pair, `server` (ours) and `client` (theirs), handshaken.
struct tls_pair {
  explicit tls_pair(asio::io_context& io, contexts& ctx)
      : io(io), p(io), server(std::move(p.ours)), client(std::move(p.theirs)) {
    server.start_tls(ctx.server);
    client.start_tls(ctx.client);
    std::optional<boost::system::error_code> sec, cec;
    asio::co_spawn(
        io, [&]() -> asio::awaitable<void> { sec = co_await server.handshake(asio::ssl::stream_base::server); },
        asio::detached);
    asio::co_spawn(
        io, [&]() -> asio::awaitable<void> { cec = co_await client.handshake(asio::ssl::stream_base::client); },
        asio::detached);
    run_until(io, [&] { return sec && cec; });
    EXPECT_TRUE(sec && !*sec) << (sec ? sec->message() : "no result");
    EXPECT_TRUE(cec && !*cec) << (cec ? cec->message() : "no result");
  }

  // One read of up to `size` bytes on `s`.
  read_result read(stream& s, std::size_t size) {
    std::string buf(size, '\0');
    std::optional<read_result> r;
    s.async_read_some(asio::buffer(buf), [&](boost::system::error_code ec, std::size_t n) {
      r = read_result{ec, buf.substr(0, n)};
    });
    run_until(io, [&] { return r.has_value(); });
    return r.value_or(read_result{asio::error::timed_out, {}});
  }

  // Reads until `want` bytes came, or an error.
  read_result read_all(stream& s, std::size_t want) {
    read_result all;
    while (all.bytes.size() < want) {
      auto r = read(s, 65536);
      if (r.ec) {
        all.ec = r.ec;
        break;
      }
      all.bytes += r.bytes;
    }
    return all;
  }

  template <typename Buffers>
  std::tuple<boost::system::error_code, std::size_t> write(stream& s, const Buffers& buffers) {
    std::optional<std::tuple<boost::system::error_code, std::size_t>> r;
    asio::co_spawn(
        io, [&]() -> asio::awaitable<void> { r = co_await s.write_all(buffers); }, asio::detached);
    run_until(io, [&] { return r.has_value(); });
    return r.value_or(std::tuple{boost::system::error_code(asio::error::timed_out), std::size_t{0}});
  }

  asio::io_context& io;
  test_support::loopback_pair p;
  stream server;
  stream client;
};

std::string pattern(std::size_t n) {
  std::string s(n, '\0');
  for (std::size_t i = 0; i < n; ++i) {
    s[i] = static_cast<char>('a' + (i * 7 + i / 251) % 26);
  }
  return s;
}

TEST(stream_tls, handshake_then_bytes_both_ways_and_several_buffers_in_one_record) {
  asio::io_context io;
  contexts ctx;
  tls_pair t(io, ctx);
  ASSERT_TRUE(t.server.is_tls());
  EXPECT_NE(SSL_get_current_cipher(t.server.native_tls()), nullptr);

  auto [wec, wn] = t.write(t.client, asio::buffer(std::string("GET / HTTP/1.1\r\n\r\n")));
  EXPECT_FALSE(wec);
  EXPECT_EQ(wn, 18u);
  auto got = t.read(t.server, 4096);
  EXPECT_FALSE(got.ec);
  EXPECT_EQ(got.bytes, "GET / HTTP/1.1\r\n\r\n");

  // A head and a body: one record, so the client's one read has both.
  const std::string head = "HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\n", body = "hello";
  std::array<asio::const_buffer, 3> bufs{asio::buffer(head), asio::const_buffer(), asio::buffer(body)};
  auto [ec, n] = t.write(t.server, bufs);
  EXPECT_FALSE(ec);
  EXPECT_EQ(n, head.size() + body.size());
  got = t.read(t.client, 4096);
  EXPECT_FALSE(got.ec);
  EXPECT_EQ(got.bytes, head + body);
}

TEST(stream_tls, try_write_sends_on_the_spot_and_stops_where_the_socket_is_full) {
  asio::io_context io;
  contexts ctx;
  tls_pair t(io, ctx);
  const std::string head = "HTTP/1.1 200 OK\r\n\r\n", body = "hi";
  auto [ec, n] = t.server.try_write(stream::buffer_list::of(std::array{asio::buffer(head), asio::buffer(body)}));
  EXPECT_FALSE(ec);
  EXPECT_EQ(n, head.size() + body.size());  // no reactor operation, nothing run
  EXPECT_EQ(t.read(t.client, 4096).bytes, head + body);

  // Far more than the socket buffers hold: some goes, the rest waits for a write that starts there.
  const std::string big = pattern(16 * 1024 * 1024);
  const std::string tail = "end";
  auto bufs = std::array{asio::buffer(big), asio::buffer(tail)};
  auto [ec2, first] = t.server.try_write(stream::buffer_list::of(bufs));
  EXPECT_FALSE(ec2);
  EXPECT_GT(first, 0u);
  EXPECT_LT(first, big.size());
  std::optional<std::tuple<boost::system::error_code, std::size_t>> rest;
  asio::co_spawn(
      io,
      [&]() -> asio::awaitable<void> {
        std::array<asio::const_buffer, 2> left{asio::buffer(big) + first, asio::buffer(tail)};
        rest = co_await t.server.write_all(left);
      },
      asio::detached);
  auto got = t.read_all(t.client, big.size() + tail.size());
  run_until(io, [&] { return rest.has_value(); });
  ASSERT_TRUE(rest);
  EXPECT_FALSE(std::get<0>(*rest));
  EXPECT_EQ(first + std::get<1>(*rest), big.size() + tail.size());
  EXPECT_TRUE(got.bytes == big + tail);
}

TEST(stream_tls, a_write_bigger_than_the_socket_buffers_waits_for_room_and_arrives_whole) {
  asio::io_context io;
  contexts ctx;
  tls_pair t(io, ctx);
  const std::string big = pattern(8 * 1024 * 1024);
  const std::string tail = "and the end";
  std::array<asio::const_buffer, 2> bufs{asio::buffer(big), asio::buffer(tail)};
  std::optional<std::tuple<boost::system::error_code, std::size_t>> wrote;
  asio::co_spawn(
      io, [&]() -> asio::awaitable<void> { wrote = co_await t.server.write_all(bufs); }, asio::detached);
  io.restart();
  io.poll();
  EXPECT_FALSE(wrote);  // the socket buffers are full: the write waits in the reactor
  auto got = t.read_all(t.client, big.size() + tail.size());
  run_until(io, [&] { return wrote.has_value(); });
  ASSERT_TRUE(wrote);
  EXPECT_FALSE(std::get<0>(*wrote));
  EXPECT_EQ(std::get<1>(*wrote), big.size() + tail.size());
  EXPECT_FALSE(got.ec);
  EXPECT_TRUE(got.bytes == big + tail);
}

TEST(stream_tls, close_notify_is_eof_and_a_bare_close_is_truncated) {
  asio::io_context io;
  contexts ctx;
  {
    tls_pair t(io, ctx);
    bool sent = false;
    asio::co_spawn(
        io,
        [&]() -> asio::awaitable<void> {
          co_await t.client.shutdown_send();
          sent = true;
        },
        asio::detached);
    run_until(io, [&] { return sent; });
    auto got = t.read(t.server, 4096);
    EXPECT_EQ(got.ec, asio::error::eof);
    EXPECT_TRUE(is_eof(got.ec));
  }
  {
    tls_pair t(io, ctx);
    t.client.socket().shutdown(tcp::socket::shutdown_send);  // a FIN, no close_notify
    auto got = t.read(t.server, 4096);
    EXPECT_EQ(got.ec, asio::ssl::error::stream_truncated) << got.ec.message();
    EXPECT_TRUE(is_eof(got.ec));
  }
}

TEST(stream_tls, a_peer_that_speaks_no_tls_fails_the_handshake_with_openssls_error) {
  asio::io_context io;
  contexts ctx;
  test_support::loopback_pair p(io);
  stream server(std::move(p.ours));
  server.start_tls(ctx.server);
  const std::string junk = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
  asio::write(p.theirs, asio::buffer(junk));
  std::optional<boost::system::error_code> ec;
  asio::co_spawn(
      io, [&]() -> asio::awaitable<void> { ec = co_await server.handshake(asio::ssl::stream_base::server); },
      asio::detached);
  run_until(io, [&] { return ec.has_value(); });
  ASSERT_TRUE(ec);
  EXPECT_TRUE(*ec);
  EXPECT_EQ(ec->category(), asio::error::get_ssl_category()) << ec->message();
  EXPECT_FALSE(ec->message().empty());
}

TEST(stream_tls, cancel_and_a_cancellation_slot_end_a_pending_read_with_operation_aborted) {
  asio::io_context io;
  contexts ctx;
  tls_pair t(io, ctx);
  std::array<char, 64> buf;
  std::optional<boost::system::error_code> ec;
  t.server.async_read_some(asio::buffer(buf), [&](boost::system::error_code e, std::size_t) { ec = e; });
  io.restart();
  io.poll();
  EXPECT_FALSE(ec);
  t.server.socket().cancel();
  run_until(io, [&] { return ec.has_value(); });
  EXPECT_EQ(ec, asio::error::operation_aborted);

  asio::cancellation_signal cancel;
  ec.reset();
  t.server.async_read_some(
      asio::buffer(buf),
      asio::bind_cancellation_slot(cancel.slot(), [&](boost::system::error_code e, std::size_t) { ec = e; }));
  io.restart();
  io.poll();
  EXPECT_FALSE(ec);
  cancel.emit(asio::cancellation_type::terminal);
  run_until(io, [&] { return ec.has_value(); });
  EXPECT_EQ(ec, asio::error::operation_aborted);

  // The connection still works after both.
  t.write(t.client, asio::buffer(std::string("still here")));
  EXPECT_EQ(t.read(t.server, 64).bytes, "still here");
}

TEST(stream_tls, bytes_openssl_holds_back_are_reported_until_read) {
  asio::io_context io;
  contexts ctx;
  tls_pair t(io, ctx);
  EXPECT_FALSE(t.server.holds_bytes());
  t.write(t.client, asio::buffer(pattern(100)));
  t.write(t.client, asio::buffer(pattern(100)));
  auto got = t.read(t.server, 50);
  EXPECT_EQ(got.bytes.size(), 50u);
  EXPECT_TRUE(t.server.holds_bytes());  // the socket will not signal these again
  std::string rest;
  while (rest.size() < 150) {
    auto r = t.read(t.server, 4096);
    ASSERT_FALSE(r.ec);
    rest += r.bytes;
  }
  EXPECT_FALSE(t.server.holds_bytes());
  EXPECT_FALSE(stream(tcp::socket(io)).holds_bytes());  // plain: never
}

TEST(stream_tls, an_operation_pending_when_the_io_context_goes_is_destroyed_with_it) {
  auto io = std::make_unique<asio::io_context>();
  contexts ctx;
  auto t = std::make_unique<tls_pair>(*io, ctx);
  auto alive = std::make_shared<int>(0);
  std::weak_ptr<int> watch = alive;
  std::array<char, 64> buf;
  bool called = false;
  t->server.async_read_some(
      asio::buffer(buf), [keep = std::move(alive), &called](boost::system::error_code, std::size_t) { called = true; });
  io->restart();
  io->poll();
  t.reset();   // the sockets close: the read completes aborted, not yet run
  io.reset();  // the handler is destroyed, not called
  EXPECT_FALSE(called);
  EXPECT_TRUE(watch.expired());
}

}  // namespace
}  // namespace spillway::tls
