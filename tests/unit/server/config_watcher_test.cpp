#include "server/config_watcher.h"

#include <gtest/gtest.h>

#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <string>
#include <utility>
#include <vector>

namespace spillway::server {
namespace {

namespace fs = std::filesystem;

class watcher_paths : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/spillway-watch-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    root_ = fs::canonical(tmpl);
  }
  void TearDown() override { fs::remove_all(root_); }

  bool has(const std::vector<std::pair<std::string, std::string>>& names, const fs::path& dir,
           const std::string& name) {
    return std::find(names.begin(), names.end(), std::make_pair(dir.string(), name)) != names.end();
  }

  fs::path root_;
};

TEST_F(watcher_paths, a_plain_file_is_its_own_name) {
  std::ofstream(root_ / "spillway.yaml") << "x";
  auto names = config_watcher::names_on_path((root_ / "spillway.yaml").string());
  EXPECT_TRUE(has(names, root_, "spillway.yaml"));
}

TEST_F(watcher_paths, a_kubernetes_symlink_chain_names_every_link) {
  // spillway.yaml -> ..data/spillway.yaml, ..data -> ..2026_12_01_1: a swap renames ..data.
  fs::create_directory(root_ / "..2026_12_01_1");
  std::ofstream(root_ / "..2026_12_01_1" / "spillway.yaml") << "x";
  fs::create_directory_symlink("..2026_12_01_1", root_ / "..data");
  fs::create_symlink("..data/spillway.yaml", root_ / "spillway.yaml");
  auto names = config_watcher::names_on_path((root_ / "spillway.yaml").string());
  EXPECT_TRUE(has(names, root_, "spillway.yaml"));
  EXPECT_TRUE(has(names, root_, "..data"));
  EXPECT_TRUE(has(names, root_ / "..2026_12_01_1", "spillway.yaml"));
  // Nothing else in the directory matters (the access log beside the config, say).
  for (const auto& [dir, name] : names) {
    EXPECT_NE(name, "access.log");
  }
}

}  // namespace
}  // namespace spillway::server
