#include "admin/degradation_report.h"

#include "admin/json.h"

#include <fmt/format.h>

#include <optional>

namespace spillway::admin {

namespace {

using incident_time = std::optional<std::chrono::system_clock::time_point>;

std::string opt_time(const incident_time& t) { return t ? json_string(iso8601(*t)) : std::string("null"); }

double seconds_between(std::chrono::system_clock::time_point a, std::chrono::system_clock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

std::string incident_json(const upstream::incident& i) {
  return fmt::format(
      "{{\"upstream\":{},\"backend\":{},\"reason\":{},\"failed_at\":{},\"marked_out_at\":{},"
      "\"detection_seconds\":{:.3f},\"failed_before_out\":{},\"retried_before_out\":{},"
      "\"failed_while_out\":{},\"came_back_at\":{},\"in_rotation_at\":{},\"removed_at\":{},\"out_seconds\":{}}}",
      json_string(i.upstream), json_string(i.backend), json_string(i.reason), json_string(iso8601(i.failed_at)),
      json_string(iso8601(i.marked_out_at)), seconds_between(i.failed_at, i.marked_out_at), i.failed_before_out,
      i.retried_before_out, i.failed_while_out, opt_time(i.came_back_at), opt_time(i.in_rotation_at),
      opt_time(i.removed_at),
      i.in_rotation_at ? fmt::format("{:.3f}", seconds_between(i.marked_out_at, *i.in_rotation_at))
                       : std::string("null"));
}

}  // namespace

std::string degradation_json(const state& s) {
  std::string out = "{\"incidents\":[";
  if (s.journal != nullptr) {
    const auto incidents = s.journal->incidents();
    for (std::size_t i = 0; i < incidents.size(); ++i) {
      if (i > 0) {
        out.push_back(',');
      }
      out += incident_json(incidents[i]);
    }
  }
  out += "]}\n";
  return out;
}

std::string degradation_text(const state& s) {
  std::string out = fmt::format("{:<12} {:<22} {:<13} {:<24} {:>9} {:>7} {:>8} {:>8} {:>9}\n", "upstream", "backend",
                                "reason", "failed at (UTC)", "detect_s", "failed", "retried", "back_s", "rotation_s");
  if (s.journal == nullptr) {
    return out;
  }
  auto since = [](const incident_time& t, std::chrono::system_clock::time_point from) {
    return t ? fmt::format("{:.3f}", seconds_between(from, *t)) : std::string("-");
  };
  for (const auto& i : s.journal->incidents()) {
    out += fmt::format("{:<12} {:<22} {:<13} {:<24} {:>9.3f} {:>7} {:>8} {:>8} {:>9}\n", i.upstream, i.backend,
                       i.reason, iso8601(i.failed_at), seconds_between(i.failed_at, i.marked_out_at),
                       i.failed_before_out, i.retried_before_out, since(i.came_back_at, i.failed_at),
                       i.removed_at ? std::string("removed") : since(i.in_rotation_at, i.failed_at));
  }
  out +=
      "\ndetect_s: first failure to out of rotation; failed, retried: requests that failed on it in that time, and "
      "how many of them\nwere retried elsewhere; back_s: first failure to its first sign of life; rotation_s: first "
      "failure to taking traffic again (\"removed\": the backend was removed while out).\n";
  return out;
}

}  // namespace spillway::admin
