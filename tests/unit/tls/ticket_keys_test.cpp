#include "tls/ticket_keys.h"

#include <gtest/gtest.h>

namespace spillway::tls {
namespace {

using namespace std::chrono_literals;

// Deterministic "randomness": every key gets distinct bytes, so names tell keys apart.
ticket_keys::random_fn counting() {
  return [n = 0](unsigned char* p, std::size_t len) mutable {
    ++n;
    for (std::size_t i = 0; i < len; ++i) {
      p[i] = static_cast<unsigned char>(n + i);
    }
    return true;
  };
}

const ticket_keys::clock::time_point t0{std::chrono::hours(1000)};

TEST(ticket_keys, same_key_within_a_period_then_a_new_one) {
  ticket_keys keys(1h, 2, counting());
  auto a = keys.for_encryption(t0);
  ASSERT_TRUE(a);
  EXPECT_EQ(keys.for_encryption(t0 + 59min)->name, a->name);
  auto b = keys.for_encryption(t0 + 1h);
  ASSERT_TRUE(b);
  EXPECT_NE(b->name, a->name);
  EXPECT_EQ(keys.size(), 2u);
}

TEST(ticket_keys, tickets_of_the_previous_keys_resume_and_are_renewed) {
  ticket_keys keys(1h, 2, counting());
  auto a = *keys.for_encryption(t0);
  auto current = keys.for_decryption(a.name.data(), t0 + 10min);
  ASSERT_TRUE(current);
  EXPECT_FALSE(current->renew);
  EXPECT_EQ(current->key.aes, a.aes);
  // One rotation later (lazily, by the lookup itself): a's tickets still open, and get renewed.
  auto after = keys.for_decryption(a.name.data(), t0 + 1h + 1min);
  ASSERT_TRUE(after);
  EXPECT_TRUE(after->renew);
  EXPECT_EQ(after->key.hmac, a.hmac);
  auto b = *keys.for_encryption(t0 + 1h + 1min);
  EXPECT_NE(b.name, a.name);
  auto c = *keys.for_encryption(t0 + 2h + 2min);
  EXPECT_NE(c.name, b.name);
  EXPECT_TRUE(keys.for_decryption(a.name.data(), t0 + 2h + 2min));
  EXPECT_TRUE(keys.for_decryption(b.name.data(), t0 + 2h + 2min));
  // A third rotation pushes a out: its tickets mean a full handshake.
  auto d = *keys.for_encryption(t0 + 3h + 3min);
  EXPECT_EQ(keys.size(), 3u);
  EXPECT_FALSE(keys.for_decryption(a.name.data(), t0 + 3h + 3min));
  EXPECT_TRUE(keys.for_decryption(b.name.data(), t0 + 3h + 3min));
  EXPECT_FALSE(keys.for_decryption(d.name.data(), t0 + 3h + 3min)->renew);
}

TEST(ticket_keys, old_keys_expire_even_without_rotations) {
  ticket_keys keys(1h, 2, counting());
  auto a = *keys.for_encryption(t0);
  // Nobody asked for hours: the lookup rotates once (a is still kept), but a is past its
  // (kept + 1) periods.
  EXPECT_TRUE(keys.for_decryption(a.name.data(), t0 + 2h + 59min));
  EXPECT_FALSE(keys.for_decryption(a.name.data(), t0 + 3h));
  EXPECT_EQ(keys.size(), 2u);
}

TEST(ticket_keys, unknown_names_are_not_found) {
  ticket_keys keys(1h, 2, counting());
  keys.for_encryption(t0);
  unsigned char name[16] = {};
  EXPECT_FALSE(keys.for_decryption(name, t0));
}

TEST(ticket_keys, failed_randomness_keeps_the_last_key) {
  bool ok = true;
  ticket_keys keys(1h, 2, [&](unsigned char* p, std::size_t n) {
    for (std::size_t i = 0; i < n; ++i) {
      p[i] = 7;
    }
    return ok;
  });
  auto a = keys.for_encryption(t0);
  ASSERT_TRUE(a);
  ok = false;
  auto b = keys.for_encryption(t0 + 1h);
  ASSERT_TRUE(b);
  EXPECT_EQ(b->name, a->name);
  ticket_keys none(1h, 2, [](unsigned char*, std::size_t) { return false; });
  EXPECT_FALSE(none.for_encryption(t0));
}

}  // namespace
}  // namespace spillway::tls
