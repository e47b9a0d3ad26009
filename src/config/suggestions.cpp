// "Did you mean" for misspelled keys, enum values and upstream names: the closest known word by
// edit distance, offered only when it is close enough to be the likely intent.

#include <fmt/format.h>

#include <algorithm>

#include "config/loader.h"

namespace spillway::config::detail {

namespace {

// Optimal string alignment distance: like Levenshtein, but a swap of two neighbours ("tsl" for
// "tls") costs one edit, which is the most common typo in keys.
std::size_t edit_distance(std::string_view a, std::string_view b) {
  std::vector<std::vector<std::size_t>> d(a.size() + 1, std::vector<std::size_t>(b.size() + 1));
  for (std::size_t i = 0; i <= a.size(); ++i) {
    d[i][0] = i;
  }
  for (std::size_t j = 0; j <= b.size(); ++j) {
    d[0][j] = j;
  }
  for (std::size_t i = 1; i <= a.size(); ++i) {
    for (std::size_t j = 1; j <= b.size(); ++j) {
      std::size_t cost = a[i - 1] == b[j - 1] ? 0 : 1;
      d[i][j] = std::min({d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost});
      if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1]) {
        d[i][j] = std::min(d[i][j], d[i - 2][j - 2] + 1);
      }
    }
  }
  return d[a.size()][b.size()];
}

// The closest candidate when it is close enough to be the likely intent, else empty. The bound
// keeps short words from "matching" unrelated short words.
std::string closest(std::string_view word, const std::vector<std::string_view>& candidates) {
  std::string lowered = lower(word);
  std::string best;
  std::size_t best_distance = std::numeric_limits<std::size_t>::max();
  for (auto candidate : candidates) {
    std::size_t d = edit_distance(lowered, candidate);
    if (d < best_distance) {
      best_distance = d;
      best = std::string(candidate);
    }
  }
  std::size_t longest = std::max(word.size(), best.size());
  if (best.empty() || best_distance > 2 || best_distance * 2 > longest) {
    return {};
  }
  return best;
}

}  // namespace

std::string did_you_mean(std::string_view word, const std::vector<std::string_view>& candidates) {
  auto best = closest(word, candidates);
  return best.empty() ? std::string() : fmt::format(" (did you mean \"{}\"?)", best);
}

}  // namespace spillway::config::detail
