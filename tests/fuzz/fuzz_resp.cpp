// libFuzzer target: Redis replies (ratelimit::resp::parse) on arbitrary bytes, as whatever answers
// on a shared rate limit's Redis address may send them. A parse must stay inside the buffer, obey
// its limits, and agree with itself: a reply that parses whole also parses from any buffer that
// starts with it, and none of its proper prefixes parses as a whole reply.

#include "ratelimit/resp.h"

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

namespace {

using spillway::ratelimit::resp::status;
using spillway::ratelimit::resp::value;

void fail(const char* what) {
  std::fprintf(stderr, "invariant broken: %s\n", what);
  std::abort();
}

std::size_t depth_of(const value& v) {
  std::size_t d = 0;
  for (const auto& i : v.items) {
    d = std::max(d, depth_of(i));
  }
  return v.type == value::kind::array ? d + 1 : d;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  namespace resp = spillway::ratelimit::resp;
  const std::string in(reinterpret_cast<const char*>(data), size);  // exactly `size` bytes for ASan
  value v;
  std::size_t consumed = 0;
  const auto s = resp::parse(in, consumed, v);
  if (s != status::done) {
    return 0;
  }
  if (consumed == 0 || consumed > size) {
    fail("consumed outside the buffer");
  }
  if (depth_of(v) > resp::max_depth || v.text.size() > resp::max_string || v.items.size() > resp::max_items) {
    fail("a limit was not kept");
  }
  value again;
  std::size_t consumed_again = 0;
  if (resp::parse(std::string_view(in).substr(0, consumed), consumed_again, again) != status::done ||
      consumed_again != consumed) {
    fail("the reply alone does not parse the same");
  }
  if (consumed > 1 &&
      resp::parse(std::string_view(in).substr(0, consumed - 1), consumed_again, again) == status::done) {
    fail("a proper prefix parses as a whole reply");
  }
  return 0;
}
