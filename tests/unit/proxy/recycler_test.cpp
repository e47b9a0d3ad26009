#include "proxy/recycler.h"
#include "proxy/http1_state.h"

#include <gtest/gtest.h>

#include <cstring>
#include <memory>
#include <vector>

namespace spillway::proxy {
namespace {

struct thing {
  int value = 0;
};

TEST(recycler, hands_back_what_it_kept_and_frees_beyond_keep) {
  recycler<thing> r(2);
  auto a = r.take();
  auto b = r.take();
  auto c = r.take();
  EXPECT_EQ(r.allocated(), 3u);
  a->value = 7;
  thing* kept = a.get();
  r.give(std::move(a));
  r.give(std::move(b));
  r.give(std::move(c));  // beyond keep: freed
  EXPECT_EQ(r.kept(), 2u);
  auto again = r.take();
  auto twice = r.take();
  EXPECT_EQ(r.allocated(), 3u);  // both came from the kept ones
  EXPECT_TRUE(again.get() == kept || twice.get() == kept);
  EXPECT_EQ(r.kept(), 0u);
  r.give(nullptr);  // ignored
  EXPECT_EQ(r.kept(), 0u);
}

TEST(recycler, keeps_as_many_as_were_in_use_lately_up_to_cap) {
  recycler<thing> r(2, 10, /*hold=*/1);
  std::vector<std::unique_ptr<thing>> held;
  for (int i = 0; i < 6; ++i) {
    held.push_back(r.take());
  }
  EXPECT_EQ(r.in_use(), 6u);
  EXPECT_EQ(r.bound(), 6u);  // the current period's peak
  for (auto& p : held) {
    r.give(std::move(p));
  }
  held.clear();
  EXPECT_EQ(r.kept(), 6u);  // steady load of 6 allocates nothing next time
  for (int i = 0; i < 6; ++i) {
    held.push_back(r.take());
  }
  EXPECT_EQ(r.allocated(), 6u);
  for (auto& p : held) {
    r.give(std::move(p));
  }
  held.clear();
  r.trim();  // the peak of 6 is remembered for one more period
  EXPECT_EQ(r.kept(), 6u);
  r.trim();  // a quiet period: back to `keep`
  EXPECT_EQ(r.bound(), 2u);
  EXPECT_EQ(r.kept(), 2u);
  // never more than `cap`
  for (int i = 0; i < 20; ++i) {
    held.push_back(r.take());
  }
  for (auto& p : held) {
    r.give(std::move(p));
  }
  held.clear();
  EXPECT_EQ(r.kept(), 10u);
  r.trim();
  r.trim();
  EXPECT_EQ(r.kept(), 2u);
}

// Takes `n` objects from `r` and gives them all back: a burst of n in flight.
void burst(recycler<thing>& r, int n) {
  std::vector<std::unique_ptr<thing>> held;
  for (int i = 0; i < n; ++i) {
    held.push_back(r.take());
  }
  for (auto& p : held) {
    r.give(std::move(p));
  }
}

TEST(recycler, a_peak_is_held_for_hold_periods_then_released_gradually) {
  recycler<thing> r(2, 100, /*hold=*/3, /*release=*/4);
  burst(r, 20);
  EXPECT_EQ(r.kept(), 20u);
  for (int period = 0; period < 3; ++period) {
    r.trim();  // the period with the burst, then two quiet ones: the peak is still held
    EXPECT_EQ(r.kept(), 20u) << period;
  }
  burst(r, 20);  // the same burst again: nothing new allocated, and the hold starts over
  EXPECT_EQ(r.allocated(), 20u);
  r.trim();
  r.trim();
  r.trim();
  EXPECT_EQ(r.kept(), 20u);
  r.trim();  // three quiet periods since: back to `keep`, 4 freed a period
  EXPECT_EQ(r.bound(), 2u);
  EXPECT_EQ(r.kept(), 16u);
  r.trim();
  EXPECT_EQ(r.kept(), 12u);
  burst(r, 5);  // a smaller burst meanwhile: served from the kept ones; what comes back beyond the
                // bound (now the period's peak, 5) is freed at once
  EXPECT_EQ(r.bound(), 5u);
  EXPECT_EQ(r.kept(), 7u);
  r.trim();
  EXPECT_EQ(r.bound(), 5u);
  EXPECT_EQ(r.kept(), 5u);
  EXPECT_EQ(r.allocated(), 20u);
}

TEST(http1_state, reset_makes_a_recycled_state_as_good_as_new) {
  recycler<http1_state> r(1);
  auto st = r.take();
  const char head[] = "GET /a HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhel";
  auto res = st->request_parser.feed(head, std::strlen(head));
  EXPECT_EQ(res.what, http::parser::event::headers_complete);
  st->dbegin = 3;
  st->dend = 9;
  st->out = "HTTP/1.1 200 OK\r\n";
  st->replay = "hel";
  st->have_request_id = true;
  st->rec.status = 502;
  st->rec.tries = 2;
  r.give(std::move(st));

  auto again = r.take();
  again->reset();
  EXPECT_EQ(again->dbegin, 0u);
  EXPECT_EQ(again->dend, 0u);
  EXPECT_TRUE(again->out.empty());
  EXPECT_TRUE(again->replay.empty());
  EXPECT_FALSE(again->have_request_id);
  EXPECT_EQ(again->rec.status, 0);
  EXPECT_EQ(again->rec.tries, 0u);
  // The parser starts a new message, not the rest of the old one's body.
  const char next[] = "GET /b HTTP/1.1\r\nHost: y\r\n\r\n";
  auto r2 = again->request_parser.feed(next, std::strlen(next));
  EXPECT_EQ(r2.what, http::parser::event::headers_complete);
  EXPECT_EQ(again->request_parser.head().url, "/b");
}

// An HTTP/2 stream's state: the request's part alone, and the wire's part apart from it (an
// exchange with an HTTP/1 backend resets only the wire's fields; the parsers are its own business).
TEST(request_state, reset_makes_a_recycled_request_state_as_good_as_new_and_reset_wire_leaves_the_request_alone) {
  recycler<request_state> r(1);
  auto st = r.take();
  st->replay = "body";
  st->have_request_id = true;
  st->facts.tls = true;
  st->rec.status = 504;
  st->rec.route = 3;
  r.give(std::move(st));
  auto again = r.take();
  again->reset();
  EXPECT_TRUE(again->replay.empty());
  EXPECT_FALSE(again->have_request_id);
  EXPECT_FALSE(again->facts.tls);
  EXPECT_EQ(again->rec.status, 0);
  EXPECT_EQ(again->rec.route, -1);

  http1_state wire;
  wire.replay = "kept";
  wire.rec.status = 200;
  wire.ubegin = 2;
  wire.uend = 7;
  wire.upstream_drained = true;
  wire.out = "GET / HTTP/1.1\r\n";
  wire.reset_wire();
  EXPECT_EQ(wire.ubegin, 0u);
  EXPECT_EQ(wire.uend, 0u);
  EXPECT_FALSE(wire.upstream_drained);
  EXPECT_TRUE(wire.out.empty());
  EXPECT_EQ(wire.replay, "kept");
  EXPECT_EQ(wire.rec.status, 200);
}

}  // namespace
}  // namespace spillway::proxy
