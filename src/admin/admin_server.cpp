#include "admin/admin_server.h"

#include "common/listen.h"
#include "common/log.h"
#include "http/parser.h"
#include "http/status.h"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

#include <fmt/chrono.h>
#include <fmt/format.h>

#include <array>

namespace spillway::admin {

namespace asio = boost::asio;
using asio::ip::tcp;

namespace {

constexpr auto nothrow = asio::as_tuple(asio::use_awaitable);

std::string iso8601(std::chrono::system_clock::time_point t) {
  auto secs = std::chrono::system_clock::to_time_t(t);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  auto millis = std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count() % 1000;
  return fmt::format("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
                     tm.tm_hour, tm.tm_min, tm.tm_sec, millis);
}

// Prometheus label values escape backslash, quote and newline.
std::string label(std::string_view s) {
  std::string out;
  for (char c : s) {
    if (c == '\\' || c == '"') {
      out.push_back('\\');
      out.push_back(c);
    } else if (c == '\n') {
      out.append("\\n");
    } else {
      out.push_back(c);
    }
  }
  return out;
}

}  // namespace

std::string json_string(std::string_view s) {
  std::string out = "\"";
  for (unsigned char c : s) {
    switch (c) {
      case '"':
        out.append("\\\"");
        break;
      case '\\':
        out.append("\\\\");
        break;
      case '\n':
        out.append("\\n");
        break;
      case '\r':
        out.append("\\r");
        break;
      case '\t':
        out.append("\\t");
        break;
      default:
        if (c < 0x20) {
          out.append(fmt::format("\\u{:04x}", c));
        } else {
          out.push_back(static_cast<char>(c));
        }
    }
  }
  out.push_back('"');
  return out;
}

namespace {

// The breaker's window and, while open, when it may go half-open.
std::string breaker_json(const upstream::host& h) {
  if (!h.circuit) {
    return "null";
  }
  const auto now = breaker::clock::now();
  auto r = h.circuit->window(now);
  std::string out = fmt::format("{{\"calls\":{},\"failure_rate\":{:.1f},\"slow_call_rate\":{:.1f}", r.calls,
                                r.failure_rate, r.slow_rate);
  if (h.circuit->current() == breaker::state::open) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(h.circuit->open_until() - now).count();
    out += fmt::format(",\"half_open_in_ms\":{}", std::max<std::int64_t>(0, left));
  }
  out += "}";
  return out;
}

}  // namespace

std::string admin_server::status_json(const state& s) {
  std::string out = "{\"upstreams\":[";
  bool first_up = true;
  for (const auto& c : s.clusters) {
    if (!first_up) {
      out.push_back(',');
    }
    first_up = false;
    out += fmt::format("{{\"name\":{},\"backends\":[", json_string(c->cfg.name));
    bool first = true;
    for (const auto& h : c->hosts) {
      if (!first) {
        out.push_back(',');
      }
      first = false;
      const char* out_reason = h->out_reason();
      out += fmt::format(
          "{{\"address\":{},\"weight\":{},\"backup\":{},\"available\":{},\"out_reason\":{},\"healthy\":{},"
          "\"health_detail\":{},\"ejected\":{},\"ejection_detail\":{},\"breaker\":\"{}\","
          "\"active_requests\":{},\"requests_total\":{},\"failures_total\":{},\"connect_failures_total\":{},"
          "\"consecutive_failures\":{},\"health_check_failures_total\":{},\"ejections_total\":{},"
          "\"connections_active\":{},\"breaker_window\":{}}}",
          json_string(h->address()), h->weight(), h->backup(), out_reason == nullptr,
          out_reason == nullptr ? std::string("null") : json_string(out_reason), h->healthy.load(),
          json_string(h->health_detail), h->ejected.load(), json_string(h->ejected.load() ? h->ejection_detail : ""),
          upstream::to_string(h->breaker.load()), std::max(0, h->active_requests.load()), h->requests_total.load(),
          h->failures_total.load(), h->connect_failures_total.load(), h->consecutive_failures.load(),
          h->health_check_failures_total.load(), h->ejections_total.load(), std::max(0, h->connections_active.load()),
          breaker_json(*h));
    }
    out += "]}";
  }
  out += fmt::format("],\"config\":{{\"generation\":{},\"loaded_at\":{},\"path\":{}", s.generation,
                     json_string(iso8601(s.loaded_at)), json_string(s.config_path));
  if (!s.last_reload_error.empty()) {
    out += fmt::format(",\"last_reload_error\":{}", json_string(s.last_reload_error));
  }
  out += "}}\n";
  return out;
}

std::string admin_server::metrics_text(const state& s) {
  std::string out;
  auto family = [&](std::string_view name, std::string_view type, std::string_view help) {
    out += fmt::format("# HELP {} {}\n# TYPE {} {}\n", name, help, name, type);
  };
  auto per_host = [&](std::string_view name, auto value) {
    for (const auto& c : s.clusters) {
      for (const auto& h : c->hosts) {
        out += fmt::format("{}{{upstream=\"{}\",backend=\"{}\"}} {}\n", name, label(c->cfg.name), label(h->address()),
                           value(*h));
      }
    }
  };
  family("spillway_backend_up", "gauge",
         "1 when the backend can take traffic (healthy, not ejected, breaker not open)");
  per_host("spillway_backend_up", [](const upstream::host& h) { return h.available() ? 1 : 0; });
  family("spillway_backend_healthy", "gauge", "1 when active health checks pass");
  per_host("spillway_backend_healthy", [](const upstream::host& h) { return h.healthy.load() ? 1 : 0; });
  family("spillway_backend_active_requests", "gauge", "requests in flight to the backend");
  per_host("spillway_backend_active_requests",
           [](const upstream::host& h) { return std::max(0, h.active_requests.load()); });
  family("spillway_backend_requests_total", "counter", "requests sent to the backend (each try counts)");
  per_host("spillway_backend_requests_total", [](const upstream::host& h) { return h.requests_total.load(); });
  family("spillway_backend_failures_total", "counter", "connect failures, resets, timeouts and 5xx from the backend");
  per_host("spillway_backend_failures_total", [](const upstream::host& h) { return h.failures_total.load(); });
  family("spillway_backend_connect_failures_total", "counter", "failed connects to the backend");
  per_host("spillway_backend_connect_failures_total",
           [](const upstream::host& h) { return h.connect_failures_total.load(); });
  family("spillway_backend_connections", "gauge", "open connections to the backend (pooled included)");
  per_host("spillway_backend_connections",
           [](const upstream::host& h) { return std::max(0, h.connections_active.load()); });
  family("spillway_backend_ejected", "gauge", "1 while outlier detection has the backend ejected");
  per_host("spillway_backend_ejected", [](const upstream::host& h) { return h.ejected.load() ? 1 : 0; });
  family("spillway_health_check_failures_total", "counter", "active health checks that failed");
  per_host("spillway_health_check_failures_total",
           [](const upstream::host& h) { return h.health_check_failures_total.load(); });
  family("spillway_health_transitions_total", "counter", "health flips (up to down and down to up)");
  per_host("spillway_health_transitions_total",
           [](const upstream::host& h) { return h.health_transitions_total.load(); });
  family("spillway_ejections_total", "counter", "ejections by passive outlier detection");
  per_host("spillway_ejections_total", [](const upstream::host& h) { return h.ejections_total.load(); });
  auto per_upstream = [&](std::string_view name, std::string_view extra, auto value) {
    for (const auto& c : s.clusters) {
      out += fmt::format("{}{{upstream=\"{}\"{}}} {}\n", name, label(c->cfg.name), extra, value(*c->stats));
    }
  };
  family("spillway_upstream_requests_active", "gauge", "client requests in flight to the upstream");
  per_upstream("spillway_upstream_requests_active", "",
               [](const upstream::upstream_stats& st) { return st.active_requests.load(); });
  family("spillway_retries_total", "counter", "retry tries, by whether the retry got a good answer");
  per_upstream("spillway_retries_total", ",result=\"success\"",
               [](const upstream::upstream_stats& st) { return st.retries_success.load(); });
  per_upstream("spillway_retries_total", ",result=\"failure\"",
               [](const upstream::upstream_stats& st) { return st.retries_failure.load(); });
  family("spillway_retry_budget_exhausted_total", "counter", "retries not made because the retry budget was used up");
  per_upstream("spillway_retry_budget_exhausted_total", "",
               [](const upstream::upstream_stats& st) { return st.retry_budget_exhausted.load(); });
  family("spillway_no_healthy_upstream_total", "counter", "requests answered 503 because no backend was available");
  per_upstream("spillway_no_healthy_upstream_total", "",
               [](const upstream::upstream_stats& st) { return st.no_healthy_upstream.load(); });
  family("spillway_breaker_state", "gauge", "circuit breaker state: 0 closed, 1 open, 2 half_open");
  per_host("spillway_breaker_state", [](const upstream::host& h) { return static_cast<int>(h.breaker.load()); });
  family("spillway_breaker_transitions_total", "counter", "circuit breaker transitions");
  static constexpr std::pair<const char*, const char*> kinds[] = {
      {"closed", "open"}, {"open", "half_open"}, {"half_open", "closed"}, {"half_open", "open"}};
  for (const auto& c : s.clusters) {
    for (const auto& h : c->hosts) {
      for (std::size_t k = 0; k < 4; ++k) {
        out += fmt::format(
            "spillway_breaker_transitions_total{{upstream=\"{}\",backend=\"{}\",from=\"{}\",to=\"{}\"}} {}\n",
            label(c->cfg.name), label(h->address()), kinds[k].first, kinds[k].second, h->breaker_transitions[k].load());
      }
    }
  }
  family("spillway_upstream_overflow_total", "counter", "requests answered 503 at once because a limit was reached");
  per_upstream("spillway_upstream_overflow_total", ",limit=\"max_requests\"",
               [](const upstream::upstream_stats& st) { return st.overflow_max_requests.load(); });
  per_upstream("spillway_upstream_overflow_total", ",limit=\"max_pending\"",
               [](const upstream::upstream_stats& st) { return st.overflow_max_pending.load(); });
  per_upstream("spillway_upstream_overflow_total", ",limit=\"max_connections\"",
               [](const upstream::upstream_stats& st) { return st.overflow_max_connections.load(); });
  family("spillway_upstream_connections", "gauge", "open connections to the upstream's backends");
  per_upstream("spillway_upstream_connections", "",
               [](const upstream::upstream_stats& st) { return st.connections.load(); });
  family("spillway_upstream_pending", "gauge", "requests waiting for a connection");
  per_upstream("spillway_upstream_pending", "", [](const upstream::upstream_stats& st) { return st.pending.load(); });
  family("spillway_config_reloads_total", "counter", "config reloads by result");
  out += fmt::format("spillway_config_reloads_total{{result=\"success\"}} {}\n", s.reloads_ok);
  out += fmt::format("spillway_config_reloads_total{{result=\"failure\"}} {}\n", s.reloads_failed);
  family("spillway_config_last_reload_success", "gauge", "1 when the last reload (if any) was applied");
  out += fmt::format("spillway_config_last_reload_success {}\n", s.last_reload_error.empty() ? 1 : 0);
  family("spillway_config_generation", "gauge", "generation of the running config");
  out += fmt::format("spillway_config_generation {}\n", s.generation);
  return out;
}

std::string admin_server::dashboard_html() {
  // A minimal live view; issue #7 grows it into the full dashboard.
  return R"(<!doctype html>
<html><head><meta charset="utf-8"><title>Spillway</title>
<style>body{font-family:sans-serif;margin:1.5em}table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:4px 8px}
.up{background:#d4f7d4}.down{background:#f7d4d4}</style></head>
<body><h1>Spillway</h1><div id="gen"></div><div id="ups"></div>
<script>
async function tick(){
  try{
    const s=await (await fetch('/status')).json();
    document.getElementById('gen').textContent='config generation '+s.config.generation+' loaded '+s.config.loaded_at;
    let h='';
    for(const u of s.upstreams){
      h+='<h2>'+u.name+'</h2><table><tr><th>backend</th><th>healthy</th><th>ejected</th><th>breaker</th><th>in flight</th><th>requests</th><th>failures</th></tr>';
      for(const b of u.backends){
        const ok=b.healthy&&!b.ejected&&b.breaker!=='open';
        h+='<tr class="'+(ok?'up':'down')+'"><td>'+b.address+'</td><td>'+b.healthy+'</td><td>'+b.ejected+'</td><td>'+b.breaker+'</td><td>'+b.active_requests+'</td><td>'+b.requests_total+'</td><td>'+b.failures_total+'</td></tr>';
      }
      h+='</table>';
    }
    document.getElementById('ups').innerHTML=h;
  }catch(e){}
}
tick();setInterval(tick,1000);
</script></body></html>
)";
}

struct admin_server::connection : std::enable_shared_from_this<connection> {
  connection(admin_server& server, tcp::socket s) : server_(server), socket_(std::move(s)) {}

  asio::awaitable<void> run() {
    std::array<char, 8192> buf;
    std::size_t begin = 0;
    std::size_t end = 0;
    while (true) {
      // headers
      while (true) {
        if (begin == end) {
          begin = end = 0;
          auto [ec, n] = co_await socket_.async_read_some(asio::buffer(buf), nothrow);
          if (ec) {
            co_return;
          }
          end = n;
        }
        auto r = parser_.feed(buf.data() + begin, end - begin);
        if (r.what == http::parser::event::error || parser_.head_bytes() > 64 * 1024) {
          co_await reply(400, "text/plain", "bad request\n", true);
          co_return;
        }
        begin += r.consumed;
        if (r.what == http::parser::event::headers_complete) {
          break;
        }
      }
      // The admin API takes no request bodies worth reading; skip whatever is sent.
      bool complete = false;
      while (!complete) {
        auto r = parser_.feed(buf.data() + begin, end - begin);
        if (r.what == http::parser::event::error) {
          co_return;
        }
        begin += r.consumed;
        complete = r.what == http::parser::event::message_complete;
        if (!complete) {
          begin = end = 0;
          auto [ec, n] = co_await socket_.async_read_some(asio::buffer(buf), nothrow);
          if (ec) {
            co_return;
          }
          end = n;
        }
      }
      const auto& head = parser_.head();
      const bool close = !head.keep_alive;
      std::string method(head.method);
      std::string path(head.url.substr(0, head.url.find('?')));
      if (path == "/status" && (method == "GET" || method == "HEAD")) {
        co_await reply(200, "application/json", status_json(server_.get_state_()), close);
      } else if (path == "/metrics" && (method == "GET" || method == "HEAD")) {
        co_await reply(200, "text/plain; version=0.0.4", metrics_text(server_.get_state_()), close);
      } else if (path == "/" && (method == "GET" || method == "HEAD")) {
        co_await reply(200, "text/html; charset=utf-8", dashboard_html(), close);
      } else if (path == "/reload" && method == "POST") {
        auto result = server_.reload_();
        co_await reply(result.ok ? 200 : 400, "text/plain", result.text, close);
      } else if (path == "/status" || path == "/metrics" || path == "/" || path == "/reload") {
        co_await reply(405, "text/plain", "method not allowed\n", close);
      } else {
        co_await reply(404, "text/plain", "not found\n", close);
      }
      if (close || !socket_.is_open()) {
        co_return;
      }
    }
  }

  asio::awaitable<void> reply(int status, std::string_view type, const std::string& body, bool close) {
    const char* reason = http::reason_phrase(status);
    auto head =
        fmt::format("HTTP/1.1 {} {}\r\ncontent-type: {}\r\ncontent-length: {}\r\ncache-control: no-store\r\n{}\r\n",
                    status, reason, type, body.size(), close ? "connection: close\r\n" : "");
    std::array<asio::const_buffer, 2> bufs{asio::buffer(head), asio::buffer(body)};
    auto [ec, n] = co_await asio::async_write(socket_, bufs, nothrow);
    if (ec || close) {
      boost::system::error_code ignored;
      socket_.close(ignored);
    }
  }

  admin_server& server_;
  tcp::socket socket_;
  http::parser parser_{http::parser::kind::request};
};

admin_server::admin_server(asio::io_context& io, const config::address& listen, state_fn get_state, reload_fn reload)
    : io_(io), acceptor_(io), get_state_(std::move(get_state)), reload_(std::move(reload)) {
  boost::system::error_code ec;
  tcp::endpoint ep(asio::ip::make_address(listen.host, ec), listen.port);
  if (!ec) {
    // SO_REUSEPORT like the listeners: shared with a new process during a zero-downtime restart.
    ec = open_and_bind(acceptor_, ep);
  }
  if (!ec) {
    acceptor_.listen(asio::socket_base::max_listen_connections, ec);
  }
  if (ec) {
    throw std::runtime_error("admin API cannot listen on " + listen.text + ": " + ec.message());
  }
}

void admin_server::start() {
  asio::co_spawn(
      io_,
      [this]() -> asio::awaitable<void> {
        while (acceptor_.is_open()) {
          auto [ec, socket] = co_await acceptor_.async_accept(nothrow);
          if (ec) {
            if (!acceptor_.is_open() || ec == asio::error::operation_aborted) {
              co_return;
            }
            continue;
          }
          auto c = std::make_shared<connection>(*this, std::move(socket));
          asio::co_spawn(
              io_, [c]() { return c->run(); }, asio::detached);
        }
      },
      asio::detached);
}

void admin_server::stop() {
  boost::system::error_code ec;
  acceptor_.close(ec);
}

}  // namespace spillway::admin
