#include "proxy/connection_pool.h"

#include <sys/socket.h>

#include <cerrno>

namespace spillway::proxy {

upstream_connection::upstream_connection(boost::asio::ip::tcp::socket s, upstream::host_ptr h,
                                         std::shared_ptr<upstream::upstream_stats> st, tls::client_context_ptr t)
    : stream(std::move(s)),
      tls(std::move(t)),
      host(std::move(h)),
      stats(std::move(st)),
      endpoint_version(host->endpoint_version()) {
  host->connections_active.fetch_add(1, std::memory_order_relaxed);
}

upstream_connection::~upstream_connection() {
  host->connections_active.fetch_sub(1, std::memory_order_relaxed);
  if (stats) {
    stats->connections.fetch_sub(1, std::memory_order_relaxed);  // the max_connections reservation
  }
}

namespace {

// An idle HTTP connection must have nothing to read: readable means the backend closed it (EOF),
// reset it, or sent bytes nobody asked for. One non-blocking peek tells, and saves a request from
// being written into a dead connection.
bool still_open(boost::asio::ip::tcp::socket& s) {
  char byte;
  ssize_t n = ::recv(s.native_handle(), &byte, 1, MSG_PEEK | MSG_DONTWAIT);
  return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
}

}  // namespace

upstream_connection_ptr connection_pool::take(const upstream::host* h, const tls::client_context* tls) {
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
    if (conn->tls.get() != tls || conn->endpoint_version != h->endpoint_version()) {
      continue;  // made before a reload changed TLS settings, or before DNS moved the host: closed
    }
    // Every reuse is checked, however recently the connection was used: bytes a backend sent
    // after its response (a body behind a 204, an answer to nothing) would otherwise be read as
    // the next request's response. The peek is one non-blocking syscall.
    if (still_open(conn->stream.socket())) {
      return conn;
    }
  }
  return nullptr;
}

void connection_pool::put(upstream_connection_ptr conn) {
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

std::size_t connection_pool::idle_count() const {
  std::size_t n = 0;
  for (const auto& [h, list] : idle_) {
    n += list.size();
  }
  return n;
}

}  // namespace spillway::proxy
