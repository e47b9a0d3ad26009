#pragma once
// An upstream (named group of hosts) as it runs: its config and its hosts.

#include "config/config.h"
#include "upstream/host.h"

#include <memory>
#include <vector>

namespace spillway::upstream {

struct cluster {
  config::upstream cfg;
  std::vector<host_ptr> hosts;  // in config order
};

using cluster_ptr = std::shared_ptr<const cluster>;

}  // namespace spillway::upstream
