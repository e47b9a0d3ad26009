// The access log as workers use it: several threads hand buffers over while the writer thread
// writes them; the log is destroyed (by the last snapshot that held it) with lines still queued.
// No timings asserted; the TSan pass of scripts/test.sh checks the handover.

#include "proxy/access_log.h"

#include <gtest/gtest.h>

#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

namespace spillway::proxy {
namespace {

TEST(AccessLogThreads, EveryLineHandedOverByConcurrentWorkersIsWrittenBeforeTheLogIsGone) {
  char path[] = "/tmp/spillway-access-log-XXXXXX";
  const int fd = ::mkstemp(path);
  ASSERT_GE(fd, 0);
  ::close(fd);
  config::access_log cfg;
  cfg.path = path;
  constexpr int workers = 4;
  constexpr int buffers = 200;
  constexpr int lines_per_buffer = 20;
  {
    access_log log(cfg);
    std::vector<std::thread> threads;
    for (int w = 0; w < workers; ++w) {
      threads.emplace_back([&, w] {
        std::string buffer;
        for (int b = 0; b < buffers; ++b) {
          for (int l = 0; l < lines_per_buffer; ++l) {
            buffer += "worker " + std::to_string(w) + " line " + std::to_string(l) + "\n";
          }
          log.submit(buffer);
          EXPECT_TRUE(buffer.empty());
        }
      });
    }
    for (auto& t : threads) {
      t.join();
    }
    EXPECT_EQ(log.lines_dropped(), 0u);  // far below max_queued
  }
  std::ifstream in(path);
  std::string line;
  int lines = 0;
  while (std::getline(in, line)) {
    EXPECT_EQ(line.rfind("worker ", 0), 0u) << line;  // whole lines, never interleaved
    ++lines;
  }
  EXPECT_EQ(lines, workers * buffers * lines_per_buffer);
  std::remove(path);
}

}  // namespace
}  // namespace spillway::proxy
