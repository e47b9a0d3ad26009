#include "proxy/grpc.h"

namespace spillway::proxy {

bool is_grpc(std::string_view content_type) {
  constexpr std::string_view grpc = "application/grpc";
  if (content_type.size() < grpc.size()) {
    return false;
  }
  for (std::size_t i = 0; i < grpc.size(); ++i) {
    char c = content_type[i];
    c = (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
    if (c != grpc[i]) {
      return false;
    }
  }
  return content_type.size() == grpc.size() || content_type[grpc.size()] == '+' || content_type[grpc.size()] == ';';
}

int grpc_status_of(error_kind kind) {
  switch (kind) {
    case error_kind::upstream_timeout:
    case error_kind::header_timeout:
      return 4;  // DEADLINE_EXCEEDED
    case error_kind::body_too_large:
    case error_kind::headers_too_large:
      return 8;  // RESOURCE_EXHAUSTED
    case error_kind::no_route:
    case error_kind::method_not_allowed:
      return 12;  // UNIMPLEMENTED
    case error_kind::malformed_request:
      return 13;  // INTERNAL
    default:
      return 14;  // UNAVAILABLE
  }
}

int parse_grpc_status(std::string_view value) {
  if (value.empty() || value.size() > 3) {
    return -1;
  }
  int code = 0;
  for (char c : value) {
    if (c < '0' || c > '9') {
      return -1;
    }
    code = code * 10 + (c - '0');
  }
  return code;
}

int http_status_of_grpc(int grpc_status) {
  switch (grpc_status) {
    case 0:
      return 200;
    case 1:
      return 499;  // CANCELLED (by the caller)
    case 3:        // INVALID_ARGUMENT
    case 9:        // FAILED_PRECONDITION
    case 11:       // OUT_OF_RANGE
      return 400;
    case 4:
      return 504;
    case 5:
      return 404;
    case 6:   // ALREADY_EXISTS
    case 10:  // ABORTED
      return 409;
    case 7:
      return 403;
    case 8:
      return 429;
    case 12:
      return 501;
    case 14:
      return 503;
    case 16:
      return 401;
    default:
      return 500;  // UNKNOWN, INTERNAL, DATA_LOSS, and codes gRPC does not define
  }
}

std::optional<std::chrono::nanoseconds> parse_grpc_timeout(std::string_view value) {
  if (value.size() < 2 || value.size() > 9) {
    return std::nullopt;
  }
  std::int64_t n = 0;
  for (char c : value.substr(0, value.size() - 1)) {
    if (c < '0' || c > '9') {
      return std::nullopt;
    }
    n = n * 10 + (c - '0');
  }
  using namespace std::chrono;
  switch (value.back()) {
    case 'H':
      return duration_cast<nanoseconds>(hours(n));
    case 'M':
      return duration_cast<nanoseconds>(minutes(n));
    case 'S':
      return duration_cast<nanoseconds>(seconds(n));
    case 'm':
      return duration_cast<nanoseconds>(milliseconds(n));
    case 'u':
      return duration_cast<nanoseconds>(microseconds(n));
    case 'n':
      return nanoseconds(n);
    default:
      return std::nullopt;
  }
}

}  // namespace spillway::proxy
