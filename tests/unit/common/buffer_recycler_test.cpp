// Buffers handed back and forth between workers and a writer thread (src/common/buffer_recycler.h).

#include "common/buffer_recycler.h"

#include <gtest/gtest.h>

namespace spillway {
namespace {

TEST(buffer_recycler, a_buffer_given_back_is_the_next_one_taken_empty_and_with_its_memory) {
  buffer_recycler r(4096, 2);
  auto a = r.take();
  EXPECT_TRUE(a.empty());
  EXPECT_GE(a.capacity(), 4096u);
  a.append(3000, 'x');
  const auto* memory = a.data();
  r.give(std::move(a));
  auto b = r.take();
  EXPECT_TRUE(b.empty());
  EXPECT_EQ(b.data(), memory);  // the same allocation, not a new one
  auto c = r.take();            // none waiting: a new one
  EXPECT_NE(c.data(), memory);
  EXPECT_GE(c.capacity(), 4096u);
}

TEST(buffer_recycler, keeps_at_most_keep_and_drops_buffers_too_small_or_grown_too_big) {
  buffer_recycler r(4096, 2);
  std::string small;
  small.reserve(100);
  r.give(std::move(small));
  std::string huge;
  huge.reserve(3 * 4096);
  r.give(std::move(huge));
  auto fresh = r.take();  // neither was kept: by its capacity, this is neither of them
  EXPECT_GE(fresh.capacity(), 4096u);
  EXPECT_LT(fresh.capacity(), 3 * 4096u);

  auto one = r.take();
  auto two = r.take();
  auto three = r.take();
  const char* kept[] = {one.data(), two.data()};
  r.give(std::move(one));
  r.give(std::move(two));
  r.give(std::move(three));  // a third is freed
  auto x = r.take();
  auto y = r.take();
  auto z = r.take();
  EXPECT_EQ(x.data(), kept[1]);  // last given, first taken
  EXPECT_EQ(y.data(), kept[0]);
  EXPECT_NE(z.data(), kept[0]);
  EXPECT_NE(z.data(), kept[1]);
}

}  // namespace
}  // namespace spillway
