#pragma once
// One worker's connection to the Redis a shared rate limit names, and the GCRA script run on it.
//
// Every Spillway that names the same Redis takes from the same budget: the script reads and
// advances the key's TAT atomically, by Redis's own clock (TIME), so instances whose clocks differ
// still agree. Requests are pipelined on one connection; each waits at most its deadline. While
// the connection is down (refused, reset, or three calls in a row that ran out of time), calls fail
// at once as `unavailable` and the policy's on_unavailable decides; the connection is tried again
// after a backoff (100 ms, doubling to 2 s). The script is sent by its SHA1 (EVALSHA), and in full
// once when Redis does not know it (NOSCRIPT). Worker thread only.

#include "ratelimit/limiter.h"
#include "ratelimit/resp.h"

#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>

#include <chrono>
#include <cstdint>
#include <deque>
#include <memory>
#include <string>

namespace spillway::ratelimit {

// The script (KEYS[1]; ARGV[1] interval, ARGV[2] tolerance, both in microseconds). Returns
// {admitted 1|0, remaining (admitted) or wait (limited) in microseconds, reset in microseconds}.
extern const char* const gcra_script;

class redis_client : public std::enable_shared_from_this<redis_client> {
 public:
  enum class outcome { ok, timeout, unavailable, error };
  struct result {
    outcome status = outcome::unavailable;
    verdict v;
  };

  static std::shared_ptr<redis_client> make(boost::asio::io_context& io, std::string host, std::uint16_t port);
  redis_client(boost::asio::io_context& io, std::string host, std::uint16_t port);
  ~redis_client();
  redis_client(const redis_client&) = delete;
  redis_client& operator=(const redis_client&) = delete;

  // Runs the script for `key` with `p`'s rate, waiting at most `timeout`.
  boost::asio::awaitable<result> take(const std::string& key, const params& p, std::chrono::microseconds timeout);

  // In-flight calls beyond which a call fails at once (a Redis that stopped answering).
  static constexpr std::size_t max_in_flight = 4096;
  // A reply bigger than this is no reply of ours: the connection is closed.
  static constexpr std::size_t max_buffer = 256 * 1024;

 private:
  struct call;
  enum class state { idle, connecting, up, backoff };

  void connect();
  boost::asio::awaitable<void> run_connection();
  boost::asio::awaitable<void> write_loop();
  void send(const std::shared_ptr<call>& c, bool full_script);
  void handle_reply(const resp::value& reply);
  void fail_all(outcome why);
  void went_down();

  boost::asio::io_context& io_;
  std::string host_;
  std::uint16_t port_;
  boost::asio::ip::tcp::socket socket_;
  boost::asio::steady_timer backoff_timer_;
  std::chrono::milliseconds backoff_{100};
  state state_ = state::idle;
  std::uint64_t connection_ = 0;                 // which connection a coroutine serves (a closed one's end)
  std::deque<std::shared_ptr<call>> in_flight_;  // in the order of their replies
  std::string out_;                              // commands not written yet
  bool writing_ = false;
  unsigned timeouts_in_a_row_ = 0;
  bool down_reported_ = false;  // "cannot reach" logged once per outage
  std::string script_sha_;
};

}  // namespace spillway::ratelimit
