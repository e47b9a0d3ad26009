#include "upstream/host.h"

#include "common/log.h"
#include "upstream/journal.h"

#include <fmt/format.h>

namespace spillway::upstream {

const char* to_string(out_kind k) {
  switch (k) {
    case out_kind::health:
      return "health";
    case out_kind::ejection:
      return "ejection";
    case out_kind::dns:
      return "dns";
  }
  return "?";
}

host::host(std::string upstream_name, const config::backend& cfg, boost::asio::ip::tcp::endpoint endpoint,
           const time_source& clock)
    : clock_(clock),
      upstream_name_(std::move(upstream_name)),
      cfg_(cfg),
      weight_(cfg.weight),
      backup_(cfg.backup),
      endpoint_(endpoint),
      address_(cfg.addr.is_ip || endpoint.port() == 0 ? cfg.addr.text : endpoint_text(endpoint)),
      authority_(cfg.addr.srv ? fmt::format("{}:{}", cfg.addr.host, cfg.addr.port) : cfg.addr.text) {}

std::string endpoint_text(const boost::asio::ip::tcp::endpoint& ep) {
  const auto a = ep.address();
  return a.is_v6() ? fmt::format("[{}]:{}", a.to_string(), ep.port()) : fmt::format("{}:{}", a.to_string(), ep.port());
}

bool host::is_in(out_kind kind) const {
  switch (kind) {
    case out_kind::health:
      return healthy_.load(std::memory_order_relaxed);
    case out_kind::ejection:
      return !ejected_.load(std::memory_order_relaxed);
    case out_kind::dns:
      return resolved_.load(std::memory_order_relaxed);
  }
  return true;
}

void host::store_in(out_kind kind, bool in) {
  switch (kind) {
    case out_kind::health:
      healthy_.store(in, std::memory_order_relaxed);
      return;
    case out_kind::ejection:
      ejected_.store(!in, std::memory_order_relaxed);
      return;
    case out_kind::dns:
      // Release: a worker that sees the host resolved (connect() loads with acquire) sees its endpoint.
      resolved_.store(in, std::memory_order_release);
      return;
  }
}

std::string& host::detail_of(out_kind kind) {
  switch (kind) {
    case out_kind::health:
      return health_detail_;
    case out_kind::ejection:
      return ejection_detail_;
    case out_kind::dns:
      break;
  }
  return dns_detail_;
}

const std::string& host::detail(out_kind kind) const { return const_cast<host*>(this)->detail_of(kind); }

std::uint64_t host::transitions(out_kind kind) const {
  switch (kind) {
    case out_kind::health:
      return health_transitions_total_.load(std::memory_order_relaxed);
    case out_kind::ejection:
      return ejections_total_.load(std::memory_order_relaxed);
    case out_kind::dns:
      break;
  }
  return 0;
}

void host::set_initial(out_kind kind, bool in, std::string detail) {
  known_[static_cast<std::size_t>(kind)] = in;
  store_in(kind, in);
  detail_of(kind) = std::move(detail);
}

bool host::mark_out(out_kind kind, std::string detail) {
  auto& known = known_[static_cast<std::size_t>(kind)];
  const bool was_known = known;
  if (was_known && !is_in(kind)) {
    return false;
  }
  known = true;
  store_in(kind, false);
  // From unknown the host was out already: a first result that keeps it out is not a transition.
  if (was_known) {
    if (kind == out_kind::health) {
      health_transitions_total_.fetch_add(1, std::memory_order_relaxed);
    } else if (kind == out_kind::ejection) {
      ejections_total_.fetch_add(1, std::memory_order_relaxed);
    }
  }
  detail_of(kind) = std::move(detail);
  report(kind, false, was_known, detail_of(kind));
  return true;
}

bool host::mark_in(out_kind kind, std::string why) {
  auto& known = known_[static_cast<std::size_t>(kind)];
  const bool was_known = known;
  if (was_known && is_in(kind)) {
    return false;
  }
  known = true;
  if (kind != out_kind::dns) {
    // Before the flag, so that a balancer that sees the host back also sees it ramping.
    available_since_ns_.store(clock_.steady_ns(), std::memory_order_relaxed);
  }
  store_in(kind, true);
  if (kind == out_kind::health) {
    health_transitions_total_.fetch_add(1, std::memory_order_relaxed);  // unknown -> up counts too
  }
  detail_of(kind).clear();
  report(kind, true, was_known, why);
  return true;
}

void host::report(out_kind kind, bool in, bool was_known, const std::string& detail) {
  const char* first = was_known ? "" : " (first check)";
  const char* from = nullptr;
  const char* to = nullptr;
  switch (kind) {
    case out_kind::health:
      if (in) {
        log::info("health: {} {} is up{}", upstream_name_, address(), first);
      } else {
        log::warn("health: {} {} is down: {}{}", upstream_name_, address(), detail, first);
      }
      from = was_known ? (in ? "down" : "up") : "unknown";
      to = in ? "up" : "down";
      break;
    case out_kind::ejection:
      if (in) {
        log::info("outlier: {} {} returns after its ejection", upstream_name_, address());
      } else {
        log::warn("outlier: {} {} ejected: {} (ejection #{})", upstream_name_, address(), detail,
                  ejections_total_.load(std::memory_order_relaxed));
      }
      from = in ? "ejected" : "in";
      to = in ? "in" : "ejected";
      break;
    case out_kind::dns:
      // A name that has not resolved yet is a new backend that never took traffic: logged, not an
      // incident (the journal's "dns" events are addresses coming and going, see host_registry).
      if (!in) {
        log::warn("dns: {} {}: cannot resolve ({}); it takes no traffic until it does", upstream_name_, address(),
                  detail);
      }
      return;
  }
  if (events_journal != nullptr) {
    events_journal->transition(*this, to_string(kind), from, to, detail);
  }
}

void host::note_health_check(const std::string& error) {
  if (!error.empty()) {
    health_check_failures_total_.fetch_add(1, std::memory_order_relaxed);
  }
  health_detail_ = error;
}

void host::apply(const breaker::transition& t) {
  breaker_.store(t.to, std::memory_order_relaxed);
  std::size_t kind = 0;
  if (t.from == breaker_state::open) {
    kind = 1;
  } else if (t.from == breaker_state::half_open) {
    kind = t.to == breaker_state::closed ? 2 : 3;
  }
  breaker_transitions_[kind].fetch_add(1, std::memory_order_relaxed);
  const auto open_ms = std::chrono::duration_cast<std::chrono::milliseconds>(t.open_for).count();
  std::string detail;
  if (t.from == breaker_state::closed) {
    detail = fmt::format("open for {} ms: failure rate {:.0f}%, slow-call rate {:.0f}% over {} calls", open_ms,
                         t.window.failure_rate, t.window.slow_rate, t.window.calls);
    log::warn("breaker: {} {} closed -> open {}", upstream_name_, address(), detail);
  } else if (t.to == breaker_state::open) {
    detail = fmt::format("open for {} ms: a trial call failed", open_ms);
    log::warn("breaker: {} {} half_open -> open {}", upstream_name_, address(), detail);
  } else {
    log::info("breaker: {} {} {} -> {}", upstream_name_, address(), to_string(t.from), to_string(t.to));
  }
  if (events_journal != nullptr) {
    if (t.from == breaker_state::half_open && t.to == breaker_state::closed) {
      events_journal->sign_of_life(*this);  // trial calls succeeded
    }
    events_journal->transition(*this, "breaker", to_string(t.from), to_string(t.to), std::move(detail));
  }
}

}  // namespace spillway::upstream
