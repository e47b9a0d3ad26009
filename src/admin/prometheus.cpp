#include "admin/prometheus.h"

namespace spillway::admin {

std::string prometheus_label(std::string_view value) {
  std::string out;
  for (char c : value) {
    if (c == '\\' || c == '"') {
      out.push_back('\\');
      out.push_back(c);
    } else if (c == '\n') {
      out.append("\\n");
    } else {
      out.push_back(c);
    }
  }
  return out;
}

std::string label_set(std::initializer_list<std::pair<std::string_view, std::string_view>> labels) {
  std::string out;
  for (const auto& [name, value] : labels) {
    if (!out.empty()) {
      out.push_back(',');
    }
    out += fmt::format("{}=\"{}\"", name, prometheus_label(value));
  }
  return out;
}

void prometheus_text::histogram(std::string_view name, std::string_view labels, const stats::histogram_totals& t) {
  std::uint64_t cumulative = 0;
  for (std::size_t i = 0; i < stats::latency_bounds_us.size(); ++i) {
    cumulative += t.counts[i];
    out_ += fmt::format("{}_bucket{{{},le=\"{}\"}} {}\n", name, labels,
                        static_cast<double>(stats::latency_bounds_us[i]) / 1e6, cumulative);
  }
  cumulative += t.counts.back();
  out_ += fmt::format("{}_bucket{{{},le=\"+Inf\"}} {}\n", name, labels, cumulative);
  out_ += fmt::format("{}_sum{{{}}} {}\n", name, labels, static_cast<double>(t.sum_us) / 1e6);
  out_ += fmt::format("{}_count{{{}}} {}\n", name, labels, cumulative);
}

void prometheus_text::status_classes(std::string_view name, std::string_view labels,
                                     const std::array<std::uint64_t, 6>& by_class) {
  static constexpr const char* classes[] = {"none", "1xx", "2xx", "3xx", "4xx", "5xx"};
  for (std::size_t c = 0; c < by_class.size(); ++c) {
    out_ += fmt::format("{}{{{},code=\"{}\"}} {}\n", name, labels, classes[c], by_class[c]);
  }
}

}  // namespace spillway::admin
