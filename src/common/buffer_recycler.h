#pragma once
// Buffers that travel from workers to a writer thread (access log lines, trace spans) and come
// back, so a hand-over costs no allocation: a buffer freed on the writer's thread would go back
// to the allocator, which returns its pages to the kernel (madvise), and the next buffer a worker
// fills would fault them in again, page by page.
//
//   worker:  buf = recycler.take(); ...fill...; queue it         (a spare one, or a new reservation)
//   writer:  ...write buf...; recycler.give(std::move(buf));    (kept when fewer than `keep` wait)
//
// Any thread.

#include <cstddef>
#include <mutex>
#include <string>
#include <vector>

namespace spillway {

class buffer_recycler {
 public:
  buffer_recycler(std::size_t capacity, std::size_t keep) : capacity_(capacity), keep_(keep) {}

  // An empty buffer with room for `capacity` bytes.
  std::string take() {
    {
      std::lock_guard lock(m_);
      if (!spare_.empty()) {
        auto b = std::move(spare_.back());
        spare_.pop_back();
        return b;
      }
    }
    std::string b;
    b.reserve(capacity_);
    return b;
  }

  // A buffer done with: kept for take() while fewer than `keep` wait and it has not grown past
  // twice the capacity (one huge burst does not stay allocated), freed otherwise.
  void give(std::string&& b) {
    if (b.capacity() < capacity_ || b.capacity() > 2 * capacity_) {
      return;
    }
    b.clear();
    std::lock_guard lock(m_);
    if (spare_.size() < keep_) {
      spare_.push_back(std::move(b));
    }
  }

 private:
  const std::size_t capacity_;
  const std::size_t keep_;
  std::mutex m_;
  std::vector<std::string> spare_;
};

}  // namespace spillway
