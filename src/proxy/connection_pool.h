#pragma once
// Idle upstream connections of one worker, per host. A connection is returned only when its last
// response was read to the end and neither side asked to close; one the backend has closed while
// idle is detected and dropped when taken.

#include "tls/stream.h"
#include "upstream/cluster.h"
#include "upstream/host.h"

#include <boost/asio/ip/tcp.hpp>

#include <chrono>
#include <memory>
#include <unordered_map>
#include <vector>

namespace spillway::proxy {

struct upstream_connection {
  // `stats` (may be null) holds a max_connections reservation this connection releases when closed.
  // `tls` (may be null) is the context the connection speaks TLS with, once start_tls() is called.
  upstream_connection(boost::asio::ip::tcp::socket s, upstream::host_ptr h,
                      std::shared_ptr<upstream::upstream_stats> stats = nullptr, tls::client_context_ptr tls = nullptr);
  ~upstream_connection();
  upstream_connection(const upstream_connection&) = delete;
  upstream_connection& operator=(const upstream_connection&) = delete;

  tls::stream stream;
  tls::client_context_ptr tls;  // a pooled connection is only reused with the same TLS settings
  upstream::host_ptr host;      // keeps the host alive while the connection exists
  std::shared_ptr<upstream::upstream_stats> stats;
  std::chrono::steady_clock::time_point idle_since;
  std::uint64_t requests = 0;      // requests sent on this connection so far
  std::uint32_t endpoint_version;  // the host's address when connected (see host::endpoint_version)
};

using upstream_connection_ptr = std::unique_ptr<upstream_connection>;

class connection_pool {
 public:
  // At most this many idle connections are kept per host per worker.
  static constexpr std::size_t max_idle_per_host = 256;

  // Returns an idle connection to `h` made with TLS context `tls` (null for plain) that still looks
  // open, or nullptr. Worker thread only.
  upstream_connection_ptr take(const upstream::host* h, const tls::client_context* tls = nullptr);

  // Keeps `conn` for reuse. Worker thread only.
  void put(upstream_connection_ptr conn);

  // Closes connections idle for longer than `max_idle`. Worker thread only.
  void sweep(std::chrono::steady_clock::time_point now, std::chrono::steady_clock::duration max_idle);

  // Closes every idle connection (drain). Worker thread only.
  void clear();

  std::size_t idle_count() const;

 private:
  std::unordered_map<const upstream::host*, std::vector<upstream_connection_ptr>> idle_;
};

}  // namespace spillway::proxy
