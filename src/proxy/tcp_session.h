#pragma once
// The L4 front end: one downstream connection on a `protocol: tcp` listener.
//
//   downstream ──> listener ──> tcp_session ──> upstream_attempt ──> host
//
// The connection is one request to the shared upstream path: the attempt picks a host (the
// connection counts as one in-flight request on it for as long as it lasts; consistent_hash
// balances on the client's address), takes its breaker ticket, reserves a connection under the
// upstream's limits and connects (a refused or timed-out connect moves on to another host before
// any byte is relayed). Then bytes are relayed both ways: a FIN from one side is passed on as a
// half-close and the other direction keeps flowing; the session ends when both directions are
// done, or when no byte moved for the upstream's idle timeout.

#include "common/error.h"
#include "proxy/downstream.h"
#include "proxy/worker.h"

#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>

#include <chrono>
#include <memory>
#include <optional>
#include <string>

namespace spillway::proxy {

class upstream_attempt;

class tcp_session final : public downstream_session, public std::enable_shared_from_this<tcp_session> {
 public:
  // `tls` (may be null): terminate TLS from the client (the backend gets the plaintext).
  tcp_session(worker& w, std::string listen, boost::asio::ip::tcp::socket socket, tls::server_context_ptr tls);

  // A drain lets the relay run on until either side ends it (or the drain timeout). Worker thread.
  void drain() override {}
  void force_close() override { close_both(); }
  // A connect timeout closes the connection being made (the attempt moves on to another host);
  // the handshake or idle timeout closes both sides. Worker thread.
  void deadline_passed() override;

  // Spawns the session. Worker thread.
  void start();

 private:
  using clock = std::chrono::steady_clock;

  boost::asio::awaitable<void> run();
  // Relays bytes both ways on the attempt's connection until both directions end; reports how on
  // the host. Returns upstream_reset when the backend broke the connection.
  boost::asio::awaitable<std::optional<error_kind>> relay_both(upstream_attempt& attempt, bool splice);
  void close_both();
  // Counts the relayed bytes on the listener, upstream and host, and writes the access log line.
  // `reason`: why the connection ended other than by an EOF, if it did.
  void finish(const snapshot& snap, const upstream_attempt* attempt, std::optional<error_kind> reason);

  downstream_connection down_;
  upstream_attempt* attempt_ = nullptr;  // while run() has one
  bool idle_expired_ = false;
  clock::time_point started_ = clock::now();
  std::uint64_t bytes_in_ = 0;  // relayed from the client
  std::uint64_t bytes_out_ = 0;
};

}  // namespace spillway::proxy
