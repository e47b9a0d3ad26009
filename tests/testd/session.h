#pragma once

// One downstream connection of testd: parse requests, answer them as the command line, the query
// string and /_testd/set say, and keep the connection for the next request when HTTP allows.

#include <memory>
#include <string>
#include <vector>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>

#include "options.h"

namespace spillway::testd {

// State shared by all workers. Immutable except through atomics.
struct server_state {
  server_state(const options& opts, int workers) : name{opts.name}, settings{opts} {
    for (int i = 0; i < workers; ++i) {
      stats.push_back(std::make_unique<worker_stats>());
    }
  }

  const std::string name;
  runtime_settings settings;
  std::vector<std::unique_ptr<worker_stats>> stats;  // one per worker, index = worker number
};

// Serves one accepted connection until it closes, the peer goes away, or the io_context stops.
// Runs entirely on the thread of the io_context that owns `socket`; `stats` is that worker's.
boost::asio::awaitable<void> serve_connection(boost::asio::ip::tcp::socket socket, server_state& state,
                                              worker_stats& stats);

}  // namespace spillway::testd
