// rate_limits: named policies (key, rate, burst, dry_run, max_keys), and the check that every
// route and tcp listener naming one names a policy that exists and fits it.

#include <algorithm>

#include "config/loader.h"

namespace spillway::config::detail {

void loader::read_rate_limits(const Node& v) {
  if (!expect(v, kind::list, "rate_limits")) {
    return;
  }
  for (const auto& item : v) {
    read_rate_limit(item);
  }
}

void loader::read_rate_limit(const Node& n) {
  if (!expect(n, kind::map, "each rate limit")) {
    return;
  }
  rate_limit rl;
  rl.where = where(n);
  std::optional<mark> name_at;
  bool rate_given = false;
  bool burst_given = false;
  std::optional<mark> unavailable_at;
  std::optional<mark> timeout_at;
  read_map(n, "in rate limit",
           {
               {"name",
                [&](const Node& v) {
                  if (auto s = read_name(v, "rate limit name")) {
                    rl.name = *s;
                    name_at = where(v);
                  }
                }},
               {"key",
                [&](const Node& v) {
                  if (!expect(v, kind::scalar, "rate limit key")) {
                    return;
                  }
                  const auto& text = v.Scalar();
                  constexpr std::string_view header_prefix = "header:";
                  if (text.rfind(header_prefix, 0) == 0) {
                    auto name = std::string_view(text).substr(header_prefix.size());
                    if (!is_token(name)) {
                      add(v, fmt::format("invalid rate limit key {}: header:NAME needs a header name", quote(text)));
                      return;
                    }
                    rl.key = rate_limit::key_kind::header;
                    rl.header = lower(name);
                    return;
                  }
                  rl.key = read_enum<rate_limit::key_kind>(v, "rate limit key",
                                                           {{"client_ip", rate_limit::key_kind::client_ip},
                                                            {"header:NAME", rate_limit::key_kind::header},
                                                            {"route", rate_limit::key_kind::route},
                                                            {"global", rate_limit::key_kind::global}})
                               .value_or(rl.key);
                }},
               {"rate",
                [&](const Node& v) {
                  rate_given = true;
                  read_rate(v, rl);
                }},
               {"burst",
                [&](const Node& v) {
                  burst_given = true;
                  if (auto b = read_uint(v, "rate limit burst", 1, 1000000000)) {
                    rl.burst = *b;
                  }
                }},
               {"dry_run",
                [&](const Node& v) {
                  if (auto b = read_bool(v, "rate limit dry_run")) {
                    rl.dry_run = *b;
                  }
                }},
               {"max_keys", to_uint(rl.max_keys, "rate limit max_keys", 1, 10000000)},
               {"shared", [&](const Node& v) { read_shared(v, rl); }},
               {"on_unavailable",
                [&](const Node& k, const Node& v) {
                  unavailable_at = where(k);
                  rl.on_unavailable = read_enum<rate_limit::unavailable>(v, "on_unavailable",
                                                                         {{"local", rate_limit::unavailable::local},
                                                                          {"allow", rate_limit::unavailable::allow},
                                                                          {"deny", rate_limit::unavailable::deny}})
                                          .value_or(rl.on_unavailable);
                }},
               {"shared_timeout",
                [&](const Node& k, const Node& v) {
                  timeout_at = where(k);
                  if (auto d = read_duration(v, "shared_timeout", false)) {
                    if (*d > std::chrono::seconds(1)) {
                      add(v, fmt::format("shared_timeout {} is over 1s: every request of the policy may wait that "
                                         "long for Redis",
                                         quote(v.Scalar())));
                    } else {
                      rl.shared_timeout = *d;
                    }
                  }
                }},
           });
  if (!rl.shared) {
    for (const auto& at : {unavailable_at, timeout_at}) {
      if (at) {
        add(*at, fmt::format("rate limit {}: on_unavailable and shared_timeout apply to a shared policy only (add "
                             "shared: redis://HOST:PORT)",
                             quote(rl.name)));
      }
    }
  }
  if (!name_at) {
    add(n, "rate limit needs a \"name\" (routes refer to it)");
  }
  if (!rate_given) {
    add(n, "rate limit needs a \"rate\" (e.g. 100/s or 6000/m)");
  }
  if (!burst_given && rl.count > 0) {
    // One second's worth at once: a client at the rate never waits, a burst beyond it does.
    const auto per_second = (rl.count * 1000 + static_cast<std::uint64_t>(rl.period.count()) - 1) /
                            static_cast<std::uint64_t>(rl.period.count());
    rl.burst = std::max<std::uint64_t>(1, per_second);
  }
  if (name_at) {
    if (auto first = rate_limit_names_.find(rl.name); first != rate_limit_names_.end()) {
      add(*name_at, fmt::format("duplicate rate limit name {} (first at line {})", quote(rl.name), first->second.line));
      return;
    }
    rate_limit_names_.emplace(rl.name, *name_at);
  }
  cfg_.rate_limits.push_back(std::move(rl));
}

// COUNT/UNIT, the unit s, m or h: "100/s", "6000/m".
void loader::read_rate(const Node& v, rate_limit& rl) {
  if (!expect(v, kind::scalar, "rate limit rate")) {
    return;
  }
  const auto& text = v.Scalar();
  const auto slash = text.find('/');
  auto count = parse_unsigned(std::string_view(text).substr(0, slash));
  const auto unit = slash == std::string::npos ? std::string_view() : std::string_view(text).substr(slash + 1);
  duration period{};
  if (unit == "s") {
    period = std::chrono::seconds(1);
  } else if (unit == "m") {
    period = std::chrono::minutes(1);
  } else if (unit == "h") {
    period = std::chrono::hours(1);
  }
  if (!count || period.count() == 0) {
    add(v, fmt::format("invalid rate {}: expected COUNT/s, COUNT/m or COUNT/h (e.g. 100/s)", quote(text)));
    return;
  }
  // At most one request per nanosecond, at least one per period.
  if (*count < 1 || *count > 1000000000ULL * static_cast<std::uint64_t>(period.count() / 1000)) {
    add(v, fmt::format("invalid rate {}: the count must be from 1 to one per nanosecond", quote(text)));
    return;
  }
  rl.count = *count;
  rl.period = period;
  rl.rate_text = text;
}

// redis://HOST:PORT (the port defaults to 6379); no database, user or password.
void loader::read_shared(const Node& v, rate_limit& rl) {
  auto s = read_name(v, "rate limit shared");
  if (!s) {
    return;
  }
  std::string why;
  auto a = parse_service_url(*s, "redis://", 6379, nullptr, &why);
  if (!a) {
    add(v, fmt::format("invalid shared {}: expected redis://HOST:PORT, no database, user or password ({})", quote(*s),
                       why));
    return;
  }
  rl.shared = *a;
}

void loader::check_rate_limit_refs() {
  std::vector<std::string_view> names;
  for (const auto& [name, at] : rate_limit_names_) {
    names.push_back(name);
  }
  for (const auto& ref : rate_limit_refs_) {
    const auto it = std::find_if(cfg_.rate_limits.begin(), cfg_.rate_limits.end(),
                                 [&](const rate_limit& rl) { return rl.name == ref.name; });
    if (it == cfg_.rate_limits.end()) {
      add(ref.at,
          fmt::format("{} refers to unknown rate limit {}{}", ref.who, quote(ref.name), did_you_mean(ref.name, names)));
      continue;
    }
    if (ref.connections && it->key != rate_limit::key_kind::client_ip && it->key != rate_limit::key_kind::global) {
      add(ref.at, fmt::format("{} counts connections with rate limit {}, whose key needs a request: a tcp listener's "
                              "policy is keyed by client_ip or global",
                              ref.who, quote(ref.name)));
    }
  }
}

}  // namespace spillway::config::detail
