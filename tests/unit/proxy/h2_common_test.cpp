#include "proxy/h2_common.h"

#include <gtest/gtest.h>
#include <nghttp2/nghttp2.h>

#include <array>
#include <string>
#include <vector>

namespace spillway::proxy {
namespace {

// Encodes `fields` (built with make_nv) with `deflater` as one header block.
void deflate(nghttp2_hd_deflater* deflater, const std::vector<std::pair<std::string, std::string>>& fields) {
  std::vector<nghttp2_nv> nva;
  for (const auto& [name, value] : fields) {
    nva.push_back(make_nv(name, value));
  }
  std::array<uint8_t, 4096> out{};
  ASSERT_GT(nghttp2_hd_deflate_hd(deflater, out.data(), out.size(), nva.data(), nva.size()), 0);
}

TEST(make_nv, values_new_in_every_message_stay_out_of_the_hpack_dynamic_table) {
  nghttp2_hd_deflater* deflater = nullptr;
  ASSERT_EQ(nghttp2_hd_deflate_new(&deflater, 4096), 0);
  const auto base = nghttp2_hd_deflate_get_num_table_entries(deflater);  // the static table's
  for (int i = 0; i < 3; ++i) {
    const auto n = std::to_string(i);
    deflate(deflater, {{":authority", "api.internal"},
                       {"x-request-id", "8f14e45f-ceea-467f-a0e6-" + n},
                       {"traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b" + n + "-01"},
                       {"x-forwarded-for", "10.0.0.1"}});
  }
  // :authority and x-forwarded-for were indexed once each and reused; the per-message values never
  // entered the table.
  EXPECT_EQ(nghttp2_hd_deflate_get_num_table_entries(deflater), base + 2);
  nghttp2_hd_deflate_del(deflater);
}

TEST(make_nv, only_per_message_names_are_never_indexed) {
  EXPECT_EQ(make_nv("x-request-id", "a").flags, NGHTTP2_NV_FLAG_NO_INDEX);
  EXPECT_EQ(make_nv("traceparent", "a").flags, NGHTTP2_NV_FLAG_NO_INDEX);
  EXPECT_EQ(make_nv("grpc-timeout", "99982u").flags, NGHTTP2_NV_FLAG_NO_INDEX);
  for (const char* b3 : {"b3", "x-b3-traceid", "x-b3-spanid", "x-b3-parentspanid"}) {
    EXPECT_EQ(make_nv(b3, "a").flags, NGHTTP2_NV_FLAG_NO_INDEX) << b3;
  }
  EXPECT_EQ(make_nv("x-b3-sampled", "1").flags, NGHTTP2_NV_FLAG_NONE);
  EXPECT_EQ(make_nv("x-request-ids", "a").flags, NGHTTP2_NV_FLAG_NONE);
  EXPECT_EQ(make_nv("tracestate", "a").flags, NGHTTP2_NV_FLAG_NONE);
  EXPECT_EQ(make_nv("content-type", "application/grpc").flags, NGHTTP2_NV_FLAG_NONE);
}

}  // namespace
}  // namespace spillway::proxy
