#include "health/outlier_detector.h"

#include "common/log.h"

#include <boost/asio/post.hpp>

namespace spillway::health {

namespace asio = boost::asio;

outlier_detector::outlier_detector(asio::io_context& io) : io_(io) {}

void outlier_detector::report(const upstream::host_ptr& h, const config::outlier_detection& cfg) {
  asio::post(io_, [this, h, cfg] { consider(h, cfg); });
}

void outlier_detector::update(const std::vector<upstream::cluster_ptr>& clusters) {
  clusters_ = clusters;
  std::unordered_map<const upstream::host*, bool> present;
  for (const auto& c : clusters) {
    for (const auto& h : c->hosts) {
      present[h.get()] = true;
    }
  }
  std::erase_if(entries_, [&](auto& kv) {
    if (present.count(kv.first) != 0) {
      return false;
    }
    if (kv.second.timer) {
      kv.second.timer->cancel();
    }
    return true;
  });
}

void outlier_detector::stop() {
  for (auto& [h, e] : entries_) {
    if (e.timer) {
      e.timer->cancel();
    }
  }
  entries_.clear();
}

void outlier_detector::consider(const upstream::host_ptr& h, const config::outlier_detection& cfg) {
  // The host may have recovered, or been removed, since the worker reported it.
  const auto failures = h->consecutive_failures.load(std::memory_order_relaxed);
  if (failures < cfg.consecutive_failures || h->is_ejected()) {
    return;
  }
  const upstream::cluster* owner = nullptr;
  for (const auto& c : clusters_) {
    for (const auto& other : c->hosts) {
      if (other == h) {
        owner = c.get();
      }
    }
  }
  if (owner == nullptr) {
    return;
  }
  std::size_t ejected_now = 0;
  for (const auto& other : owner->hosts) {
    ejected_now += other->is_ejected() ? 1 : 0;
  }
  auto& e = entries_[h.get()];
  const auto now = h->clock_source().steady_now();
  auto duration = plan_ejection(e.record, now, cfg, owner->hosts.size(), ejected_now);
  if (!duration) {
    if (!e.suppressed_logged) {
      e.suppressed_logged = true;
      log::warn(
          "outlier: {} {} has {} consecutive failures but stays in: max_ejection_percent {}% allows {} of {} "
          "ejected",
          owner->cfg.name, h->address(), failures, cfg.max_ejection_percent,
          max_ejected(owner->hosts.size(), cfg.max_ejection_percent), owner->hosts.size());
    }
    return;
  }
  e.suppressed_logged = false;
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(*duration).count();
  h->mark_out(upstream::out_kind::ejection,
              std::to_string(failures) + " consecutive failures; ejected for " + std::to_string(ms) + "ms");
  if (!e.timer) {
    e.timer = std::make_unique<asio::steady_timer>(io_);
  }
  e.timer->expires_after(*duration);
  e.timer->async_wait([this, h](boost::system::error_code ec) {
    if (ec) {
      return;
    }
    auto it = entries_.find(h.get());
    if (it == entries_.end()) {
      return;
    }
    const auto now = h->clock_source().steady_now();
    end_ejection(it->second.record, now);
    h->consecutive_failures.store(0, std::memory_order_relaxed);
    h->mark_in(upstream::out_kind::ejection, "ejection time over");
  });
}

}  // namespace spillway::health
