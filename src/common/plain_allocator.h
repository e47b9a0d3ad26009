#pragma once
// An allocator that asks operator new for exactly the bytes needed, for Asio handlers that stay
// pending for long (an idle connection's readability and timer waits).
//
// Asio allocates a handler's operation through the handler's associated allocator; for a handler
// with none, or with std::allocator (which Asio treats the same), it recycles per-thread blocks of
// whatever size was freed last. That is right for short operations, but a wait that stays pending
// while a connection idles would keep a 300+ byte block for a 100-byte operation, per connection.
// Bind this allocator to such handlers (asio::bind_allocator) to have them sized exactly.

#include <cstddef>
#include <new>

namespace spillway {

template <typename T>
struct plain_allocator {
  using value_type = T;

  plain_allocator() noexcept = default;
  template <typename U>
  plain_allocator(const plain_allocator<U>&) noexcept {}  // NOLINT: rebinding is implicit

  T* allocate(std::size_t n) { return static_cast<T*>(::operator new(n * sizeof(T))); }
  void deallocate(T* p, std::size_t) noexcept { ::operator delete(p); }

  template <typename U>
  bool operator==(const plain_allocator<U>&) const noexcept {
    return true;
  }
};

}  // namespace spillway
