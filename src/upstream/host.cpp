#include "upstream/host.h"

namespace spillway::upstream {

const char* to_string(breaker_state s) {
  switch (s) {
    case breaker_state::closed:
      return "closed";
    case breaker_state::open:
      return "open";
    case breaker_state::half_open:
      return "half_open";
  }
  return "closed";
}

host::host(std::string upstream_name, const config::backend& cfg, boost::asio::ip::tcp::endpoint endpoint)
    : upstream_name_(std::move(upstream_name)), cfg_(cfg), endpoint_(std::move(endpoint)) {}

}  // namespace spillway::upstream
