#pragma once
// gRPC over HTTP/2 as Spillway sees it (PROTOCOL-HTTP2.md in grpc/grpc): which requests are gRPC,
// the status Spillway's own answers carry, and the client's deadline. Pure functions: any thread.

#include "common/error.h"

#include <chrono>
#include <optional>
#include <string>
#include <string_view>

namespace spillway::proxy {

// True for `content-type: application/grpc`, with or without a subtype (`application/grpc+proto`).
bool is_grpc(std::string_view content_type);

// The grpc-status of an answer Spillway makes itself for `kind`: 14 UNAVAILABLE for no backend,
// overload or a backend that failed; 4 DEADLINE_EXCEEDED for a timeout; 8 RESOURCE_EXHAUSTED for a
// size limit; 12 UNIMPLEMENTED for no route; 13 INTERNAL for a malformed request.
int grpc_status_of(error_kind kind);

// The HTTP status a grpc-status means, for breakers, outlier detection and metrics (the inverse of
// gRPC's HTTP-to-gRPC mapping): OK 200; UNAVAILABLE 503; DEADLINE_EXCEEDED 504; INTERNAL, UNKNOWN
// and DATA_LOSS 500; UNIMPLEMENTED 501; RESOURCE_EXHAUSTED 429; the caller's errors 4xx.
int http_status_of_grpc(int grpc_status);

// A grpc-status value (decimal digits): the code, or -1 when it is missing or malformed.
int parse_grpc_status(std::string_view value);

// The `grpc-timeout` header's value: 1 to 8 digits and a unit (H, M, S, m, u, n). nullopt when it
// is malformed (then the request has no deadline of its own).
std::optional<std::chrono::nanoseconds> parse_grpc_timeout(std::string_view value);

// grpc.health.v1 (grpc/grpc doc/health-checking.md), without generated code: the two messages are
// one field each.
// The request body of Health/Check for `service`: one gRPC message (uncompressed) holding
// HealthCheckRequest{service}.
std::string grpc_health_request(std::string_view service);
// The ServingStatus in the response body of Health/Check (one gRPC message holding
// HealthCheckResponse): 1 SERVING, 2 NOT_SERVING, 0 UNKNOWN, 3 SERVICE_UNKNOWN; -1 when the body is
// not exactly one well-formed uncompressed message.
int grpc_health_status(std::string_view body);

}  // namespace spillway::proxy
