// spillway-testd: a fast, strict HTTP/1.1 test backend. Each worker thread owns an io_context and
// an acceptor on the shared port (SO_REUSEPORT spreads connections over them), and a connection
// stays on the worker that accepted it. See tests/testd/README.md for the behaviour tests rely on.

#include <csignal>
#include <cstdio>
#include <exception>
#include <memory>
#include <thread>
#include <vector>

#include <fmt/core.h>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "options.h"
#include "session.h"

namespace {

namespace asio = boost::asio;
using asio::ip::tcp;
using namespace spillway::testd;

struct worker {
  // Concurrency hint 1: only this worker's thread runs the context.
  asio::io_context context{1};
  tcp::acceptor acceptor{context};
};

using reuse_port = asio::detail::socket_option::boolean<SOL_SOCKET, SO_REUSEPORT>;

void open_acceptor(tcp::acceptor& acceptor, const tcp::endpoint& endpoint, bool shared) {
  acceptor.open(endpoint.protocol());
  // SO_REUSEADDR lets a restarted testd bind its old port while connections of the previous run
  // sit in TIME_WAIT; tests restart backends on the same port to simulate a crash and recovery.
  acceptor.set_option(tcp::acceptor::reuse_address(true));
  // Only with several workers: a lone testd should fail loudly if its port is taken, instead of
  // silently sharing it with another process.
  if (shared) {
    acceptor.set_option(reuse_port(true));
  }
  acceptor.bind(endpoint);
  acceptor.listen(asio::socket_base::max_listen_connections);
}

asio::awaitable<void> accept_loop(tcp::acceptor& acceptor, server_state& state, worker_stats& stats) {
  auto executor = co_await asio::this_coro::executor;
  for (;;) {
    auto [ec, socket] = co_await acceptor.async_accept(asio::as_tuple(asio::use_awaitable));
    if (ec == asio::error::operation_aborted) {
      co_return;
    }
    if (ec) {
      // Typically EMFILE under a connection storm: back off instead of spinning on the error.
      asio::steady_timer pause{executor, std::chrono::milliseconds{10}};
      co_await pause.async_wait(asio::as_tuple(asio::use_awaitable));
      continue;
    }
    boost::system::error_code ignored;
    socket.set_option(tcp::no_delay(true), ignored);
    stats.connections_accepted.fetch_add(1, std::memory_order_relaxed);
    asio::co_spawn(executor, serve_connection(std::move(socket), state, stats), asio::detached);
  }
}

}  // namespace

int main(int argc, char** argv) {
  options opts = parse_command_line(argc, argv);
  std::signal(SIGPIPE, SIG_IGN);

  // Declared before the workers: sessions destroyed with their io_context still touch it.
  server_state state{opts, opts.threads};
  std::vector<std::unique_ptr<worker>> workers;
  tcp::endpoint endpoint;
  try {
    endpoint = tcp::endpoint{asio::ip::make_address(opts.listen_host), opts.listen_port};
    for (int i = 0; i < opts.threads; ++i) {
      workers.push_back(std::make_unique<worker>());
      open_acceptor(workers.back()->acceptor, endpoint, opts.threads > 1);
      // With port 0 the first bind picks the port; the other workers join that one.
      endpoint = workers.back()->acceptor.local_endpoint();
    }
  } catch (const std::exception& e) {
    fmt::print(stderr, "spillway-testd: cannot listen on {}:{}: {}\n", opts.listen_host, opts.listen_port, e.what());
    return 1;
  }

  for (std::size_t i = 0; i < workers.size(); ++i) {
    asio::co_spawn(workers[i]->context, accept_loop(workers[i]->acceptor, state, *state.stats[i]), asio::detached);
  }

  asio::signal_set signals{workers[0]->context, SIGINT, SIGTERM};
  signals.async_wait([&workers](const boost::system::error_code& ec, int) {
    if (ec) {
      return;
    }
    // Stop at once: a test stopping a backend wants it gone, in-flight requests included.
    for (auto& w : workers) {
      w->context.stop();
    }
  });

  auto address = endpoint.address();
  if (address.is_v6()) {
    fmt::print("listening [{}]:{}\n", address.to_string(), endpoint.port());
  } else {
    fmt::print("listening {}:{}\n", address.to_string(), endpoint.port());
  }
  std::fflush(stdout);

  std::vector<std::thread> threads;
  for (std::size_t i = 1; i < workers.size(); ++i) {
    threads.emplace_back([&w = *workers[i]] { w.context.run(); });
  }
  workers[0]->context.run();
  for (auto& t : threads) {
    t.join();
  }
  return 0;
}
