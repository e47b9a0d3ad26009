#include "proxy/http1_state.h"

#include <sys/mman.h>

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

}  // namespace

void* http1_state::operator new(std::size_t size) {
  if (use_heap) {
    return ::operator new(size);
  }
  void* p = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) {
    throw std::bad_alloc();
  }
  return p;
}

void http1_state::operator delete(void* p, std::size_t size) noexcept {
  if (use_heap) {
    ::operator delete(p);
    return;
  }
  ::munmap(p, size);
}

}  // namespace spillway::proxy
