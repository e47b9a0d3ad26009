// Why Spillway does not ship Asio's io_uring backend (bench/README.md, "Tried and not shipped: Asio
// on io_uring"): with Boost 1.81, closing a socket while a read is in flight and opening another
// socket before the event loop has taken the read's cancellation makes the closed socket's read
// complete with the new socket's bytes, and the new socket's own read waits for bytes that went to it.
//
// Each trial: accept a connection and start a read on it; close that socket; connect and accept a
// second connection at once (its client socket takes the freed state object); start reads on both
// ends of the second connection and send each end five bytes. Correct: the first read ends with
// operation_aborted and the two new reads get their bytes. "reap" lets the loop run between the
// close and the second connection (the cancellation lands first).
//
//   apt-get install liburing-dev
//   uring="-DBOOST_ASIO_HAS_IO_URING -DBOOST_ASIO_DISABLE_EPOLL"
//   g++ -std=c++20 -O1 $uring bench/asio_uring_reuse.cpp -o /tmp/reuse-uring -luring -pthread
//   g++ -std=c++20 -O1 bench/asio_uring_reuse.cpp -o /tmp/reuse-epoll -pthread
//   /tmp/reuse-uring 200; /tmp/reuse-uring 200 reap; /tmp/reuse-epoll 200
//
// Arguments: trials (1000), "reap" or anything else, milliseconds to wait for the reads (200). The
// exit status is 0 when every trial was correct.
#include <boost/asio.hpp>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>

namespace asio = boost::asio;
using tcp = asio::ip::tcp;

namespace {

struct read_result {
  char bytes[16];
  bool done = false;
  boost::system::error_code ec;
  std::size_t n = 0;

  void start(tcp::socket& s) {
    s.async_read_some(asio::buffer(bytes), [this](boost::system::error_code e, std::size_t got) {
      done = true;
      ec = e;
      n = got;
    });
  }
  bool got(const char* what) const { return done && !ec && n == 5 && std::string(bytes, n) == what; }
};

}  // namespace

int main(int argc, char** argv) {
  const int trials = argc > 1 ? std::atoi(argv[1]) : 1000;
  const bool reap_first = argc > 2 && std::string(argv[2]) == "reap";
  const int wait_ms = argc > 3 ? std::atoi(argv[3]) : 200;
  asio::io_context io(1);
  tcp::acceptor acceptor(io, {asio::ip::make_address("127.0.0.1"), 0});
  const auto ep = acceptor.local_endpoint();
  int correct = 0, stolen = 0, closed_read_hung = 0, server_read_hung = 0, client_read_hung = 0, same_fd = 0;
  for (int t = 0; t < trials; ++t) {
    tcp::socket first_client(io), second_client(io);
    first_client.connect(ep);
    tcp::socket first_server = acceptor.accept();
    const int closed_fd = first_server.native_handle();
    read_result closed_read, server_read, client_read;
    closed_read.start(first_server);
    io.restart();
    io.poll();  // the read is in the ring now (io_uring) or registered with epoll
    first_server.close();
    if (reap_first) {
      io.restart();
      io.run_for(std::chrono::milliseconds(20));
    }
    second_client.connect(ep);
    tcp::socket second_server = acceptor.accept();
    same_fd += second_client.native_handle() == closed_fd;
    server_read.start(second_server);
    client_read.start(second_client);
    asio::write(second_client, asio::buffer("hello", 5));
    asio::write(second_server, asio::buffer("world", 5));
    io.restart();
    const auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(wait_ms);
    while (!(closed_read.done && server_read.done && client_read.done) && std::chrono::steady_clock::now() < until) {
      io.run_for(std::chrono::milliseconds(10));
      io.restart();
    }
    const bool ok = closed_read.done && closed_read.ec == asio::error::operation_aborted && server_read.got("hello") &&
                    client_read.got("world");
    correct += ok;
    stolen += closed_read.got("world");
    closed_read_hung += !closed_read.done;
    server_read_hung += !server_read.done;
    client_read_hung += !client_read.done;
    if (!ok && t + 1 - correct <= 3) {
      std::printf("trial %d: the closed socket's read: %s (%s, \"%.*s\"); the new client's read: %s\n", t,
                  closed_read.done ? "completed" : "pending", closed_read.ec.message().c_str(),
                  static_cast<int>(closed_read.n), closed_read.bytes, client_read.done ? "completed" : "pending");
    }
    second_server.close();
    second_client.close();
    io.restart();
    io.run_for(std::chrono::milliseconds(20));  // every completion lands before the next trial
  }
  std::printf(
      "%s%s: %d trials, %d correct; the closed socket's read took the new client's bytes in %d; still pending "
      "after %d ms: the closed socket's read in %d, the new server read in %d, the new client read in %d; the "
      "new client socket had the closed one's descriptor number in %d\n",
#if defined(BOOST_ASIO_HAS_IO_URING_AS_DEFAULT)
      "io_uring",
#else
      "epoll",
#endif
      reap_first ? " (cancellation reaped before the new connection)" : "", trials, correct, stolen, wait_ms,
      closed_read_hung, server_read_hung, client_read_hung, same_fd);
  return correct == trials ? 0 : 1;
}
