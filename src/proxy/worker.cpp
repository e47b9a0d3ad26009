#include "proxy/worker.h"

#include "common/completion.h"
#include "common/listen.h"
#include "common/log.h"
#include "proxy/http_session.h"
#include "proxy/tcp_session.h"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/post.hpp>

#include <fmt/format.h>
#include <sys/socket.h>

#include <algorithm>
#include <ctime>
#include <stdexcept>
#include <unordered_set>

namespace spillway::proxy {

namespace asio = boost::asio;
using asio::ip::tcp;

namespace {

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

std::string try_bind(const config::address& listen) {
  asio::io_context io;
  tcp::acceptor acc(io);
  auto ec = open_and_bind(acc, endpoint_of(listen));
  return ec ? ec.message() : std::string();
}

worker::worker(unsigned index, snapshot_ptr initial, upstream::host_events* events)
    : index_(index),
      events_(events),
      random_(balancer::make_random_source(0x5eed0000ULL + index * 7919ULL + static_cast<std::uint64_t>(::getpid()))) {
  view_ = make_view(initial, random_);
  take_wall_offset();
  for (const auto& l : initial->cfg->listeners) {
    // Bound now, so that a taken port fails at startup; listening starts with start(), once the
    // first health checks have answered (until then connections are refused, not queued).
    acceptors_.push_back(bind_listener(l));
  }
}

std::shared_ptr<worker::acceptor_entry> worker::bind_listener(const config::listener& l) {
  auto entry = std::make_shared<acceptor_entry>(acceptor_entry{l.listen.text, tcp::acceptor(io_)});
  if (auto ec = open_and_bind(entry->acceptor, endpoint_of(l.listen))) {
    throw std::runtime_error("listener \"" + l.name + "\" cannot listen on " + l.listen.text + ": " + ec.message());
  }
  return entry;
}

void worker::start_accepting(const std::shared_ptr<acceptor_entry>& entry) {
  boost::system::error_code ec;
  entry->acceptor.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) {
    log::error("worker {}: cannot listen on {}: {}", index_, entry->listen, ec.message());
    return;
  }
  accept_loop(entry);
}

void worker::sync_listeners(const snapshot& snap) {
  // Removed listeners stop accepting; their connections find no listener at their next request
  // and close (see http_session::handle_request). Kept ones keep their socket: no window where the
  // port is closed, whatever else about them changed.
  std::erase_if(acceptors_, [&](const std::shared_ptr<acceptor_entry>& e) {
    if (snap.find_listener(e->listen) != nullptr) {
      return false;
    }
    boost::system::error_code ec;
    e->acceptor.close(ec);
    return true;
  });
  for (const auto& l : snap.cfg->listeners) {
    bool have =
        std::any_of(acceptors_.begin(), acceptors_.end(), [&](const auto& e) { return e->listen == l.listen.text; });
    if (have) {
      continue;
    }
    try {
      auto entry = bind_listener(l);
      if (started_) {
        start_accepting(entry);
      }
      acceptors_.push_back(std::move(entry));
    } catch (const std::exception& e) {
      log::error("worker {}: {}", index_, e.what());
    }
  }
}

worker::~worker() {
  stopping_ = true;
  if (thread_.joinable()) {
    io_.stop();
    thread_.join();
  }
  pool_.shut_down();  // idle sockets close while io_ lives; later closes wake nobody
  h2_pool_.shut_down();
}

void worker::start() {
  started_ = true;
  for (auto& entry : acceptors_) {
    start_accepting(entry);
  }
  start_sweeper();
  thread_ = std::thread([this] { io_.run(); });
}

void worker::join() {
  if (thread_.joinable()) {
    thread_.join();
  }
}

std::future<void> worker::install(snapshot_ptr snap) {
  // A handler that never runs (the io_context stopped) destroys the promise: the future is then
  // ready too, with broken_promise, so nobody waits for a worker that is gone.
  auto done = std::make_shared<std::promise<void>>();
  auto installed = done->get_future();
  asio::post(io_, [this, snap = std::move(snap), done = std::move(done)] {
    if (!draining_) {
      view_ = make_view(snap, random_);
      sync_listeners(*snap);
      // Pooled connections to backends the snapshot no longer has close (h2: drain).
      std::unordered_set<const upstream::host*> hosts;
      for (const auto& c : snap->clusters) {
        for (const auto& h : c->hosts) {
          hosts.insert(h.get());
        }
      }
      auto configured = [&](const upstream::host* h) { return hosts.contains(h); };
      pool_.keep_only(configured);
      h2_pool_.keep_only(configured);
    }
    done->set_value();
  });
  return installed;
}

bool worker::over_connection_limit(const listener_view& l) const {
  // The open connections of every worker, from their own counters: no shared line is written per
  // connection. Workers accepting at the same instant may each see room, so the count can go over
  // max_connections by at most (workers - 1) for a moment.
  std::int64_t open = 0;
  l.traffic->each([&](const stats::listener_traffic& t) {
    const auto closed = static_cast<std::int64_t>(t.connections_closed.get());
    open += static_cast<std::int64_t>(t.connections_total.get()) - closed;
  });
  return open >= static_cast<std::int64_t>(l.cfg->max_connections);
}

void worker::admit(const acceptor_entry& entry, tcp::socket socket) {
  // The listener's protocol as the current snapshot has it (a reload may change it).
  const auto* l = view_->snap->find_listener(entry.listen);
  if (l != nullptr && l->traffic && over_connection_limit(*l)) {
    l->traffic->local(index_).connections_rejected.add();
    boost::system::error_code ignored;
    socket.close(ignored);
    return;
  }
  auto tls = l != nullptr ? l->tls : nullptr;
  if (l != nullptr && l->cfg->proto == config::protocol::tcp) {
    std::make_shared<tcp_session>(*this, entry.listen, std::move(socket), std::move(tls))->start();
  } else {
    std::make_shared<http_session>(*this, entry.listen, std::move(socket), std::move(tls))->start();
  }
}

void worker::accept_loop(std::shared_ptr<acceptor_entry> entry) {
  // Each wake-up takes up to max_accept_batch connections off the backlog (non-blocking accepts
  // after the awaited one). One accept per wake-up made a burst of new connections wait a full
  // round of the worker's other handlers each: wrk opening 256 connections at once saw its
  // last first-requests wait hundreds of milliseconds (p98 of a 3 s run: 140 ms; HAProxy, which
  // accepts up to 64 per wake-up: 21 ms).
  static constexpr int max_accept_batch = 64;
  boost::system::error_code nb;
  entry->acceptor.non_blocking(true, nb);
  asio::co_spawn(
      io_,
      [this, entry]() -> asio::awaitable<void> {
        while (entry->acceptor.is_open()) {
          auto [ec, socket] = co_await entry->acceptor.async_accept(nothrow);
          if (ec) {
            if (ec == asio::error::operation_aborted || !entry->acceptor.is_open()) {
              break;
            }
            // Out of file descriptors or similar: log, back off briefly, keep accepting.
            log::warn("accept on {} failed: {}", entry->listen, ec.message());
            asio::steady_timer pause(io_, std::chrono::milliseconds(50));
            co_await pause.async_wait(nothrow);
            continue;
          }
          admit(*entry, std::move(socket));
          for (int i = 1; i < max_accept_batch && entry->acceptor.is_open(); ++i) {
            boost::system::error_code aec;
            tcp::socket more(io_);
            entry->acceptor.accept(more, aec);
            if (aec) {
              break;  // would_block: the backlog is empty (any other error, the awaited accept reports)
            }
            admit(*entry, std::move(more));
          }
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
    const auto now = std::chrono::steady_clock::now();
    pool_.sweep(now, max_idle);
    h2_pool_.sweep(now, max_idle);
    for (auto* s : sessions_) {
      s->sweep(now);
    }
    http1_states_.trim();
    request_states_.trim();
    flush_log();
    flush_trace();
    take_wall_offset();
    start_sweeper();
  });
}

std::list<downstream_session*>::iterator worker::attach(downstream_session* s) {
  return sessions_.insert(sessions_.end(), s);
}

void worker::detach(std::list<downstream_session*>::iterator it) {
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
  h2_pool_.drain();
  // drain() may close sessions, which detach themselves from sessions_: iterate over a copy.
  std::vector<downstream_session*> current(sessions_.begin(), sessions_.end());
  for (auto* s : current) {
    s->drain();
  }
  drain_timer_.expires_after(timeout);
  drain_timer_.async_wait([this](boost::system::error_code ec) {
    if (ec || sessions_.empty()) {
      return;
    }
    log::warn("worker {}: drain timeout with {} connections still open; closing them", index_, sessions_.size());
    std::vector<downstream_session*> left(sessions_.begin(), sessions_.end());
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

ratelimit::redis_client& worker::redis(const config::address& a) {
  auto& c = redis_[a.text];
  if (!c) {
    c = ratelimit::redis_client::make(io_, a.host, a.port);
  }
  return *c;
}

void worker::stop_now() {
  stopping_ = true;
  flush_log();
  flush_trace();
  io_.stop();
}

bool worker::log_sampled(const snapshot& snap) {
  if (!snap.log) {
    return false;
  }
  const double sample = snap.log->cfg().sample;
  return sample >= 100 || static_cast<double>(random_() % 10000) < sample * 100;
}

void worker::log_access(const snapshot& snap, access_record& r) {
  char time_buf[32];
  const auto wall = std::chrono::system_clock::now();
  const auto secs = std::chrono::system_clock::to_time_t(wall);
  const auto millis = std::chrono::duration_cast<std::chrono::milliseconds>(wall.time_since_epoch()).count() % 1000;
  std::tm tm{};
  gmtime_r(&secs, &tm);
  auto end = fmt::format_to_n(time_buf, sizeof time_buf, "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
                              tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, millis)
                 .out;
  r.time = std::string_view(time_buf, static_cast<std::size_t>(end - time_buf));
  format_access_line(*snap.log, r, log_buffer_);
  if (log_buffer_.size() >= access_log::flush_at) {
    snap.log->submit(log_buffer_);
  }
}

std::string& worker::trace_buffer(const snapshot& snap) {
  if (trace_to_ != snap.tracer) {
    flush_trace();
    trace_to_ = snap.tracer;
  }
  if (trace_buffer_.capacity() < tracing::exporter::buffer_capacity) {
    trace_buffer_.reserve(tracing::exporter::buffer_capacity);  // the first span; later ones come back recycled
  }
  return trace_buffer_;
}

void worker::traced(std::size_t spans) {
  trace_count_ += spans;
  if (trace_count_ >= tracing::exporter::spans_per_buffer) {
    flush_trace();
  }
}

void worker::flush_trace() {
  if (trace_to_) {
    trace_to_->submit(trace_buffer_, trace_count_);  // an empty buffer back, allocated once
  } else {
    trace_buffer_.clear();
  }
  trace_count_ = 0;
}

void worker::take_wall_offset() {
  using namespace std::chrono;
  const auto wall = duration_cast<nanoseconds>(system_clock::now().time_since_epoch()).count();
  const auto steady = duration_cast<nanoseconds>(steady_clock::now().time_since_epoch()).count();
  wall_offset_ns_ = wall - steady;
}

void worker::flush_log() {
  if (!log_buffer_.empty() && view_->snap->log) {
    view_->snap->log->submit(log_buffer_);
  }
  log_buffer_.clear();  // the access log was turned off by a reload: those lines go nowhere
}

}  // namespace spillway::proxy
