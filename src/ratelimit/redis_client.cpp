#include "ratelimit/redis_client.h"

#include "common/completion.h"
#include "common/log.h"

#include <openssl/sha.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/connect.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/write.hpp>

#include <fmt/format.h>

#include <algorithm>

namespace spillway::ratelimit {

namespace asio = boost::asio;
using asio::ip::tcp;
using namespace asio::experimental::awaitable_operators;

namespace {
constexpr std::chrono::seconds connect_timeout{1};
constexpr std::chrono::milliseconds max_backoff{2000};
constexpr unsigned timeouts_before_down = 3;
}  // namespace

// Redis's clock (TIME), not ours: every instance's calls are judged on one time line.
const char* const gcra_script = R"lua(
local interval = tonumber(ARGV[1])
local tolerance = tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local new = tat + interval
local ahead = new - now
if ahead > tolerance then
  return {0, ahead - tolerance, ahead - interval}
end
redis.call('SET', KEYS[1], string.format('%d', new), 'PX', math.floor(ahead / 1000) + 1)
return {1, math.floor((tolerance - ahead) / interval), ahead}
)lua";

struct redis_client::call {
  explicit call(asio::io_context& io) : timer(io) {}
  std::string key;
  std::string interval;
  std::string tolerance;
  bool waiting = true;  // false once the caller gave up (timed out)
  bool done = false;
  result r;
  asio::steady_timer timer;  // the caller waits on it; cancelled when the answer is in
};

std::shared_ptr<redis_client> redis_client::make(asio::io_context& io, std::string host, std::uint16_t port) {
  return std::make_shared<redis_client>(io, std::move(host), port);
}

redis_client::redis_client(asio::io_context& io, std::string host, std::uint16_t port)
    : io_(io), host_(std::move(host)), port_(port), socket_(io), backoff_timer_(io) {
  unsigned char digest[SHA_DIGEST_LENGTH];
  SHA1(reinterpret_cast<const unsigned char*>(gcra_script), std::char_traits<char>::length(gcra_script), digest);
  for (auto b : digest) {
    fmt::format_to(std::back_inserter(script_sha_), "{:02x}", b);
  }
}

redis_client::~redis_client() = default;

asio::awaitable<redis_client::result> redis_client::take(const std::string& key, const params& p,
                                                         std::chrono::microseconds timeout) {
  if (state_ == state::backoff || in_flight_.size() >= max_in_flight) {
    co_return result{outcome::unavailable, {}};
  }
  auto c = std::make_shared<call>(io_);
  c->key = key;
  c->interval = std::to_string(std::max<std::int64_t>(1, p.interval_ns / 1000));
  const auto burst = static_cast<std::int64_t>(std::min<std::uint64_t>(p.burst, 1u << 30));
  c->tolerance = std::to_string(std::max<std::int64_t>(1, p.interval_ns / 1000) * burst);
  c->timer.expires_after(timeout);
  send(c, false);
  if (state_ == state::idle) {
    connect();
  }
  co_await c->timer.async_wait(nothrow);
  if (c->done) {
    co_return c->r;
  }
  c->waiting = false;
  if (++timeouts_in_a_row_ >= timeouts_before_down && state_ == state::up) {
    log::warn(
        "rate limit: Redis {}:{} answered none of the last {} calls in time; using on_unavailable until it "
        "does",
        host_, port_, timeouts_in_a_row_);
    down_reported_ = true;
    went_down();
  }
  co_return result{outcome::timeout, {}};
}

void redis_client::send(const std::shared_ptr<call>& c, bool full_script) {
  if (full_script) {
    resp::append_command(out_, {"EVAL", gcra_script, "1", c->key, c->interval, c->tolerance});
  } else {
    resp::append_command(out_, {"EVALSHA", script_sha_, "1", c->key, c->interval, c->tolerance});
  }
  in_flight_.push_back(c);
  if (state_ == state::up && !writing_) {
    writing_ = true;
    asio::co_spawn(
        io_, [self = shared_from_this()] { return self->write_loop(); }, asio::detached);
  }
}

void redis_client::connect() {
  state_ = state::connecting;
  asio::co_spawn(
      io_, [self = shared_from_this()] { return self->run_connection(); }, asio::detached);
}

asio::awaitable<void> redis_client::run_connection() {
  const auto id = ++connection_;
  tcp::resolver resolver(io_);
  asio::steady_timer deadline(io_);
  deadline.expires_after(connect_timeout);
  auto connected = co_await ([&]() -> asio::awaitable<boost::system::error_code> {
    auto [ec, found] = co_await resolver.async_resolve(host_, std::to_string(port_), nothrow);
    if (ec) {
      co_return ec;
    }
    auto [cec, ep] = co_await asio::async_connect(socket_, found, nothrow);
    co_return cec;
  }() || deadline.async_wait(nothrow));
  if (id != connection_) {
    co_return;  // closed meanwhile
  }
  boost::system::error_code ec =
      connected.index() == 0 ? std::get<0>(connected) : boost::system::error_code(asio::error::timed_out);
  if (ec) {
    if (!down_reported_) {
      log::warn("rate limit: cannot reach Redis {}:{}: {}; using on_unavailable until it answers", host_, port_,
                ec.message());
      down_reported_ = true;
    }
    went_down();
    co_return;
  }
  socket_.set_option(tcp::no_delay(true), ec);
  state_ = state::up;
  backoff_ = std::chrono::milliseconds(100);
  timeouts_in_a_row_ = 0;
  log::info("rate limit: connected to Redis {}:{}", host_, port_);
  down_reported_ = false;
  if (!out_.empty() && !writing_) {
    writing_ = true;
    asio::co_spawn(
        io_, [self = shared_from_this()] { return self->write_loop(); }, asio::detached);
  }
  std::string in;
  std::array<char, 16384> chunk;
  for (;;) {
    auto [rec, n] = co_await socket_.async_read_some(asio::buffer(chunk), nothrow);
    if (id != connection_) {
      co_return;
    }
    if (rec) {
      log::warn("rate limit: lost Redis {}:{}: {}; using on_unavailable until it answers", host_, port_,
                rec == asio::error::eof ? "closed by Redis" : rec.message());
      down_reported_ = true;
      went_down();
      co_return;
    }
    in.append(chunk.data(), n);
    std::size_t used = 0;
    for (;;) {
      resp::value reply;
      std::size_t consumed = 0;
      auto s = resp::parse(std::string_view(in).substr(used), consumed, reply);
      if (s == resp::status::incomplete) {
        break;
      }
      if (s == resp::status::malformed || in_flight_.empty()) {
        log::warn("rate limit: Redis {}:{} sent what is not an answer to our calls; reconnecting", host_, port_);
        went_down();
        co_return;
      }
      used += consumed;
      handle_reply(reply);
    }
    in.erase(0, used);
    if (in.size() > max_buffer) {
      log::warn("rate limit: Redis {}:{} sent a reply over {} bytes; reconnecting", host_, port_, max_buffer);
      went_down();
      co_return;
    }
  }
}

asio::awaitable<void> redis_client::write_loop() {
  const auto id = connection_;
  std::string buf;
  while (!out_.empty() && id == connection_ && state_ == state::up) {
    buf.swap(out_);
    out_.clear();
    auto [ec, n] = co_await asio::async_write(socket_, asio::buffer(buf), nothrow);
    buf.clear();
    if (id != connection_) {
      co_return;  // writing_ belongs to the next connection now
    }
    if (ec) {
      writing_ = false;
      went_down();
      co_return;
    }
  }
  if (id == connection_) {
    writing_ = false;
  }
}

void redis_client::handle_reply(const resp::value& reply) {
  auto c = in_flight_.front();
  in_flight_.pop_front();
  timeouts_in_a_row_ = 0;
  if (reply.type == resp::value::kind::error && reply.text.rfind("NOSCRIPT", 0) == 0) {
    if (c->waiting) {
      send(c, true);  // Redis restarted or flushed its scripts: once in full, then by SHA again
    }
    return;
  }
  result r;
  const auto& items = reply.items;
  if (reply.type == resp::value::kind::array && items.size() == 3 &&
      std::all_of(items.begin(), items.end(),
                  [](const resp::value& v) { return v.type == resp::value::kind::integer; })) {
    r.status = outcome::ok;
    r.v.admitted = items[0].number == 1;
    if (r.v.admitted) {
      r.v.remaining = static_cast<std::uint64_t>(std::max<std::int64_t>(0, items[1].number));
    } else {
      r.v.wait_ns = items[1].number * 1000;
    }
    r.v.reset_ns = items[2].number * 1000;
  } else {
    r.status = outcome::error;
    if (reply.type == resp::value::kind::error) {
      log::debug("rate limit: Redis {}:{} answered {}", host_, port_, reply.text);
    }
  }
  if (c->waiting && !c->done) {
    c->done = true;
    c->r = r;
    c->timer.cancel();
  }
}

void redis_client::fail_all(outcome why) {
  for (auto& c : in_flight_) {
    if (c->waiting && !c->done) {
      c->done = true;
      c->r.status = why;
      c->timer.cancel();
    }
  }
  in_flight_.clear();
  out_.clear();
}

void redis_client::went_down() {
  ++connection_;
  boost::system::error_code ec;
  socket_.close(ec);
  writing_ = false;
  fail_all(outcome::unavailable);
  state_ = state::backoff;
  backoff_timer_.expires_after(backoff_);
  backoff_ = std::min(backoff_ * 2, max_backoff);
  backoff_timer_.async_wait([self = shared_from_this()](boost::system::error_code e) {
    if (!e && self->state_ == state::backoff) {
      self->state_ = state::idle;  // the next call connects again
    }
  });
}

}  // namespace spillway::ratelimit
