#include "upstream/host.h"

#include "common/log.h"
#include "upstream/journal.h"

#include <fmt/format.h>

namespace spillway::upstream {

host::host(std::string upstream_name, const config::backend& cfg, boost::asio::ip::tcp::endpoint endpoint)
    : upstream_name_(std::move(upstream_name)),
      cfg_(cfg),
      weight_(cfg.weight),
      backup_(cfg.backup),
      endpoint_(std::make_shared<const boost::asio::ip::tcp::endpoint>(std::move(endpoint))) {}

void host::apply(const breaker::transition& t) {
  breaker.store(t.to, std::memory_order_relaxed);
  std::size_t kind = 0;
  if (t.from == breaker_state::open) {
    kind = 1;
  } else if (t.from == breaker_state::half_open) {
    kind = t.to == breaker_state::closed ? 2 : 3;
  }
  breaker_transitions[kind].fetch_add(1, std::memory_order_relaxed);
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
