#pragma once
// Active health checks: one probe coroutine per checked host, all on the control thread (so N
// workers never mean N times the probes). Results go through a pure `health_state`; a flip (or a
// first result) is applied with host::mark_in / mark_out, which count, log and journal it once.

#include "config/config.h"
#include "health/health_state.h"
#include "upstream/cluster.h"

#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>

#include <functional>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <vector>

namespace spillway::health {

class checker {
 public:
  explicit checker(boost::asio::io_context& io);
  ~checker();
  checker(const checker&) = delete;
  checker& operator=(const checker&) = delete;

  // Starts probing hosts that are new, stops probing hosts that are gone. A new checked host starts
  // unhealthy until its first pass; hosts of upstreams with `health_check: false` are marked
  // healthy and not probed. Control thread.
  void update(const std::vector<upstream::cluster_ptr>& clusters);

  // Runs `done` once every probed host has its first result (each bounded by its check timeout),
  // at once if there is none pending. Control thread.
  void when_first_round_done(std::function<void()> done);

  // Stops every probe. Control thread.
  void stop();

 private:
  struct probe;
  boost::asio::awaitable<void> run(std::shared_ptr<probe> p);
  // One check within the check timeout: "" when it passed, else why it failed.
  boost::asio::awaitable<std::string> check_once(probe& p);
  // tcp (connect), and http over HTTP/1.1.
  boost::asio::awaitable<std::string> check_http1(probe& p);
  // http over HTTP/2 (protocol: http2), and grpc.health.v1 Check.
  boost::asio::awaitable<std::string> check_h2(probe& p);
  void first_result_in();
  config::duration jittered(config::duration base, double spread);

  boost::asio::io_context& io_;
  std::map<const upstream::host*, std::shared_ptr<probe>> probes_;
  std::size_t first_pending_ = 0;
  std::vector<std::function<void()>> first_round_waiters_;
  std::mt19937_64 random_;
};

}  // namespace spillway::health
