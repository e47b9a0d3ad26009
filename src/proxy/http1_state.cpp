#include "proxy/http1_state.h"

#include <sys/mman.h>

#include <cstdint>
#include <new>

namespace spillway::proxy {

namespace {

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
constexpr bool use_heap = true;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer) || __has_feature(memory_sanitizer)
constexpr bool use_heap = true;
#else
constexpr bool use_heap = false;
#endif
#else
constexpr bool use_heap = false;
#endif

// Each block starts with a header saying where it came from: mmap, or the heap when mmap failed
// (vm.max_map_count reached with tens of thousands of requests in flight, say).
constexpr std::size_t header = 16;
static_assert(alignof(http1_state) <= header);
enum source : std::uint8_t { from_mmap, from_heap };

}  // namespace

void* http1_state::operator new(std::size_t size) {
  if (use_heap) {
    return ::operator new(size);
  }
  auto* block = static_cast<unsigned char*>(
      ::mmap(nullptr, size + header, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
  if (block == MAP_FAILED) {
    block = static_cast<unsigned char*>(::operator new(size + header));
    block[0] = from_heap;
  } else {
    block[0] = from_mmap;
  }
  return block + header;
}

void http1_state::operator delete(void* p, std::size_t size) noexcept {
  if (use_heap) {
    ::operator delete(p);
    return;
  }
  auto* block = static_cast<unsigned char*>(p) - header;
  if (block[0] == from_heap) {
    ::operator delete(block);
  } else {
    ::munmap(block, size + header);
  }
}

}  // namespace spillway::proxy
