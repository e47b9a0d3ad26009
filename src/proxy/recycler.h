#pragma once
// A worker's free list of objects that are expensive to allocate and only needed for a while (an
// HTTP/1 connection's per-request state with its buffers, an HTTP/2 stream's). take() hands out a
// kept one or a new one; give() keeps it for the next take(), up to `keep` objects or, when more
// were in use at once lately, up to that many (at most `cap`), and frees the rest. trim(), called
// every second or so, remembers a peak for `hold` periods after it was last reached, then frees
// what is kept beyond the new bound, at most `release` objects a period. Steady load (say 160
// HTTP/2 streams in flight) allocates nothing per request; bursts that come back within `hold`
// (a load generator's runs, clients reconnecting together) find their objects kept, instead of
// paying an allocation, fresh pages and a free each (2,560 HTTP/2 streams opened at once took
// half as long again with a 1-period memory); and memory after a burst still goes back, within
// `hold` periods and then gradually (freeing thousands of mmap'd states in one sweep stalls the
// worker for milliseconds). One thread (the worker's).

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

namespace spillway::proxy {

template <typename T>
class recycler {
 public:
  explicit recycler(std::size_t keep, std::size_t cap = 0, std::size_t hold = 30, std::size_t release = 256)
      : keep_(keep), cap_(std::max(keep, cap)), hold_(std::max<std::size_t>(hold, 1)), release_(release) {
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

  // Ends a period: a peak at least as high as the remembered one renews it; after `hold` periods
  // below it, the bound follows the peak of the period just ended. The next period starts from
  // what is in use now. Kept objects beyond the bound are freed, at most `release` of them.
  void trim() {
    if (peak_ >= recent_peak_ || ++quiet_ >= hold_) {
      recent_peak_ = peak_;
      quiet_ = 0;
    }
    peak_ = in_use_;
    if (free_.size() > bound()) {
      free_.resize(free_.size() - std::min(free_.size() - bound(), release_));
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
  std::size_t hold_;
  std::size_t release_;
  std::size_t quiet_ = 0;  // periods since the remembered peak was last reached
  std::vector<std::unique_ptr<T>> free_;
  std::size_t in_use_ = 0;       // taken and not given back
  std::size_t peak_ = 0;         // the most in use at once in the current period
  std::size_t recent_peak_ = 0;  // ... in the period before
  std::uint64_t allocated_ = 0;
};

}  // namespace spillway::proxy
