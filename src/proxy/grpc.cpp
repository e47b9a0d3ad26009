#include "proxy/grpc.h"

#include <cstdint>

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
    case error_kind::rate_limited:
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

namespace {

// A protobuf varint at `in`; false when it is cut off or longer than 64 bits.
bool read_varint(std::string_view& in, std::uint64_t& v) {
  v = 0;
  for (int shift = 0; shift < 64; shift += 7) {
    if (in.empty()) {
      return false;
    }
    const auto b = static_cast<unsigned char>(in.front());
    in.remove_prefix(1);
    v |= static_cast<std::uint64_t>(b & 0x7f) << shift;
    if ((b & 0x80) == 0) {
      return true;
    }
  }
  return false;
}

}  // namespace

std::string grpc_health_request(std::string_view service) {
  std::string message;
  if (!service.empty()) {
    message.push_back(0x0a);  // field 1, length-delimited
    for (auto n = service.size();; n >>= 7) {
      if (n < 0x80) {
        message.push_back(static_cast<char>(n));
        break;
      }
      message.push_back(static_cast<char>((n & 0x7f) | 0x80));
    }
    message.append(service);
  }
  std::string out(5, '\0');  // not compressed, then the length (big-endian)
  const auto n = static_cast<std::uint32_t>(message.size());
  out[1] = static_cast<char>(n >> 24);
  out[2] = static_cast<char>(n >> 16);
  out[3] = static_cast<char>(n >> 8);
  out[4] = static_cast<char>(n);
  return out + message;
}

int grpc_health_status(std::string_view body) {
  if (body.size() < 5 || body[0] != 0) {
    return -1;
  }
  const auto n = (std::uint32_t{static_cast<unsigned char>(body[1])} << 24) |
                 (std::uint32_t{static_cast<unsigned char>(body[2])} << 16) |
                 (std::uint32_t{static_cast<unsigned char>(body[3])} << 8) | static_cast<unsigned char>(body[4]);
  std::string_view message = body.substr(5);
  if (message.size() != n) {
    return -1;
  }
  int status = 0;  // proto3: an absent field is its default, UNKNOWN
  while (!message.empty()) {
    std::uint64_t key = 0;
    std::uint64_t v = 0;
    if (!read_varint(message, key)) {
      return -1;
    }
    switch (key & 7) {
      case 0:  // varint
        if (!read_varint(message, v)) {
          return -1;
        }
        if (key >> 3 == 1) {
          status = v > 1000 ? -1 : static_cast<int>(v);
        }
        break;
      case 1:    // 64-bit
      case 5: {  // 32-bit
        const std::size_t width = (key & 7) == 1 ? 8 : 4;
        if (message.size() < width) {
          return -1;
        }
        message.remove_prefix(width);
        break;
      }
      case 2:  // length-delimited
        if (!read_varint(message, v) || v > message.size()) {
          return -1;
        }
        message.remove_prefix(v);
        break;
      default:
        return -1;
    }
  }
  return status;
}

}  // namespace spillway::proxy
