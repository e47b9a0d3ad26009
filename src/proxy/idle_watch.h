#pragma once
// Whether a backend sent anything (bytes, a FIN, a reset) on a keep-alive connection since its
// last response, known without a system call when the connection is reused.
//
// A pooled connection must be quiet before a request goes on it: bytes a backend sent after its
// response would be read as the next request's answer. The plain way to know is a non-blocking
// MSG_PEEK at reuse, one system call per request. HAProxy and NGINX instead keep an idle connection
// registered for readability and drop it when it stirs; this does the same on Asio's epoll
// reactor: a read operation of our own waits in the socket's read queue while the connection has
// no request. It is run only when epoll reports the socket: then one peek tells a real arrival from
// an event left over from the response.
//
// start() is sound right after a read that left the socket empty (it returned less than it asked
// for). With edge-triggered epoll, anything that arrives after that read is reported after it:
// either once the watch waits in the queue (it runs then), or before start(), which the reactor
// remembers for the socket (its speculative-read flag, which a short read_some_exhausting read
// clears and such an event sets); the watch then runs at once. Queuing it asks the kernel nothing.
// A connection whose last read filled the buffer, or that speaks TLS (whose reads the TLS layer
// makes), is not watched: its reuse peeks.
//
// A FIN (or a reset) that arrived together with the response's last bytes was reported by the
// same event as they were, before the read that took them. A read_some_exhausting read (every plain
// read of the proxy's) sees EPOLLRDHUP in that event and leaves the reactor's flag set, so start()
// peeks at once and sees the FIN. connection_pool::take still peeks for a request with a body, as
// it did before reads knew this (kept; one system call per such request).
//
// Depends on Boost 1.81's epoll reactor internals (reactor_op, start_op, a descriptor's read queue; see
// common/reactor_access.h), which the build pins; the unit tests exercise it on real sockets.

#include "common/reactor_access.h"

#include <boost/asio/detail/scheduler.hpp>
#include <boost/asio/ip/tcp.hpp>

namespace spillway::proxy {

struct idle_watch_op;

class idle_watch {
 public:
  enum class state {
    off,      // not watching: whoever reuses the connection must check it another way
    quiet,    // watched since start(), and nothing came
    stirred,  // watched, and the backend sent something, closed, or the socket failed
  };

  idle_watch() = default;
  ~idle_watch();
  idle_watch(const idle_watch&) = delete;
  idle_watch& operator=(const idle_watch&) = delete;

  // Starts watching `s` (open, plain TCP), which the read that completed in the running handler
  // left empty. The thread running the socket's io_context.
  void start(boost::asio::ip::tcp::socket& s);
  // Ends the watch (before the connection carries a request again) and says what it saw. The
  // thread running the socket's io_context.
  state stop(boost::asio::ip::tcp::socket& s);
  bool watching() const { return op_ != nullptr; }

 private:
  friend struct idle_watch_op;
  idle_watch_op* op_ = nullptr;                          // queued in the reactor (or completing) while watching
  reactor_access::reactor* reactor_ = nullptr;           // the socket's, found at the first start()
  boost::asio::detail::scheduler* scheduler_ = nullptr;  // its io_context's, found with it
  bool stirred_ = false;                                 // the watch completed: something came
};

}  // namespace spillway::proxy
