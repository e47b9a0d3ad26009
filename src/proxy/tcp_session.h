#pragma once
// One downstream connection on a `protocol: tcp` listener (L4):
//
//   downstream ──> listener ──> tcp_session ──> balancer ──> host
//
// Picks the least-loaded available host (a connection counts as one request for as long as it
// lasts), connects (a refused or timed-out connect moves on to another host before any byte is
// relayed), then relays bytes both ways. A FIN from one side is passed on as a half-close and the
// other direction keeps flowing; the session ends when both directions are done, or when no byte
// moved for the upstream's idle timeout.

#include "proxy/worker.h"
#include "tls/stream.h"

#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>

#include <chrono>
#include <list>
#include <memory>
#include <string>

namespace spillway::proxy {

class tcp_session final : public downstream_session, public std::enable_shared_from_this<tcp_session> {
 public:
  // `tls` (may be null): terminate TLS from the client (the backend gets the plaintext).
  tcp_session(worker& w, std::string listen, boost::asio::ip::tcp::socket socket, tls::server_context_ptr tls);
  ~tcp_session() override;

  // A drain lets the relay run on until either side ends it (or the drain timeout). Worker thread.
  void drain() override {}
  void force_close() override { close_both(); }

  // Spawns the session. Worker thread.
  void start();

 private:
  // What one connection's access log line says (see access_log).
  struct outcome_record {
    const upstream::cluster* cluster = nullptr;
    upstream::host* host = nullptr;
    std::uint32_t tries = 0;
    std::chrono::steady_clock::duration connect_time{-1};
    std::string_view reason;  // why it ended other than by an EOF, or empty
  };

  boost::asio::awaitable<void> run();
  boost::asio::awaitable<void> watchdog();
  void close_both();
  // Counts the relayed bytes on the upstream and host, and writes the access log line.
  void finish(const snapshot& snap, const outcome_record& rec);

  worker& worker_;
  std::string listen_;
  tls::server_context_ptr tls_;
  tls::stream downstream_;
  std::unique_ptr<tls::stream> upstream_;  // a new one per connect attempt
  boost::asio::steady_timer timer_;
  std::chrono::steady_clock::time_point deadline_ = std::chrono::steady_clock::time_point::max();
  std::chrono::steady_clock::duration idle_{};
  bool done_ = false;
  bool idle_expired_ = false;
  std::chrono::steady_clock::time_point started_ = std::chrono::steady_clock::now();
  boost::asio::ip::tcp::endpoint client_;
  std::shared_ptr<stats::per_worker<stats::listener_traffic>> listener_traffic_;
  std::uint64_t bytes_in_ = 0;  // relayed from the client
  std::uint64_t bytes_out_ = 0;
  bool connecting_ = false;  // a connect attempt is under way (its timeout closes only upstream_)
  std::list<downstream_session*>::iterator registration_;
};

}  // namespace spillway::proxy
