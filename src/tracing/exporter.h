#pragma once
// Sends finished spans to an OTLP/HTTP collector as JSON, in batches, from a thread of its own.
//
//   workers ──submit(span records)──> queue (at most max_queue spans; beyond it they are dropped, counted)
//                                 │ every second, or once 2048 spans wait
//                                 v
//   exporter thread: POST /v1/traces (keep-alive; 2 s to connect, 5 s per exchange), the body
//                    chunked: each worker buffer's records written as JSON (spans_json) into one
//                    buffer of ~64 KB and sent, so a batch's ~1 MB of JSON is never held whole;
//                    a failed POST drops its batch (counted): spans are telemetry, never retried
//                    at the cost of memory
//
// Nothing a worker does waits on the collector: submit() copies ~10 KB of records and takes a
// mutex for a vector move; the JSON is written here, off the workers' path. One
// exporter serves the process; a reload changes its settings in place. Any thread, except where
// said.

#include "common/buffer_recycler.h"
#include "tracing/span.h"

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace spillway::tracing {

class exporter {
 public:
  struct settings {
    std::string host;
    std::uint16_t port = 0;
    std::string path = "/v1/traces";
    std::string service_name = "spillway";
    std::size_t max_queue = 8192;
  };
  struct counts {
    std::uint64_t exported = 0;        // spans the collector took (2xx)
    std::uint64_t dropped_full = 0;    // spans dropped because the queue was full
    std::uint64_t dropped_failed = 0;  // spans of batches the collector did not take
    std::uint64_t batches_failed = 0;
    std::size_t queued = 0;
  };

  // Spans per POST: each one costs ~70 us of the process's CPU whatever its size (the exchange, two
  // thread wake-ups), so a batch is large: about 1 MB of JSON.
  static constexpr std::size_t batch_size = 2048;

  exporter(settings s, std::string version);
  // Stops the thread (a POST under way ends within its timeouts).
  ~exporter();
  exporter(const exporter&) = delete;
  exporter& operator=(const exporter&) = delete;

  void update(settings s);
  // The spans per worker buffer: about what a buffer of buffer_capacity holds (~80 bytes a span).
  static constexpr std::size_t spans_per_buffer = 128;
  static constexpr std::size_t buffer_capacity = 16 * 1024;

  // `spans`: `count` spans recorded by span_writer, copied into a buffer of the exporter's (one sent
  // before, when there is one); `spans` is then empty, its capacity kept.
  void submit(std::string& spans, std::size_t count);
  counts stats() const;

 private:
  void run();
  struct chunk {
    std::string spans;
    std::size_t count = 0;
  };
  // One POST of `batch`'s spans; true when the collector answered 2xx. Exporter thread.
  bool post(const settings& s, const std::vector<chunk>& batch);
  // Sends the request: its head, then the document in chunks, one per worker buffer.
  bool send_request(const settings& s, std::string_view target, const std::vector<chunk>& batch);
  void disconnect();

  const std::string version_;
  mutable std::mutex m_;
  std::condition_variable wake_;
  settings settings_;
  std::vector<chunk> queue_;
  std::size_t queued_ = 0;  // spans in queue_
  bool stopping_ = false;
  std::atomic<std::uint64_t> exported_{0};
  std::atomic<std::uint64_t> dropped_full_{0};
  std::atomic<std::uint64_t> dropped_failed_{0};
  std::atomic<std::uint64_t> batches_failed_{0};
  buffer_recycler buffers_{buffer_capacity, 16};
  // Exporter thread only: the keep-alive connection and whom it is to.
  int fd_ = -1;
  std::string json_;  // one chunk of the body; its capacity kept
  std::string connected_to_;
  bool reported_failing_ = false;
  std::thread thread_;  // last: started once everything above exists
};

}  // namespace spillway::tracing
