#pragma once
// What one request did, and the one place it becomes metrics and an access log line, whichever
// front end (HTTP/1, an HTTP/2 stream) served it.

#include "common/error.h"
#include "tracing/context.h"

#include <boost/container/small_vector.hpp>

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string_view>
#include <vector>

namespace spillway::config {
struct config;
}  // namespace spillway::config
namespace spillway::http {
struct message_head;
}  // namespace spillway::http
namespace spillway::upstream {
struct cluster;
class host;
}  // namespace spillway::upstream

namespace spillway::proxy {

struct upstream_head_facts;
struct worker_view;
class downstream_connection;

// One try of a traced request (its span, once the request ends).
struct traced_try {
  tracing::span_id span{};  // the parent the backend saw
  upstream::host* host = nullptr;
  std::chrono::steady_clock::time_point start{};
  std::chrono::steady_clock::time_point end{};  // unset while under way
  int status = 0;                               // the response's, 0 without one
  bool failed = false;
  std::string_view error;  // a failed try without a status: the error_kind name
};
// Most requests take one try, a retried one two: those need no allocation per request.
using traced_tries = boost::container::small_vector<traced_try, 2>;

// What one request did, for metrics and the access log.
struct http_request_record {
  bool started = false;  // a byte of it arrived
  std::shared_ptr<worker_view> view;
  int route = -1;
  const upstream::cluster* cluster = nullptr;
  upstream::host* host = nullptr;  // the last host tried
  std::uint32_t tries = 0;
  int status = 0;                   // sent to the client; 0 when none was
  std::optional<error_kind> local;  // set when Spillway answered itself
  std::uint64_t bytes_in = 0;       // head and body bytes from the client
  std::uint64_t bytes_out = 0;
  std::chrono::steady_clock::duration connect_time{-1};
  std::chrono::steady_clock::duration upstream_time{-1};  // to the response head
  // Tracing (the snapshot has a `tracing` section): the request's context, and the traceparent of
  // its current try (what the backend gets).
  bool traced = false;
  tracing::context trace;
  tracing::traceparent_text traceparent{};
  traced_tries tries_traced;  // filled by upstream_attempt when traced
};

// Starts `rec`'s trace from the request's traceparent (several of them are as good as none) when
// `cfg` traces. Worker thread.
void begin_trace(http_request_record& rec, const config::config& cfg, const http::message_head& head,
                 const std::function<std::uint64_t()>& random);
// A try's request is about to go: its traceparent (the try's span as parent) in rec.traceparent
// and in `facts`. Worker thread.
void trace_try(http_request_record& rec, upstream_head_facts& facts);

// What the access log says of the request beyond its record (views valid for the call).
struct request_fields {
  std::string_view method;
  std::string_view path;
  std::string_view host;
  std::string_view request_id;
  bool request_id_ours = false;  // Spillway made request_id up (the client sent no X-Request-Id)
};

// Counts the request (listener, route, upstream and host traffic), logs it when the access log
// samples it and writes its spans when it is traced and sampled. `first_byte`: when its first byte
// came. Worker thread.
void record_request(downstream_connection& down, const http_request_record& rec, const request_fields& fields,
                    std::chrono::steady_clock::time_point first_byte);

}  // namespace spillway::proxy
