#include "proxy/retry_policy.h"

#include <algorithm>

namespace spillway::proxy {

bool retry_policy::listed(try_end end, int status) const {
  switch (end) {
    case try_end::connect_failure:
      return cfg_->on_connect_failure;
    case try_end::stale_connection:
      return true;
    case try_end::reset:
      // A gRPC call cut off before its answer is UNAVAILABLE to gRPC: retried when the user listed
      // grpc_unavailable, whatever the method (every gRPC call is a POST).
      return (idempotent_ && cfg_->on_reset) || (grpc_ && cfg_->on_grpc_unavailable);
    case try_end::protocol_error:
      return false;  // a backend that speaks garbage is not asked again for the same request
    case try_end::timeout:
      return idempotent_ && cfg_->on_timeout;
    case try_end::status:
      return idempotent_ && std::find(cfg_->on_status.begin(), cfg_->on_status.end(), status) != cfg_->on_status.end();
    case try_end::grpc_status:
      return (status == 14 && cfg_->on_grpc_unavailable) || (status == 8 && cfg_->on_grpc_resource_exhausted);
  }
  return false;
}

bool is_idempotent(std::string_view method) {
  return method == "GET" || method == "HEAD" || method == "OPTIONS" || method == "TRACE" || method == "PUT" ||
         method == "DELETE";
}

}  // namespace spillway::proxy
