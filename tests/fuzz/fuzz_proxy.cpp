// libFuzzer target: the whole HTTP request path, client bytes in, backend bytes out.
//
// Once per process, a real proxy::worker (the same class `spillway` runs, on its own thread and
// io_context) is started from a config whose one http listener and one upstream are on loopback
// ports, and a recording backend is started on threads of its own. Per input:
//   1. connect to the listener, write the input, shut our sending side (SHUT_WR), and read until
//      the proxy closes (or a deadline passes);
//   2. check what the backend received: every byte parses with the strict request parser (no
//      ambiguous framing, obs-fold, bare LF, CL+TE, duplicate Content-Length or CR/LF/NUL in a
//      header is ever forwarded), every forwarded head passes parser_driver.h's check_head, and
//      none is ambiguous in the ways check_forwarded() lists (Host lists, HTTP/1.0 with
//      Transfer-Encoding, `*` on other methods, an absolute-form target naming another host);
//   3. check what the client received: a sequence of well-formed responses, exactly one carrying
//      the backend's marker per request the backend answered, and no more final responses than
//      requests the client sent (plus one local reply to what could not be parsed).
// A crash, a leak or an ASan/UBSan report anywhere in the proxy is caught by the sanitizers.
//
// Built a second time as fuzz_h2 (SPILLWAY_FUZZ_H2): the input is what a client sends after the
// HTTP/2 preface (frames, HPACK blocks), so the fuzzer explores the HTTP/2 front end. The backend's
// checks are the same (what any stream makes of a request must be a strict, unambiguous HTTP/1
// request); the client must receive a sequence of whole HTTP/2 frames, each within the frame size.

#include "config/config.h"
#include "parser_driver.h"
#include "proxy/snapshot.h"
#include "proxy/worker.h"
#include "tracing/context.h"
#include "upstream/cluster.h"

#include "common/log.h"
#include "common/stats.h"

#include <boost/asio/ip/address.hpp>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace {

using spillway::fuzz::check;
using spillway::fuzz::fail;
namespace http = spillway::http;

// Every response of the backend carries this header, so that the client side can tell the
// backend's answers from the proxy's local replies. Content-Length: 0 makes a response to HEAD
// and to GET look the same on the wire.
constexpr std::string_view backend_response = "HTTP/1.1 200 OK\r\nX-Fuzz-Backend: 1\r\nContent-Length: 0\r\n\r\n";
constexpr auto client_deadline = std::chrono::milliseconds(2000);
// SPILLWAY_FUZZ_VERBOSE=1 prints what the backend and the client receive (to read a reproducer).
const bool verbose = std::getenv("SPILLWAY_FUZZ_VERBOSE") != nullptr;

int listen_loopback(std::uint16_t& port) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  check(fd >= 0, "socket()");
  int one = 1;
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  check(::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0, "bind()");
  check(::listen(fd, 64) == 0, "listen()");
  socklen_t len = sizeof a;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  port = ntohs(a.sin_port);
  return fd;
}

// A port that was free a moment ago: the worker binds its own acceptor (SO_REUSEPORT) there.
std::uint16_t free_port() {
  std::uint16_t port = 0;
  ::close(listen_loopback(port));
  return port;
}

bool send_all(int fd, const char* p, std::size_t n) {
  while (n > 0) {
    auto w = ::send(fd, p, n, MSG_NOSIGNAL);
    if (w <= 0) {
      return false;
    }
    p += w;
    n -= static_cast<std::size_t>(w);
  }
  return true;
}

// What a proxy must never pass on, beyond what the strict parser refuses: requests whose meaning a
// backend could read differently from the proxy (RFC 9112 sections 3.2, 3.2.2 and 6.1).
void check_forwarded(const http::message_head& h) {
  check(h.count("host") <= 1, "forwarded more than one Host");
  check(h.version_minor == 0 || h.count("host") == 1, "forwarded an HTTP/1.1 request without Host");
  const auto host = h.find("host");
  check(host.find(',') == std::string_view::npos, "forwarded a Host list");
  check(h.version_minor == 1 || h.count("transfer-encoding") == 0, "forwarded HTTP/1.0 with Transfer-Encoding");
  check(h.url != "*" || h.method == "OPTIONS", "forwarded an asterisk-form target on a method other than OPTIONS");
  // Tracing is on: every request carries exactly one traceparent, Spillway's own (version 00).
  spillway::tracing::context trace;
  check(h.count("traceparent") == 1 && h.find("traceparent").size() == spillway::tracing::traceparent_size &&
            spillway::tracing::parse_traceparent(h.find("traceparent"), trace),
        "forwarded no traceparent, several, or one that is not Spillway's");
  for (std::string_view scheme : {"http://", "https://"}) {
    if (h.url.size() > scheme.size() && http::iequals(h.url.substr(0, scheme.size()), scheme)) {
      auto authority = h.url.substr(scheme.size());
      authority = authority.substr(0, authority.find_first_of("/?#"));
      check(http::iequals(authority, host), "forwarded an absolute-form target whose authority is not Host");
    }
  }
}

// The recording backend: one thread accepts, one thread per connection parses what the proxy
// forwards with the strict parser and answers each complete request at once.
class backend {
 public:
  backend() : fd_(listen_loopback(port_)) {
    std::thread([this] { accept_loop(); }).detach();
  }
  std::uint16_t port() const { return port_; }
  // Requests received whole (and answered) since the process started.
  std::uint64_t answered() const { return answered_.load(); }

 private:
  void accept_loop() {
    for (;;) {
      int c = ::accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (c < 0) {
        continue;
      }
      int one = 1;
      ::setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
      std::thread([this, c] { serve(c); }).detach();
    }
  }

  void serve(int c) {
    http::parser p(http::parser::kind::request);
    std::vector<char> buf(16384);
    std::string pending;  // received and not yet consumed
    bool in_body = false;
    for (;;) {
      auto n = ::recv(c, buf.data(), buf.size(), 0);
      if (n <= 0) {
        break;
      }
      pending.append(buf.data(), static_cast<std::size_t>(n));
      if (verbose) {
        std::fprintf(stderr, "backend received %zd bytes:\n%.*s\n", n, static_cast<int>(n), buf.data());
      }
      std::size_t pos = 0;
      // Until the parser asks for more: a bodiless message completes on a feed of zero bytes.
      for (;;) {
        auto r = p.feed(pending.data() + pos, pending.size() - pos);
        if (r.what == http::parser::event::error) {
          std::fprintf(stderr, "backend received bytes the strict parser refuses (%s):\n%s\n", p.error_reason(),
                       pending.c_str());
          fail("the proxy forwarded a malformed or ambiguous request");
        }
        pos += r.consumed;
        if (r.what == http::parser::event::headers_complete) {
          spillway::fuzz::check_head(p.head(), http::parser::kind::request);
          check_forwarded(p.head());
          in_body = true;
        } else if (r.what == http::parser::event::message_complete) {
          check(in_body, "message_complete without a head");
          in_body = false;
          answered_.fetch_add(1);
          // Like a real server, close after a request that asked for it (llhttp also honours a
          // `Connection: close` sent in the trailers).
          if (!send_all(c, backend_response.data(), backend_response.size()) || !p.head().keep_alive) {
            ::close(c);
            return;
          }
        } else {
          break;  // need_more: everything was consumed
        }
      }
      pending.erase(0, pos);
    }
    ::close(c);
  }

  std::uint16_t port_ = 0;
  int fd_;
  std::atomic<std::uint64_t> answered_{0};
};

struct proxy_under_test {
  std::unique_ptr<backend> be;
  std::unique_ptr<spillway::proxy::worker> worker;
  std::uint16_t port = 0;
};

proxy_under_test* proxy = nullptr;
std::chrono::steady_clock::time_point stalled_until;

void stop_proxy() {
  if (proxy != nullptr && proxy->worker) {
    proxy->worker->drain(std::chrono::milliseconds(0));
    proxy->worker->join();
    proxy->worker.reset();
  }
}

proxy_under_test& start_proxy() {
  if (proxy != nullptr) {
    return *proxy;
  }
  namespace config = spillway::config;
  spillway::log::set_level(spillway::log::level::error);
  spillway::stats::set_worker_count(1);
  proxy = new proxy_under_test;
  proxy->be = std::make_unique<backend>();
  proxy->port = free_port();
  // Short client-side deadlines: an input that leaves a request unfinished ends in a second, and
  // nothing is retried, so that every request the backend answers was sent once.
  const std::string text =
      "workers: 1\n"
      "admin: { listen: 127.0.0.1:" +
      std::to_string(free_port()) +
      " }\n"
      "listeners:\n"
      "  - listen: 127.0.0.1:" +
      std::to_string(proxy->port) +
      "\n"
      "    max_request_headers: 8k\n"
      "    max_request_body: 64k\n"
#ifndef SPILLWAY_FUZZ_H2
      // fuzz_proxy judges what comes back as HTTP/1: an input that begins with the HTTP/2 preface
      // is fuzz_h2's (where it always does).
      "    http2: false\n"
#endif
      "    routes: [ { upstream: b } ]\n"
      "upstreams:\n"
      "  - name: b\n"
      "    backends: [ { address: 127.0.0.1:" +
      std::to_string(proxy->be->port()) +
      " } ]\n"
      "    health_check: false\n"
      "    outlier_detection: false\n"
      "    circuit_breaker: false\n"
      "    retries: false\n"
      "    timeouts: { connect: 1s, request: 1s, header: 1s, idle: 1s }\n"
      "tracing: { sample: 50% }\n";
  auto loaded = config::load_string(text, "fuzz_proxy.yaml");
  if (!loaded.cfg) {
    for (const auto& e : loaded.errors) {
      std::fprintf(stderr, "%s\n", e.str().c_str());
    }
    fail("the fuzz config does not load");
  }
  auto cfg = std::make_shared<const config::config>(std::move(*loaded.cfg));
  std::vector<spillway::upstream::cluster_ptr> clusters;
  for (const auto& u : cfg->upstreams) {
    auto c = std::make_shared<spillway::upstream::cluster>();
    c->cfg = u;
    for (const auto& b : u.backends) {
      boost::asio::ip::tcp::endpoint ep(boost::asio::ip::make_address(b.addr.host), b.addr.port);
      c->hosts.push_back(std::make_shared<spillway::upstream::host>(u.name, b, ep));
    }
    c->stats = std::make_shared<spillway::upstream::upstream_stats>();
    clusters.push_back(std::move(c));
  }
  auto snap = spillway::proxy::make_snapshot(cfg, std::move(clusters), 1);
  proxy->worker = std::make_unique<spillway::proxy::worker>(0, snap, nullptr);
  proxy->worker->start();
  // Joined before static destructors run, so that the worker thread never outlives what it uses.
  std::atexit(stop_proxy);
  return *proxy;
}

int connect_to(std::uint16_t port) {
  for (int attempt = 0; attempt < 200; ++attempt) {
    int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons(port);
    if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0) {
      return fd;
    }
    ::close(fd);
    // The worker thread may not be listening yet on the very first input.
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  fail("cannot connect to the proxy");
}

// Reads until the peer closes or the deadline passes. Returns whether it closed.
bool read_all(int fd, std::string& out) {
  const auto deadline = std::chrono::steady_clock::now() + client_deadline;
  char buf[16384];
  for (;;) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
      return false;
    }
    pollfd pfd{fd, POLLIN, 0};
    if (::poll(&pfd, 1, static_cast<int>(left.count())) <= 0) {
      continue;
    }
    auto n = ::recv(fd, buf, sizeof buf, 0);
    if (n <= 0) {
      return true;  // closed (or reset: the proxy may close with unread client bytes)
    }
    out.append(buf, static_cast<std::size_t>(n));
  }
}

// The methods of the requests in `in`, as far as the strict parser reads them (a response to HEAD
// has no body). Returns the number of request heads it saw.
std::vector<std::string> request_methods(const std::uint8_t* data, std::size_t size) {
  std::vector<std::string> methods;
  http::parser p(http::parser::kind::request);
  const char* in = reinterpret_cast<const char*>(data);
  std::size_t pos = 0;
  while (pos <= size && methods.size() < 256) {
    auto r = p.feed(in + pos, size - pos);
    if (r.what == http::parser::event::error) {
      break;
    }
    pos += r.consumed;
    if (r.what == http::parser::event::headers_complete) {
      methods.emplace_back(p.head().method);
      // CONNECT is answered 405 and the connection closed. An Upgrade goes on as HTTP when the
      // backend declines it (a 101 makes the rest a tunnel, which the caller checks first).
      if (p.head().method == "CONNECT") {
        break;
      }
    } else if (r.what == http::parser::event::need_more) {
      break;
    }
  }
  return methods;
}

// What the client received, read as responses.
struct client_view {
  std::size_t finals = 0;        // final (non-1xx) responses
  std::size_t from_backend = 0;  // of those, the backend's answers
  bool tunnel = false;           // a 101 switched the connection to something else
  const char* why = "";          // why the bytes are not well-formed responses
};

// Reads `got` as a sequence of well-formed responses to the requests whose methods are `methods`
// (in order); a response beyond those is taken as one to HEAD when `unknown_is_head`. Returns false
// (with `out.why`) on a malformed or cut-off response.
bool read_responses(const std::string& got, const std::vector<std::string>& methods, bool unknown_is_head,
                    client_view& out) {
  out = client_view{};
  http::parser p(http::parser::kind::response);
  std::size_t pos = 0;
  bool in_body = false;
  for (;;) {
    p.set_no_body(out.finals < methods.size() ? methods[out.finals] == "HEAD" : unknown_is_head);
    auto r = p.feed(got.data() + pos, got.size() - pos);
    if (r.what == http::parser::event::error) {
      out.why = "the client received a malformed response";
      return false;
    }
    pos += r.consumed;
    if (r.what == http::parser::event::headers_complete) {
      spillway::fuzz::check_head(p.head(), http::parser::kind::response);
      in_body = true;
    } else if (r.what == http::parser::event::message_complete) {
      in_body = false;
      if (p.head().status >= 200) {
        ++out.finals;
        out.from_backend += p.head().find("x-fuzz-backend") == "1" ? 1 : 0;
      }
      if (p.head().status == 101) {
        out.tunnel = true;
        return true;
      }
    } else if (pos == got.size()) {
      break;
    }
  }
  if (in_body || pos != got.size()) {
    if (!(in_body && p.body_until_close() && p.finish() == http::parser::event::message_complete)) {
      out.why = "the proxy closed in the middle of a response";
      return false;
    }
    ++out.finals;
  }
  return true;
}

}  // namespace

#ifdef SPILLWAY_FUZZ_H2
// The client's bytes as HTTP/2: whole frames (a 9-byte header and its payload), none longer than
// the default SETTINGS_MAX_FRAME_SIZE (Spillway never raises it), the first a SETTINGS.
void check_h2_frames(const std::string& got) {
  std::size_t at = 0;
  bool first = true;
  while (at < got.size()) {
    check(got.size() - at >= 9, "a truncated HTTP/2 frame header");
    const auto* p = reinterpret_cast<const unsigned char*>(got.data() + at);
    const std::size_t len = (std::size_t{p[0]} << 16) | (std::size_t{p[1]} << 8) | p[2];
    check(len <= 16384, "an HTTP/2 frame over the maximum frame size");
    check(got.size() - at - 9 >= len, "a truncated HTTP/2 frame");
    check(!first || p[3] == 0x4, "the server's first frame is not SETTINGS");
    first = false;
    at += 9 + len;
  }
}
#endif

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  auto& px = start_proxy();
#ifdef SPILLWAY_FUZZ_H2
  {
    static constexpr std::string_view preface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
    std::string in(preface);
    in.append(reinterpret_cast<const char*>(data), size);
    int fd = connect_to(px.port);
    send_all(fd, in.data(), in.size());
    ::shutdown(fd, SHUT_WR);
    std::string got;
    const bool closed = read_all(fd, got);
    ::close(fd);
    if (verbose) {
      std::fprintf(stderr, "client received %zu bytes (%s)\n", got.size(), closed ? "then closed" : "no close");
    }
    if (closed) {
      check_h2_frames(got);
    }
    return 0;
  }
#endif
  const auto methods = request_methods(data, size);
  const auto answered_before = px.be->answered();

  int fd = connect_to(px.port);
  send_all(fd, reinterpret_cast<const char*>(data), size);
  ::shutdown(fd, SHUT_WR);
  std::string got;
  const bool closed = read_all(fd, got);
  ::close(fd);
  if (verbose) {
    std::fprintf(stderr, "client received (%s):\n%s\n", closed ? "then closed" : "no close before the deadline",
                 got.c_str());
  }
  if (!closed) {
    // A stall is not judged here (timing on a loaded machine). Its session may still send the
    // backend requests, so the next inputs do not count the backend's answers either.
    stalled_until = std::chrono::steady_clock::now() + 2 * client_deadline;
    return 0;
  }
  const bool count_answers = std::chrono::steady_clock::now() > stalled_until;
  const auto answered = px.be->answered() - answered_before;

  // The client's bytes: well-formed responses, each whole. The response to a request the strict
  // parser refused (a local 400) may or may not have a body: the proxy may have read its method
  // (HEAD) from the request line before the error. So both readings are tried.
  client_view view;
  if (!read_responses(got, methods, false, view) && !read_responses(got, methods, true, view)) {
    std::fprintf(stderr, "client received (%s):\n%s\n", view.why, got.c_str());
    fail(view.why);
  }
  if (view.tunnel) {
    return 0;  // a 101: the rest is not HTTP
  }
  const std::size_t finals = view.finals;
  const std::size_t from_backend = view.from_backend;
  if (count_answers && from_backend != answered) {
    std::fprintf(stderr, "backend answered %llu requests, client got %zu of those answers:\n%s\n",
                 static_cast<unsigned long long>(answered), from_backend, got.c_str());
    fail("not exactly one response per request the backend answered");
  }
  if (finals > methods.size() + 1) {
    std::fprintf(stderr, "%zu responses to %zu requests:\n%s\n", finals, methods.size(), got.c_str());
    fail("more responses than requests");
  }
  return 0;
}
