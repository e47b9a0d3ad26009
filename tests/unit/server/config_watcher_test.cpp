#include "server/config_watcher.h"

#include <boost/asio/io_context.hpp>

#include <gtest/gtest.h>

#include <fcntl.h>

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <memory>
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

// A real watcher on a real directory; `seen` records each change it hands on.
class watcher_events : public watcher_paths {
 protected:
  void SetUp() override {
    watcher_paths::SetUp();
    config_ = (root_ / "spillway.yaml").string();
    std::ofstream(config_) << "a: 1\n";
  }
  // `poll` long enough not to fire unless a test wants it to.
  void start(config_watcher::timing t = {std::chrono::milliseconds(20), std::chrono::milliseconds(100),
                                         std::chrono::seconds(60)}) {
    watcher_ = std::make_unique<config_watcher>(
        io_, config_, [this](change_seen how) { seen_.push_back(how); }, t);
    ASSERT_TRUE(watcher_->start());
  }
  // Runs the io_context until `done` or `limit`.
  template <typename Pred>
  void run_until(Pred done, std::chrono::milliseconds limit = std::chrono::seconds(3)) {
    const auto until = std::chrono::steady_clock::now() + limit;
    while (!done() && std::chrono::steady_clock::now() < until) {
      io_.restart();
      io_.run_one_for(std::chrono::milliseconds(10));
    }
  }
  // Appends `n` lines to `path` with one write(2) each, keeping it open throughout; after each
  // write, lets the watcher run (briefly) so that it would take an event a write caused.
  void append_lines(const std::string& path, int n) {
    int fd = ::open(path.c_str(), O_WRONLY | O_APPEND);
    ASSERT_GE(fd, 0);
    for (int i = 0; i < n; ++i) {
      ASSERT_EQ(::write(fd, "line\n", 5), 5);
      const auto reads = watcher_->event_reads();
      run_until([&] { return watcher_->event_reads() != reads; }, std::chrono::milliseconds(5));
    }
    ::close(fd);
  }

  boost::asio::io_context io_;
  std::string config_;
  std::unique_ptr<config_watcher> watcher_;
  std::vector<change_seen> seen_;
};

TEST_F(watcher_events, a_busy_neighbour_wakes_the_watcher_once_per_close_not_per_write) {
  const auto log = (root_ / "access.log").string();
  std::ofstream(log) << "";
  start();
  append_lines(log, 50);
  run_until([] { return false; }, std::chrono::milliseconds(100));
  // One IN_CLOSE_WRITE (with IN_MODIFY in the mask: a wake-up per write, 50 here). Nothing is
  // handed on.
  EXPECT_LE(watcher_->event_reads(), 1u);
  EXPECT_TRUE(seen_.empty());
}

TEST_F(watcher_events, the_config_written_in_place_is_seen_when_its_writer_closes_it) {
  start();
  append_lines(config_, 3);
  run_until([&] { return !seen_.empty(); });
  ASSERT_EQ(seen_.size(), 1u);
  EXPECT_EQ(seen_[0], change_seen::event);
}

TEST_F(watcher_events, a_writer_that_keeps_the_config_open_is_seen_by_the_poll) {
  start({std::chrono::milliseconds(20), std::chrono::milliseconds(100), std::chrono::milliseconds(100)});
  int fd = ::open(config_.c_str(), O_WRONLY | O_APPEND);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(::write(fd, "b: 2\n", 5), 5);
  run_until([&] { return !seen_.empty(); });
  ::close(fd);
  ASSERT_FALSE(seen_.empty());
  EXPECT_EQ(seen_[0], change_seen::poll);
}

}  // namespace
}  // namespace spillway::server
