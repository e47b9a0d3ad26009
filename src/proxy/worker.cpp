#include "proxy/worker.h"

#include "common/log.h"
#include "proxy/http_session.h"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <sys/socket.h>

#include <stdexcept>

namespace spillway::proxy {

namespace asio = boost::asio;
using asio::ip::tcp;

namespace {

constexpr auto nothrow = asio::as_tuple(asio::use_awaitable);

std::shared_ptr<worker_view> make_view(const snapshot_ptr& snap, balancer::random_source& random) {
  auto view = std::make_shared<worker_view>();
  view->snap = snap;
  for (const auto& c : snap->clusters) {
    std::vector<upstream::host*> hosts;
    for (const auto& h : c->hosts) {
      hosts.push_back(h.get());
    }
    balancer::host_set set(std::move(hosts), c->cfg.degrade.panic_threshold, c->cfg.slow_start);
    view->balancers.push_back(balancer::make_load_balancer(c->cfg.balance, std::move(set), random));
  }
  return view;
}

tcp::endpoint endpoint_of(const config::address& a) { return tcp::endpoint(asio::ip::make_address(a.host), a.port); }

}  // namespace

worker::worker(unsigned index, snapshot_ptr initial, upstream::host_events* events)
    : index_(index),
      events_(events),
      random_(balancer::make_random_source(0x5eed0000ULL + index * 7919ULL + static_cast<std::uint64_t>(::getpid()))) {
  view_ = make_view(initial, random_);
  for (std::size_t i = 0; i < initial->cfg->listeners.size(); ++i) {
    const auto& l = initial->cfg->listeners[i];
    if (l.proto != config::protocol::http) {
      continue;  // tcp listeners arrive with the L4 proxy
    }
    auto entry = std::make_unique<acceptor_entry>(acceptor_entry{i, tcp::acceptor(io_)});
    auto& acc = entry->acceptor;
    boost::system::error_code ec;
    auto ep = endpoint_of(l.listen);
    acc.open(ep.protocol(), ec);
    if (!ec) {
      acc.set_option(tcp::acceptor::reuse_address(true), ec);
    }
    if (!ec) {
      // Every worker binds the same address; the kernel spreads new connections over them.
      int one = 1;
      if (::setsockopt(acc.native_handle(), SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) != 0) {
        ec = boost::system::error_code(errno, boost::system::system_category());
      }
    }
    if (!ec) {
      // Bound now, so that a taken port fails at startup; listening starts with start(), once the
      // first health checks have answered (until then connections are refused, not queued).
      acc.bind(ep, ec);
    }
    if (ec) {
      throw std::runtime_error("listener \"" + l.name + "\" cannot listen on " + l.listen.text + ": " + ec.message());
    }
    acceptors_.push_back(std::move(entry));
  }
}

worker::~worker() {
  stopping_ = true;
  if (thread_.joinable()) {
    io_.stop();
    thread_.join();
  }
}

void worker::start() {
  for (auto& entry : acceptors_) {
    boost::system::error_code ec;
    entry->acceptor.listen(asio::socket_base::max_listen_connections, ec);
    if (ec) {
      log::error("worker {}: cannot listen on {}: {}", index_,
                 view_->snap->cfg->listeners[entry->listener_index].listen.text, ec.message());
      continue;
    }
    accept_loop(*entry);
  }
  start_sweeper();
  thread_ = std::thread([this] { io_.run(); });
}

void worker::join() {
  if (thread_.joinable()) {
    thread_.join();
  }
}

void worker::install(snapshot_ptr snap) {
  asio::post(io_, [this, snap = std::move(snap)] { view_ = make_view(snap, random_); });
}

void worker::accept_loop(acceptor_entry& entry) {
  asio::co_spawn(
      io_,
      [this, &entry]() -> asio::awaitable<void> {
        while (entry.acceptor.is_open()) {
          auto [ec, socket] = co_await entry.acceptor.async_accept(nothrow);
          if (ec) {
            if (ec == asio::error::operation_aborted || !entry.acceptor.is_open()) {
              break;
            }
            // Out of file descriptors or similar: log, back off briefly, keep accepting.
            log::warn("accept on {} failed: {}", view_->snap->cfg->listeners[entry.listener_index].listen.text,
                      ec.message());
            asio::steady_timer pause(io_, std::chrono::milliseconds(50));
            co_await pause.async_wait(nothrow);
            continue;
          }
          std::make_shared<http_session>(*this, entry.listener_index, std::move(socket))->start();
        }
      },
      asio::detached);
}

void worker::start_sweeper() {
  sweeper_.expires_after(std::chrono::seconds(1));
  sweeper_.async_wait([this](boost::system::error_code ec) {
    if (ec || draining_) {
      return;
    }
    // Pooled connections are closed after the smallest idle timeout of the current upstreams.
    auto max_idle = std::chrono::steady_clock::duration(config::timeouts{}.idle);
    for (const auto& c : view_->snap->clusters) {
      max_idle = std::min<std::chrono::steady_clock::duration>(max_idle, c->cfg.timeout.idle);
    }
    pool_.sweep(std::chrono::steady_clock::now(), max_idle);
    start_sweeper();
  });
}

std::list<http_session*>::iterator worker::attach(http_session* s) { return sessions_.insert(sessions_.end(), s); }

void worker::detach(std::list<http_session*>::iterator it) {
  sessions_.erase(it);
  if (draining_ && !stopping_) {
    maybe_finish_drain();
  }
}

void worker::drain(std::chrono::milliseconds timeout) {
  asio::post(io_, [this, timeout] { begin_drain(timeout); });
}

void worker::begin_drain(std::chrono::milliseconds timeout) {
  if (draining_) {
    return;
  }
  draining_ = true;
  for (auto& entry : acceptors_) {
    boost::system::error_code ec;
    entry->acceptor.close(ec);
  }
  sweeper_.cancel();
  pool_.clear();
  // drain() may close sessions, which detach themselves from sessions_: iterate over a copy.
  std::vector<http_session*> current(sessions_.begin(), sessions_.end());
  for (auto* s : current) {
    s->drain();
  }
  drain_timer_.expires_after(timeout);
  drain_timer_.async_wait([this](boost::system::error_code ec) {
    if (ec || sessions_.empty()) {
      return;
    }
    log::warn("worker {}: drain timeout with {} connections still open; closing them", index_, sessions_.size());
    std::vector<http_session*> left(sessions_.begin(), sessions_.end());
    for (auto* s : left) {
      s->force_close();
    }
    // Their coroutines now end on errors and detach; should one not, stop a moment later anyway.
    drain_timer_.expires_after(std::chrono::seconds(1));
    drain_timer_.async_wait([this](boost::system::error_code ec2) {
      if (!ec2) {
        stop_now();
      }
    });
  });
  maybe_finish_drain();
}

void worker::maybe_finish_drain() {
  if (sessions_.empty()) {
    drain_timer_.cancel();
    stop_now();
  }
}

void worker::stop_now() {
  stopping_ = true;
  io_.stop();
}

}  // namespace spillway::proxy
