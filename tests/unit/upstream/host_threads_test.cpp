// A host as Spillway shares it: workers count requests and outcomes on it, the control thread
// flips its health, ejects it, moves its address (DNS refresh) and records transitions in the
// journal, and the admin API reads the journal, all at once. No timings asserted; these are there
// so that the TSan pass of scripts/test.sh sees each of those accesses.

#include "common/log.h"
#include "upstream/journal.h"

#include <gtest/gtest.h>

#include <atomic>
#include <thread>
#include <vector>

namespace spillway::upstream {
namespace {

namespace asio = boost::asio;

TEST(HostThreads, WorkersCountWhileTheControlThreadDecidesAndTheAdminApiReads) {
  config::backend b;
  b.addr.text = "backend.test:8080";
  b.addr.host = "backend.test";
  b.addr.port = 8080;
  auto h = std::make_shared<host>("app", b, asio::ip::tcp::endpoint(asio::ip::make_address("127.0.0.1"), 8080));
  journal j;
  h->events_journal = &j;

  constexpr int workers = 3;
  constexpr int requests = 5000;
  std::atomic<int> running{workers};
  std::vector<std::thread> threads;
  for (int w = 0; w < workers; ++w) {
    threads.emplace_back([&, w] {
      for (int i = 0; i < requests; ++i) {
        if (!h->available()) {
          continue;
        }
        active_request a(h.get());
        h->requests_total.fetch_add(1, std::memory_order_relaxed);
        const bool failure = (i + w) % 7 == 0;
        if (failure) {
          h->failures_total.fetch_add(1, std::memory_order_relaxed);
          if (i % 2 == 0) {
            h->note_retried();
          }
        }
        h->record_outcome(failure, failure);
      }
      running.fetch_sub(1);
    });
  }
  // The control thread: health flips and ejections, each recorded in the journal.
  log::set_level(log::level::error);  // thousands of flips, each logged once
  threads.emplace_back([&] {
    for (std::uint32_t i = 0; running.load() > 0 && i < 2000; ++i) {
      if (i % 4 == 1) {
        h->mark_out(out_kind::health, "status 503");
      } else {
        h->mark_in(out_kind::health);
      }
      if (i % 4 == 2) {
        h->mark_out(out_kind::ejection, "5 consecutive failures");
      } else {
        h->mark_in(out_kind::ejection, "ejection time over");
      }
      if (i % 10 == 0) {
        j.sign_of_life(*h);
      }
      std::this_thread::yield();
    }
    h->mark_in(out_kind::health);
    h->mark_in(out_kind::ejection);
  });
  // The admin API.
  threads.emplace_back([&] {
    while (running.load() > 0) {
      EXPECT_LE(j.recent(journal::max_events + 10).size(), journal::max_events);
      EXPECT_LE(j.incidents().size(), journal::max_incidents + 1);
      std::this_thread::yield();
    }
  });
  for (auto& t : threads) {
    t.join();
  }
  log::set_level(log::level::info);
  EXPECT_EQ(h->active_requests.load(), 0);
  EXPECT_TRUE(h->available());
  for (const auto& inc : j.incidents()) {
    EXPECT_TRUE(inc.in_rotation_at.has_value());  // the host ended up back in rotation
  }
}

}  // namespace
}  // namespace spillway::upstream
