// libFuzzer target: SRV answers (upstream::parse_srv_answer) on arbitrary bytes, as a DNS server
// (or anything answering from port 53) may send them. It must never read outside the message, and
// every record it returns must be usable: a non-empty target of at most 1025 characters, a port.

#include "upstream/srv.h"

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::vector<spillway::upstream::srv_record> records;
  // A copy of exactly `size` bytes, so that ASan sees any read past the message.
  std::vector<unsigned char> msg(data, data + size);
  if (spillway::upstream::parse_srv_answer(msg.data(), msg.size(), records)) {
    return 0;
  }
  for (const auto& r : records) {
    if (r.target.empty() || r.target.size() > 1025 || r.port == 0) {
      std::fprintf(stderr, "invariant broken: record %s:%u\n", r.target.c_str(), r.port);
      std::abort();
    }
  }
  std::vector<std::uint32_t> weights;
  std::vector<bool> backups;
  spillway::upstream::srv_roles(records, weights, backups);
  return 0;
}
