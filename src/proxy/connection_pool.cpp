#include "proxy/connection_pool.h"

#include "common/completion.h"
#include "common/socket_calls.h"

#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <optional>

namespace spillway::proxy {

upstream_connection::upstream_connection(boost::asio::ip::tcp::socket s, upstream::host_ptr h,
                                         std::shared_ptr<upstream::upstream_stats> st, tls::client_context_ptr t)
    : stream(std::move(s)), tls(std::move(t)), host(std::move(h)), stats(std::move(st)) {
  host->connections_active.fetch_add(1, std::memory_order_relaxed);
}

upstream_connection::~upstream_connection() {
  host->connections_active.fetch_sub(1, std::memory_order_relaxed);
  if (stats) {
    stats->connections.fetch_sub(1, std::memory_order_relaxed);  // the max_connections reservation
    if (pool != nullptr) {
      pool->released(stats.get());
    }
  }
}

namespace {

// An idle HTTP connection must have nothing to read: readable means the backend closed it (EOF),
// reset it, or sent bytes nobody asked for. Its idle watch tells without a system call; a
// connection that was not watched (TLS, or its last read filled the buffer), or one for which
// `peek` asks for certainty, gets one non-blocking peek. Either saves a request from being
// written into a dead connection. Ends the watch.
//
// What the watch has not seen: a FIN (or reset) that arrived but that epoll has not reported yet
// when the connection is taken (one that came with the response's last bytes is seen: see
// idle_watch.h). A request without a body that meets such a connection is sent again on a new one
// (a stale connection, upstream_attempt::try_failed); one with a body asks for the peek, which
// asks the kernel itself.
bool still_quiet(upstream_connection& c, bool peek = false) {
  switch (c.idle.stop(c.stream.socket())) {
    case idle_watch::state::quiet:
      if (!peek) {
        return true;
      }
      break;
    case idle_watch::state::stirred:
      return false;
    case idle_watch::state::off:
      break;
  }
  char byte;
  ssize_t n = socket_calls::recv(c.stream.socket().native_handle(), &byte, 1, MSG_PEEK | MSG_DONTWAIT);
  return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
}

}  // namespace

upstream_connection_ptr connection_pool::take(const upstream::host* h, const tls::client_context* tls, bool peek) {
  auto it = idle_.find(h);
  if (it == idle_.end()) {
    return nullptr;
  }
  auto& list = it->second;
  while (!list.empty()) {
    // Most recently used first: it is the least likely to have been closed by the backend's own
    // idle timeout.
    auto conn = std::move(list.back());
    list.pop_back();
    if (conn->tls.get() != tls) {
      continue;  // made before a reload changed TLS settings: closed
    }
    // Every reuse is checked, however recently the connection was used: bytes a backend sent
    // after its response (a body behind a 204, an answer to nothing) would otherwise be read as
    // the next request's response.
    if (still_quiet(*conn, peek)) {
      return conn;
    }
  }
  return nullptr;
}

void connection_pool::put(upstream_connection_ptr conn) {
  bool other_host_waits = false;
  for (auto* w : waiters_) {
    if (w->woken || w->stats != conn->stats.get()) {
      continue;
    }
    if (w->host == conn->host.get() && w->tls == conn->tls.get()) {
      if (!still_quiet(*conn)) {
        return;  // closed: its reservation wakes a waiter (released())
      }
      w->handed = std::move(conn);
      wake(*w);
      return;
    }
    other_host_waits = true;
  }
  if (other_host_waits) {
    return;  // closed: its reservation goes to the request waiting for another host
  }
  auto& list = idle_[conn->host.get()];
  if (list.size() >= max_idle_per_host) {
    return;  // dropped: closes the socket
  }
  conn->idle_since = std::chrono::steady_clock::now();
  list.push_back(std::move(conn));
}

void connection_pool::sweep(std::chrono::steady_clock::time_point now, std::chrono::steady_clock::duration max_idle) {
  for (auto it = idle_.begin(); it != idle_.end();) {
    auto& list = it->second;
    std::erase_if(list, [&](const upstream_connection_ptr& c) { return now - c->idle_since > max_idle; });
    if (list.empty()) {
      it = idle_.erase(it);
    } else {
      ++it;
    }
  }
}

void connection_pool::clear() { idle_.clear(); }

void connection_pool::keep_only(const std::function<bool(const upstream::host*)>& configured) {
  std::erase_if(idle_, [&](const auto& item) { return !configured(item.first); });
}

void connection_pool::wake(waiter& w) {
  w.woken = true;
  w.timer->cancel();
}

void connection_pool::released(const upstream::upstream_stats* stats) {
  if (shut_down_) {
    return;
  }
  for (auto* w : waiters_) {
    if (!w->woken && w->stats == stats) {
      wake(*w);
      return;
    }
  }
}

bool connection_pool::evict_other(const upstream::upstream_stats* stats, const upstream::host* keep) {
  for (auto& [h, list] : idle_) {
    if (h == keep || list.empty() || list.front()->stats.get() != stats) {
      continue;
    }
    // The oldest: the most likely to be closed by the backend's idle timeout anyway. Its
    // destructor frees the reservation (and wakes the first waiter, maybe the caller itself).
    list.erase(list.begin());
    return true;
  }
  return false;
}

boost::asio::awaitable<connection_pool::wait_result> connection_pool::wait(
    boost::asio::io_context& io, const upstream::host* h, const tls::client_context* tls,
    upstream::upstream_stats& stats, std::uint32_t max_connections, std::chrono::steady_clock::time_point give_up) {
  boost::asio::steady_timer timer(io);
  waiter self{h, tls, &stats, &timer, nullptr, false};
  // Leaves the list however the coroutine ends (also when its frame is destroyed while waiting).
  class registration {
   public:
    registration(std::list<waiter*>& list, waiter* w) : list_(list), it_(list.insert(list.end(), w)) {}
    ~registration() { list_.erase(it_); }
    registration(const registration&) = delete;
    registration& operator=(const registration&) = delete;

   private:
    std::list<waiter*>& list_;
    std::list<waiter*>::iterator it_;
  };
  std::optional<registration> reg;
  reg.emplace(waiters_, &self);
  wait_result result;
  while (true) {
    if (self.handed) {
      result.conn = std::move(self.handed);
      break;
    }
    if (h != nullptr && (result.conn = take(h, tls))) {
      break;
    }
    if (stats.try_reserve_connection(max_connections) ||
        (evict_other(&stats, h) && stats.try_reserve_connection(max_connections))) {
      result.reserved = true;
      break;
    }
    const auto now = std::chrono::steady_clock::now();
    if (now >= give_up || shut_down_) {
      break;
    }
    self.woken = false;
    timer.expires_at(std::min(give_up, now + recheck_));
    co_await timer.async_wait(nothrow);
  }
  reg.reset();
  if (self.handed) {
    put(std::move(self.handed));  // handed over while this waiter had already got a reservation
  }
  co_return result;
}

std::size_t connection_pool::idle_count() const {
  std::size_t n = 0;
  for (const auto& [h, list] : idle_) {
    n += list.size();
  }
  return n;
}

}  // namespace spillway::proxy
