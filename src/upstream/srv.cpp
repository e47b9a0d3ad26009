#include "upstream/srv.h"

#include <boost/asio/error.hpp>

#include <arpa/nameser.h>
#include <netdb.h>
#include <resolv.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <memory>

namespace spillway::upstream {

namespace asio = boost::asio;

boost::system::error_code parse_srv_answer(const unsigned char* msg, std::size_t len, std::vector<srv_record>& out) {
  ns_msg handle;
  if (len > 65535 || ns_initparse(msg, static_cast<int>(len), &handle) != 0) {
    return asio::error::no_recovery;  // not a DNS message
  }
  const int count = ns_msg_count(handle, ns_s_an);
  for (int i = 0; i < count; ++i) {
    ns_rr rr;
    if (ns_parserr(&handle, ns_s_an, i, &rr) != 0) {
      return asio::error::no_recovery;
    }
    if (ns_rr_type(rr) != ns_t_srv || ns_rr_class(rr) != ns_c_in) {
      continue;  // a CNAME on the way, or anything else
    }
    const unsigned char* rd = ns_rr_rdata(rr);
    if (ns_rr_rdlen(rr) < 7) {
      return asio::error::no_recovery;  // priority, weight, port and at least the root name
    }
    srv_record r;
    r.priority = ns_get16(rd);
    r.weight = ns_get16(rd + 2);
    r.port = ns_get16(rd + 4);
    std::array<char, NS_MAXDNAME> name{};
    // The target may be compressed (pointing elsewhere in the message): dn_expand bounds it by
    // the message, and its length must end inside the record's data.
    const int used = dn_expand(ns_msg_base(handle), ns_msg_end(handle), rd + 6, name.data(), name.size());
    if (used < 0 || used > ns_rr_rdlen(rr) - 6) {
      return asio::error::no_recovery;
    }
    r.target = name.data();
    if (!r.target.empty() && r.target.back() == '.') {
      r.target.pop_back();
    }
    if (r.target.empty() || r.port == 0) {
      continue;  // "." says the service is not offered here
    }
    out.push_back(std::move(r));
  }
  return {};
}

void srv_roles(const std::vector<srv_record>& records, std::vector<std::uint32_t>& weights,
               std::vector<bool>& backups) {
  std::uint16_t lowest = 0xffff;
  for (const auto& r : records) {
    lowest = std::min(lowest, r.priority);
  }
  weights.clear();
  backups.clear();
  for (const auto& r : records) {
    weights.push_back(std::max<std::uint32_t>(1, r.weight));
    backups.push_back(r.priority != lowest);
  }
}

boost::system::error_code lookup_srv(const std::string& name, std::vector<srv_address>& out) {
  // The resolver's state, per call (res_query's global one is not thread-safe to share).
  struct resolver_state {
    struct __res_state st {};
    bool open = false;
    ~resolver_state() {
      if (open) {
        res_nclose(&st);
      }
    }
  } r;
  if (res_ninit(&r.st) != 0) {
    return asio::error::no_recovery;
  }
  r.open = true;
  auto& state = r.st;
  std::vector<unsigned char> answer(65535);
  const int n = res_nquery(&state, name.c_str(), ns_c_in, ns_t_srv, answer.data(), static_cast<int>(answer.size()));
  if (n < 0) {
    switch (state.res_h_errno) {
      case HOST_NOT_FOUND:
        return asio::error::host_not_found;
      case TRY_AGAIN:
        return asio::error::host_not_found_try_again;
      case NO_DATA:
        return asio::error::no_data;
      default:
        return asio::error::no_recovery;
    }
  }
  std::vector<srv_record> records;
  if (auto ec = parse_srv_answer(answer.data(), static_cast<std::size_t>(n), records)) {
    return ec;
  }
  if (records.empty()) {
    return asio::error::no_data;
  }
  std::vector<std::uint32_t> weights;
  std::vector<bool> backups;
  srv_roles(records, weights, backups);
  for (std::size_t i = 0; i < records.size(); ++i) {
    addrinfo hints{};
    hints.ai_socktype = SOCK_STREAM;
    addrinfo* found = nullptr;
    if (getaddrinfo(records[i].target.c_str(), nullptr, &hints, &found) != 0) {
      continue;  // this target is gone: the others still serve
    }
    std::unique_ptr<addrinfo, void (*)(addrinfo*)> free_found(found, freeaddrinfo);
    for (auto* a = found; a != nullptr; a = a->ai_next) {
      asio::ip::tcp::endpoint ep;
      if (a->ai_family == AF_INET || a->ai_family == AF_INET6) {
        std::memcpy(ep.data(), a->ai_addr, a->ai_addrlen);
        ep.port(records[i].port);
        out.push_back({ep, records[i].target, weights[i], backups[i]});
      }
    }
  }
  if (out.empty()) {
    return asio::error::host_not_found;
  }
  return {};
}

}  // namespace spillway::upstream
