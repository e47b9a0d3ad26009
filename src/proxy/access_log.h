#pragma once
// The access log: one line per request, written without ever blocking a worker.
//
//   worker ── appends lines to its own buffer ──(≥ 32 KiB, or every second)──> queue ──> writer thread ──> file
//
// Workers hand over whole buffers under a mutex (once per many lines); the writer thread does the
// write(2) calls. When the writer falls behind by more than max_queued bytes (a slow disk, a full
// pipe), new buffers are dropped and counted instead of growing memory or blocking the hot path.

#include "common/buffer_recycler.h"
#include "config/config.h"

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace spillway::proxy {

class access_log {
 public:
  static constexpr std::size_t flush_at = 32 * 1024;
  static constexpr std::size_t max_queued = 16 * 1024 * 1024;

  // Opens the file (append) and starts the writer. Throws std::runtime_error when it cannot open.
  explicit access_log(const config::access_log& cfg);
  ~access_log();  // writes what is queued, then stops
  access_log(const access_log&) = delete;
  access_log& operator=(const access_log&) = delete;

  const config::access_log& cfg() const { return cfg_; }
  bool json() const { return cfg_.format == "json"; }

  // Hands a worker's buffer over (it is left empty). Any thread; never blocks on I/O.
  void submit(std::string& buffer);

  std::uint64_t lines_dropped() const { return dropped_.load(std::memory_order_relaxed); }

 private:
  void run();

  config::access_log cfg_;
  int fd_ = -1;
  bool own_fd_ = false;
  std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<std::string> queue_;
  std::size_t queued_bytes_ = 0;
  bool stopping_ = false;
  std::atomic<std::uint64_t> dropped_{0};
  buffer_recycler buffers_{flush_at + 1024, 8};  // the workers' buffers, back from the writer
  std::thread thread_;
};

// The values of one request's line. Strings are views valid while the line is formatted.
struct access_record {
  std::string_view time;  // RFC 3339, UTC
  std::string_view client;
  std::string_view listener;
  int route = -1;  // index in the listener's routes, -1 when none matched
  std::string_view method;
  std::string_view path;
  std::string_view host;
  int status = 0;  // 0 when the client left before an answer
  std::string_view upstream;
  std::string_view backend;
  std::uint64_t bytes_in = 0;
  std::uint64_t bytes_out = 0;
  double duration_ms = 0;
  double connect_ms = -1;   // -1: no new connection was made
  double upstream_ms = -1;  // -1: no backend answered
  std::uint32_t tries = 0;
  std::string_view reason;  // why Spillway answered itself, or empty
  std::string_view flags;   // Envoy-style response flags, "-" when none
  std::string_view request_id;
  bool tls = false;
  std::string_view trace_id;  // 32 hex digits when tracing is on, else empty
};

// A duration as the log shows it: milliseconds, or -1 (null) for a negative one (never measured).
inline double access_ms(std::chrono::steady_clock::duration d) {
  return d.count() < 0 ? -1.0 : std::chrono::duration<double, std::milli>(d).count();
}

// Envoy's response flag for a reason Spillway gives (NR, UH, UF, UO, UT, UC, UPE, DPE, DT), what
// people grep access logs for; nullptr for a reason without one.
const char* response_flag(std::string_view reason);

// Appends one line (with its newline) for `r` in `log`'s format to `out`. Strings are escaped:
// JSON lines are always valid UTF-8 JSON (bytes that are not well-formed UTF-8 become U+FFFD);
// template fields write every byte outside printable ASCII, and space, '"' and backslash, as \xHH.
void format_access_line(const access_log& log, const access_record& r, std::string& out);

}  // namespace spillway::proxy
