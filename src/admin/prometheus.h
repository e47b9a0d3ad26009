#pragma once
// Prometheus text exposition format (version 0.0.4), the small part of it that /metrics needs:
// families announced once with HELP and TYPE, samples with escaped label values, histograms.

#include "common/stats.h"

#include <fmt/format.h>

#include <cstdint>
#include <initializer_list>
#include <string>
#include <string_view>
#include <utility>

namespace spillway::admin {

// A label value escaped for the text format: backslash, double quote and newline.
std::string prometheus_label(std::string_view value);

// `name="value",...` with every value escaped (no braces), for prometheus_text's `labels`.
std::string label_set(std::initializer_list<std::pair<std::string_view, std::string_view>> labels);

// Appends families and samples to a text body. Not thread-safe (one per scrape).
class prometheus_text {
 public:
  // The HELP and TYPE lines that open a family; call it once per family, before its samples.
  void family(std::string_view name, std::string_view type, std::string_view help) {
    out_ += fmt::format("# HELP {} {}\n# TYPE {} {}\n", name, help, name, type);
  }
  // One sample: `name{labels} value`, or `name value` when `labels` is empty. `labels` as made by
  // label_set (escaped already). `value` is printed as fmt prints its type.
  template <typename Value>
  void sample(std::string_view name, std::string_view labels, const Value& value) {
    if (labels.empty()) {
      out_ += fmt::format("{} {}\n", name, value);
    } else {
      out_ += fmt::format("{}{{{}}} {}\n", name, labels, value);
    }
  }
  // The _bucket (cumulative, `le` in seconds, +Inf last), _sum and _count samples of a histogram.
  void histogram(std::string_view name, std::string_view labels, const stats::histogram_totals& t);
  // One sample per status class with a `code` label ("none", "1xx" .. "5xx"), summed over `slots`.
  template <typename PerWorker>
  void status_classes(std::string_view name, std::string_view labels, const PerWorker& slots) {
    std::array<std::uint64_t, 6> by_class{};
    slots.each([&](const auto& t) {
      for (std::size_t c = 0; c < by_class.size(); ++c) {
        by_class[c] += t.responses.by_class[c].get();
      }
    });
    status_classes(name, labels, by_class);
  }
  void status_classes(std::string_view name, std::string_view labels, const std::array<std::uint64_t, 6>& by_class);

  // The text so far.
  const std::string& str() const { return out_; }
  std::string take() { return std::move(out_); }

 private:
  std::string out_;
};

}  // namespace spillway::admin
