#pragma once
// What the config unit tests share: the minimal config, loading text as "test.yaml", and
// asserting the one error a text should produce. Included by tests/unit/config/*_test.cpp only.

#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <string_view>

#include "config/config.h"

namespace spillway::config::test_support {

using std::chrono::milliseconds;
using std::chrono::seconds;

inline constexpr std::string_view minimal = R"(listeners: [ { listen: 0.0.0.0:8080, routes: [ { upstream: app } ] } ]
upstreams: [ { name: app, backends: [ { address: 127.0.0.1:9001 }, { address: 127.0.0.1:9002 } ] } ]
)";

inline load_result load(std::string_view text) { return load_string(std::string(text), "test.yaml"); }

// Every message as one string, so that a failing assertion shows what was reported instead.
inline std::string all_errors(const load_result& r) {
  std::string out;
  for (const auto& e : r.errors) {
    out += e.str() + "\n";
  }
  return out;
}

// Asserts that loading `text` reports exactly one problem, at line:col, whose message contains
// `needle`.
inline void expect_one_error(std::string_view text, int line, int col, std::string_view needle) {
  auto r = load(text);
  EXPECT_FALSE(r.cfg.has_value());
  ASSERT_EQ(r.errors.size(), 1u) << all_errors(r);
  EXPECT_EQ(r.errors[0].file, "test.yaml");
  EXPECT_EQ(r.errors[0].line, line) << all_errors(r);
  EXPECT_EQ(r.errors[0].col, col) << all_errors(r);
  EXPECT_NE(r.errors[0].message.find(needle), std::string::npos) << all_errors(r);
}

// A scratch directory removed at the end of the test.
class temp_dir {
 public:
  temp_dir() {
    std::string pattern = (std::filesystem::temp_directory_path() / "spillway-config-test-XXXXXX").string();
    path_ = ::mkdtemp(pattern.data());
  }
  ~temp_dir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  temp_dir(const temp_dir&) = delete;
  temp_dir& operator=(const temp_dir&) = delete;

  const std::filesystem::path& path() const { return path_; }

  std::string write(const std::string& relative, std::string_view content) const {
    auto p = path_ / relative;
    std::filesystem::create_directories(p.parent_path());
    std::ofstream(p) << content;
    return p.string();
  }

 private:
  std::filesystem::path path_;
};

}  // namespace spillway::config::test_support
