#include "upstream/host.h"

#include "common/log.h"

namespace spillway::upstream {

host::host(std::string upstream_name, const config::backend& cfg, boost::asio::ip::tcp::endpoint endpoint)
    : upstream_name_(std::move(upstream_name)),
      cfg_(cfg),
      weight_(cfg.weight),
      backup_(cfg.backup),
      endpoint_(std::move(endpoint)) {}

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
  if (t.from == breaker_state::closed) {
    log::warn("breaker: {} {} closed -> open for {} ms: failure rate {:.0f}%, slow-call rate {:.0f}% over {} calls",
              upstream_name_, address(), open_ms, t.window.failure_rate, t.window.slow_rate, t.window.calls);
  } else if (t.to == breaker_state::open) {
    log::warn("breaker: {} {} half_open -> open for {} ms: a trial call failed", upstream_name_, address(), open_ms);
  } else {
    log::info("breaker: {} {} {} -> {}", upstream_name_, address(), to_string(t.from), to_string(t.to));
  }
}

}  // namespace spillway::upstream
