#pragma once
// A downstream (client) connection as every front end has it: the socket (with TLS when the
// listener terminates it), the client's address, the listener's counters, registration with the
// worker for drains, and one deadline enforced by a watchdog.
//
// A front end (http_session, tcp_session) owns one and decides what a passed deadline means in the
// phase it is in (downstream_session::deadline_passed): close the idle connection, cancel a read and
// answer 408, cut off a connect, and so on.

#include "proxy/watchdog.h"
#include "proxy/worker.h"
#include "tls/stream.h"

#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>

#include <chrono>
#include <list>
#include <memory>
#include <string>

namespace spillway::proxy {

class downstream_connection {
 public:
  using clock = std::chrono::steady_clock;

  // Registers `owner` with the worker (so that a drain reaches it) and counts the connection on the
  // listener named by its address `listen`. `tls` (may be null) is the listener's TLS context: the
  // connection speaks TLS once handshake() ran. Worker thread.
  downstream_connection(worker& w, std::string listen, boost::asio::ip::tcp::socket socket, tls::server_context_ptr tls,
                        downstream_session* owner);
  // Counts the close on the listener and detaches from the worker.
  ~downstream_connection();
  downstream_connection(const downstream_connection&) = delete;
  downstream_connection& operator=(const downstream_connection&) = delete;

  worker& owner() const { return worker_; }
  const std::string& listen() const { return listen_; }
  tls::stream& stream() { return stream_; }
  // The client's address as text ("" when it could not be read).
  const std::string& client_ip() const { return client_ip_; }
  const boost::asio::ip::address& client_address() const { return client_address_; }
  bool tls() const { return tls_ != nullptr; }
  // This worker's counters of the listener, or null when the listener was gone at accept.
  stats::listener_traffic* traffic() const {
    return listener_traffic_ ? &listener_traffic_->local(worker_.index()) : nullptr;
  }

  // The TLS handshake, within the listener's handshake timeout (when TLS is on). Returns false,
  // having counted and logged why, when it failed. Worker thread; needs start_watchdog() called.
  boost::asio::awaitable<bool> handshake();

  // The connection's one deadline (see watchdog.h): its owner's deadline_passed() runs once it
  // passes. Worker thread.
  proxy::watchdog& watch() { return watch_; }
  void set_deadline(clock::time_point at) { watch_.set_deadline(at); }
  void set_deadline_horizon(clock::duration h) { watch_.set_horizon(h); }  // see watchdog::set_horizon
  clock::time_point& deadline() { return watch_.deadline(); }              // relays push it forward as bytes move
  bool expired() const { return watch_.expired(); }
  void clear_expired() { watch_.clear_expired(); }
  // Watches the deadline until stop(), keeping `keep` (the owner) alive as long. Worker thread.
  void start_watchdog(std::shared_ptr<void> keep) { watch_.start(std::move(keep), owner_); }
  // Ends the watchdog. Worker thread.
  void stop() { watch_.stop(); }

  // Shuts the socket down both ways and closes it. Worker thread.
  void close();
  // Cancels reads and writes under way (they end with operation_aborted). Worker thread.
  void cancel();

 private:
  worker& worker_;
  std::string listen_;
  tls::server_context_ptr tls_;  // kept for the SNI callback while the handshake runs
  tls::stream stream_;
  std::string client_ip_;
  boost::asio::ip::address client_address_;
  downstream_session* owner_;
  std::list<downstream_session*>::iterator registration_;
  std::shared_ptr<stats::per_worker<stats::listener_traffic>> listener_traffic_;
  proxy::watchdog watch_;
};

}  // namespace spillway::proxy
