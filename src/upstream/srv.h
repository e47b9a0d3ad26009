#pragma once
// SRV records (RFC 2782) for backends written as `srv:_service._proto.name`: the records name
// targets with ports, weights and priorities; each target's addresses are backends.
//
// The wire format is parsed by glibc's libresolv (ns_initparse / ns_parserr / dn_expand, which
// check every length against the message); what is read out of each record is checked here.

#include <boost/asio/ip/tcp.hpp>
#include <boost/system/error_code.hpp>

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace spillway::upstream {

struct srv_record {
  std::uint16_t priority = 0;
  std::uint16_t weight = 0;
  std::uint16_t port = 0;
  std::string target;  // without the trailing dot
};

// The SRV records of a DNS answer message (`msg`, `len` bytes), or an error for a message that does
// not parse. Records of other types are skipped; a target "." (the service is not offered) or a
// port 0 yields no record. Pure: unit-tested and fuzzed.
boost::system::error_code parse_srv_answer(const unsigned char* msg, std::size_t len, std::vector<srv_record>& out);

// One address an SRV name stands for: a target's address with its record's port, weight and role
// (records of the lowest priority are primaries; the others are backups).
struct srv_address {
  boost::asio::ip::tcp::endpoint endpoint;
  std::string target;
  std::uint32_t weight = 1;
  bool backup = false;
};

// The addresses of `name` (e.g. "_http._tcp.api.internal"): its SRV records through the system
// resolver (resolv.conf), then each target's addresses (getaddrinfo: /etc/hosts, then DNS). A
// target that does not resolve is skipped; none resolving is an error. Blocking: call it off the
// event loops (the host registry runs it on a thread of its own).
boost::system::error_code lookup_srv(const std::string& name, std::vector<srv_address>& out);

// Turns records into roles: the lowest priority's records are primaries, the rest backups; a weight
// of 0 (RFC 2782: "very small chance") counts as 1. Pure.
void srv_roles(const std::vector<srv_record>& records, std::vector<std::uint32_t>& weights, std::vector<bool>& backups);

}  // namespace spillway::upstream
