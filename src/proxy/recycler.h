#pragma once
// A worker's free list of objects that are expensive to allocate and only needed for a while (an
// HTTP/1 connection's per-request state with its buffers, an HTTP/2 stream's). take() hands out a
// kept one or a new one; give() keeps it for the next take(), up to `keep` objects or, when more
// were in use at once lately, up to that many (at most `cap`), and frees the rest. trim(), called
// every second or so, forgets a peak after one quiet period and frees what is kept beyond the new
// bound: steady load (say 160 HTTP/2 streams in flight) allocates nothing per request, and memory
// after a burst still goes back to the allocator within seconds. One thread (the worker's).

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

namespace spillway::proxy {

template <typename T>
class recycler {
 public:
  explicit recycler(std::size_t keep, std::size_t cap = 0) : keep_(keep), cap_(std::max(keep, cap)) {
    free_.reserve(keep);
  }

  // A kept object (as give() left it) or a new one.
  std::unique_ptr<T> take() {
    ++in_use_;
    peak_ = std::max(peak_, in_use_);
    if (free_.empty()) {
      ++allocated_;
      return std::make_unique<T>();
    }
    auto p = std::move(free_.back());
    free_.pop_back();
    return p;
  }

  // Takes `p` back (null is ignored): kept while fewer than bound() are, freed otherwise.
  void give(std::unique_ptr<T> p) {
    if (!p) {
      return;
    }
    in_use_ -= in_use_ > 0 ? 1 : 0;
    if (free_.size() < bound()) {
      free_.push_back(std::move(p));
    }
  }

  // The bound follows the peak of the period just ended, and the next period starts from what is
  // in use now; kept objects beyond the bound are freed.
  void trim() {
    recent_peak_ = peak_;
    peak_ = in_use_;
    if (free_.size() > bound()) {
      free_.resize(bound());
    }
  }

  // How many objects give() keeps: `keep`, or as many as were in use at once lately, up to `cap`.
  std::size_t bound() const { return std::min(cap_, std::max({keep_, recent_peak_, peak_})); }
  std::size_t kept() const { return free_.size(); }
  std::size_t in_use() const { return in_use_; }
  std::uint64_t allocated() const { return allocated_; }  // take() calls that found nothing kept

 private:
  std::size_t keep_;
  std::size_t cap_;
  std::vector<std::unique_ptr<T>> free_;
  std::size_t in_use_ = 0;       // taken and not given back
  std::size_t peak_ = 0;         // the most in use at once in the current period
  std::size_t recent_peak_ = 0;  // ... in the period before
  std::uint64_t allocated_ = 0;
};

}  // namespace spillway::proxy
