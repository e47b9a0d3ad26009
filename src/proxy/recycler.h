#pragma once
// A worker's free list of objects that are expensive to allocate and only needed for a while (an
// HTTP/1 connection's per-request state with its buffers). take() hands out a kept one or a new
// one; give() keeps it for the next take() up to `keep` objects and frees the rest, so that memory
// after a burst goes back to the allocator instead of staying with the worker. One thread (the
// worker's).

#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

namespace spillway::proxy {

template <typename T>
class recycler {
 public:
  explicit recycler(std::size_t keep) : keep_(keep) { free_.reserve(keep); }

  // A kept object (as give() left it) or a new one.
  std::unique_ptr<T> take() {
    if (free_.empty()) {
      ++allocated_;
      return std::make_unique<T>();
    }
    auto p = std::move(free_.back());
    free_.pop_back();
    return p;
  }

  // Takes `p` back (null is ignored): kept while fewer than `keep` are, freed otherwise.
  void give(std::unique_ptr<T> p) {
    if (!p) {
      return;
    }
    if (free_.size() < keep_) {
      free_.push_back(std::move(p));
    }
  }

  std::size_t kept() const { return free_.size(); }
  std::uint64_t allocated() const { return allocated_; }  // take() calls that found nothing kept

 private:
  std::size_t keep_;
  std::vector<std::unique_ptr<T>> free_;
  std::uint64_t allocated_ = 0;
};

}  // namespace spillway::proxy
