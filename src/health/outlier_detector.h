#pragma once
// Passive outlier detection on the control thread: workers report hosts whose consecutive failures
// reached the threshold; this decides (max_ejection_percent, growing ejection times) and ends
// ejections when their time is up.

#include "health/ejection.h"
#include "upstream/cluster.h"

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>

#include <memory>
#include <unordered_map>
#include <vector>

namespace spillway::health {

class outlier_detector {
 public:
  explicit outlier_detector(boost::asio::io_context& io);

  // A host reached its consecutive-failure threshold. Any thread: posts the decision to the
  // control thread.
  void report(const upstream::host_ptr& h, const config::outlier_detection& cfg);

  // The current upstreams (for max_ejection_percent). Ejections of hosts that remain continue;
  // state of hosts that are gone is forgotten. Control thread.
  void update(const std::vector<upstream::cluster_ptr>& clusters);

  void stop();

 private:
  struct entry {
    ejection_record record;
    std::unique_ptr<boost::asio::steady_timer> timer;
    bool suppressed_logged = false;
  };

  void consider(const upstream::host_ptr& h, const config::outlier_detection& cfg);

  boost::asio::io_context& io_;
  std::vector<upstream::cluster_ptr> clusters_;
  std::unordered_map<const upstream::host*, entry> entries_;
};

}  // namespace spillway::health
