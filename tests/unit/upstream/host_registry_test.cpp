// The host registry: host state across reloads, address changes and removals, and asynchronous DNS
// with a resolver the test answers itself (no system resolver, no sleeping): a hostname is one host
// per address it resolves to.

#include "upstream/host_registry.h"

#include <gtest/gtest.h>

#include <boost/asio/io_context.hpp>

#include <deque>
#include <initializer_list>
#include <string>

namespace spillway::upstream {
namespace {

namespace asio = boost::asio;
using asio::ip::tcp;

config::backend backend(const std::string& host, std::uint16_t port, std::uint32_t weight = 1) {
  config::backend b;
  b.addr.host = host;
  b.addr.port = port;
  b.addr.is_ip = host.find_first_not_of("0123456789.") == std::string::npos;
  b.addr.text = host + ":" + std::to_string(port);
  b.weight = weight;
  return b;
}

config::config one_upstream(std::vector<config::backend> backends) {
  config::config cfg;
  config::upstream u;
  u.name = "app";
  u.backends = std::move(backends);
  u.dns_refresh = std::chrono::seconds(5);
  cfg.upstreams.push_back(u);
  return cfg;
}

// Lookups wait here until the test answers them.
struct fake_dns {
  struct lookup {
    std::string name;
    host_registry::resolve_done done;
  };
  std::deque<lookup> pending;

  host_registry::resolve_fn fn() {
    return [this](const config::address& addr, host_registry::resolve_done done) {
      pending.push_back({(addr.srv ? "srv:" : "") + addr.host, std::move(done)});
    };
  }
  void answer(std::initializer_list<const char*> ips, std::uint16_t port = 80) {
    std::vector<host_registry::resolved> found;
    for (const char* ip : ips) {
      found.push_back({tcp::endpoint(asio::ip::make_address(ip), port), {}, 0, false});
    }
    answer_with(std::move(found));
  }
  void answer_with(std::vector<host_registry::resolved> found) {
    ASSERT_FALSE(pending.empty());
    auto l = std::move(pending.front());
    pending.pop_front();
    l.done({}, std::move(found));
  }
  void fail() {
    ASSERT_FALSE(pending.empty());
    auto l = std::move(pending.front());
    pending.pop_front();
    l.done(asio::error::host_not_found, {});
  }
};

struct fixture {
  fixture() {
    registry.on_change([this] { ++changes; });
  }
  asio::io_context io;
  manual_time_source clk;
  journal events{clk};
  fake_dns dns;
  host_registry registry{io, &events, dns.fn(), clk};
  int changes = 0;

  void next_refresh() {
    clk.advance(std::chrono::seconds(5));
    registry.refresh(clk.steady_now());
  }
};

std::vector<std::string> addresses(const cluster_ptr& c) {
  std::vector<std::string> out;
  for (const auto& h : c->hosts) {
    out.push_back(h->address());
  }
  return out;
}

using strings = std::vector<std::string>;

TEST(HostRegistry, AReloadKeepsTheHostAndItsStateWhileTheBackendStays) {
  fixture f;
  auto first = f.registry.build(one_upstream({backend("10.0.0.1", 80), backend("10.0.0.2", 80)}), {});
  ASSERT_EQ(first.size(), 1u);
  ASSERT_EQ(first[0]->hosts.size(), 2u);
  auto a = first[0]->hosts[0];
  a->mark_out(out_kind::ejection, "5 consecutive failures");
  a->active_requests.fetch_add(3);
  first[0]->stats->no_healthy_upstream.fetch_add(1);

  // Same backends, another weight: same objects, state kept, weight applied.
  auto second = f.registry.build(one_upstream({backend("10.0.0.1", 80, 5), backend("10.0.0.2", 80)}), {});
  EXPECT_EQ(second[0]->hosts[0], a);
  EXPECT_TRUE(a->is_ejected());
  EXPECT_EQ(a->active_requests.load(), 3);
  EXPECT_EQ(a->weight(), 5u);
  EXPECT_EQ(second[0]->stats, first[0]->stats);  // per-upstream counters survive too
  EXPECT_EQ(f.registry.find("app", "10.0.0.1:80"), a);
  EXPECT_FALSE(a->from_name());
  EXPECT_EQ(a->name(), "10.0.0.1:80");
  EXPECT_TRUE(second[0]->names.empty());
}

TEST(HostRegistry, AnAddressChangeIsANewHostUncheckedAndARemovedHostIsForgotten) {
  fixture f;
  auto first = f.registry.build(one_upstream({backend("10.0.0.1", 80), backend("10.0.0.2", 80)}), {});
  auto b = first[0]->hosts[1];
  b->mark_in(out_kind::health);
  b->mark_out(out_kind::health, "status 503");
  auto second = f.registry.build(one_upstream({backend("10.0.0.1", 80), backend("10.0.0.3", 80)}), {});
  ASSERT_EQ(second[0]->hosts.size(), 2u);
  EXPECT_EQ(second[0]->hosts[0], first[0]->hosts[0]);
  EXPECT_NE(second[0]->hosts[1], b);
  // Nothing is known about 10.0.0.3: no traffic before its first health check passes.
  EXPECT_STREQ(second[0]->hosts[1]->out_reason(), "unhealthy");
  EXPECT_EQ(second[0]->hosts[1]->detail(out_kind::health), "not checked yet");
  EXPECT_EQ(f.registry.find("app", "10.0.0.2:80"), nullptr);
  // Put back later, 10.0.0.2 starts fresh.
  auto third = f.registry.build(one_upstream({backend("10.0.0.2", 80)}), {});
  EXPECT_NE(third[0]->hosts[0], b);
  EXPECT_EQ(third[0]->hosts[0]->detail(out_kind::health), "not checked yet");
}

// The incident of a backend taken out of rotation, then removed (by a reload, or from a name's
// answer), ends there: it is not left open forever, waiting for a host that will never come back.
TEST(HostRegistry, ARemovedBackendsOpenIncidentEndsAsRemoved) {
  fixture f;
  auto incident_of = [&](const std::string& backend) {
    std::vector<incident> found;
    for (const auto& i : f.events.incidents()) {
      if (i.backend == backend) {
        found.push_back(i);
      }
    }
    return found;
  };
  auto first = f.registry.build(one_upstream({backend("10.0.0.1", 80), backend("10.0.0.2", 80)}), {});
  first[0]->hosts[0]->mark_out(out_kind::ejection, "5 consecutive failures");
  first[0]->hosts[1]->mark_out(out_kind::ejection, "5 consecutive failures");
  f.clk.advance(std::chrono::seconds(3));
  f.registry.build(one_upstream({backend("10.0.0.1", 80)}), {});
  auto gone = incident_of("10.0.0.2:80");
  ASSERT_EQ(gone.size(), 1u);
  ASSERT_TRUE(gone[0].removed_at.has_value());
  EXPECT_EQ(*gone[0].removed_at - gone[0].marked_out_at, std::chrono::seconds(3));
  EXPECT_FALSE(gone[0].in_rotation_at.has_value());
  auto kept = incident_of("10.0.0.1:80");  // still there, still out: still open
  ASSERT_EQ(kept.size(), 1u);
  EXPECT_FALSE(kept[0].removed_at.has_value());

  // Put back and taken out again: a new incident, not the old one reopened.
  auto again = f.registry.build(one_upstream({backend("10.0.0.1", 80), backend("10.0.0.2", 80)}), {});
  again[0]->hosts[1]->mark_out(out_kind::ejection, "5 consecutive failures");
  EXPECT_EQ(incident_of("10.0.0.2:80").size(), 2u);

  // An address a name's answer no longer gives.
  auto cfg = one_upstream({backend("app.test", 80)});
  f.registry.build(cfg, {});
  f.dns.answer({"127.0.0.1", "127.0.0.2"});
  auto named = f.registry.build(cfg, {});
  named[0]->hosts[1]->mark_out(out_kind::ejection, "5 consecutive failures");
  f.next_refresh();
  f.dns.answer({"127.0.0.1"});
  auto dropped = incident_of("127.0.0.2:80");
  ASSERT_EQ(dropped.size(), 1u);
  EXPECT_TRUE(dropped[0].removed_at.has_value());
}

TEST(HostRegistry, WithoutHealthChecksANewHostTakesTrafficAtOnce) {
  fixture f;
  auto cfg = one_upstream({backend("10.0.0.1", 80)});
  cfg.upstreams[0].health.enabled = false;
  EXPECT_TRUE(f.registry.build(cfg, {})[0]->hosts[0]->available());
}

TEST(HostRegistry, ChangedHealthCheckSettingsStartTheHostFresh) {
  fixture f;
  auto cfg = one_upstream({backend("10.0.0.1", 80)});
  auto first = f.registry.build(cfg, {});
  first[0]->hosts[0]->mark_out(out_kind::ejection, "x");
  cfg.upstreams[0].health.interval = std::chrono::seconds(42);
  auto second = f.registry.build(cfg, {});
  EXPECT_NE(second[0]->hosts[0], first[0]->hosts[0]);
  EXPECT_FALSE(second[0]->hosts[0]->is_ejected());
}

TEST(HostRegistry, ANameIsOnePlaceholderUntilItResolvesThenOneHostPerAddress) {
  fixture f;
  auto cfg = one_upstream({backend("app.test", 80, 3)});
  auto clusters = f.registry.build(cfg, {});
  ASSERT_EQ(clusters[0]->hosts.size(), 1u);
  auto placeholder = clusters[0]->hosts[0];
  EXPECT_FALSE(placeholder->available());
  EXPECT_STREQ(placeholder->out_reason(), "unresolved");
  EXPECT_EQ(placeholder->address(), "app.test:80");
  EXPECT_EQ(f.registry.lookups_in_flight(), 1u);
  EXPECT_TRUE(f.registry.unresolved().empty());  // no answer yet is not a failure
  EXPECT_EQ(f.dns.pending.front().name, "app.test");

  f.dns.answer({"127.0.0.8", "127.0.0.7", "::1", "127.0.0.7"});  // duplicates count once
  EXPECT_EQ(f.registry.lookups_in_flight(), 0u);
  EXPECT_EQ(f.changes, 1);
  auto next = f.registry.build(cfg, {});
  EXPECT_EQ(addresses(next[0]), (strings{"127.0.0.7:80", "127.0.0.8:80", "[::1]:80"}));
  EXPECT_EQ(f.registry.lookups_in_flight(), 0u);  // building again does not look up again
  for (const auto& h : next[0]->hosts) {
    EXPECT_TRUE(h->is_resolved());
    EXPECT_TRUE(h->from_name());
    EXPECT_EQ(h->name(), "app.test:80");
    EXPECT_EQ(h->weight(), 3u);  // the backend's weight applies to each address
    EXPECT_EQ(h->detail(out_kind::health), "not checked yet");
    EXPECT_EQ(h->endpoint().port(), 80);
  }
  EXPECT_EQ(f.registry.find_all("app", "app.test:80").size(), 3u);
  ASSERT_EQ(next[0]->names.size(), 1u);
  EXPECT_EQ(next[0]->names[0]->name, "app.test:80");
  EXPECT_EQ(next[0]->names[0]->addresses, 3u);
  EXPECT_EQ(next[0]->names[0]->added, 0u);  // a first answer adds nothing: it is where the name starts
  EXPECT_TRUE(f.events.recent().empty());
}

TEST(HostRegistry, AFailedFirstLookupIsReportedAndRetriedAtTheRefresh) {
  fixture f;
  auto cfg = one_upstream({backend("app.test", 80)});
  auto clusters = f.registry.build(cfg, {});
  auto h = clusters[0]->hosts[0];
  f.dns.fail();
  EXPECT_EQ(f.changes, 0);
  ASSERT_EQ(f.registry.unresolved().size(), 1u);
  EXPECT_EQ(f.registry.unresolved()[0].rfind("backend app.test:80 of upstream \"app\": cannot resolve: ", 0), 0u);
  EXPECT_FALSE(h->available());
  f.registry.refresh(f.clk.steady_now());  // not due yet
  EXPECT_TRUE(f.dns.pending.empty());
  f.next_refresh();
  f.dns.answer({"127.0.0.8"});
  EXPECT_EQ(f.changes, 1);
  EXPECT_EQ(addresses(f.registry.build(cfg, {})[0]), (strings{"127.0.0.8:80"}));
  EXPECT_TRUE(f.registry.unresolved().empty());
}

TEST(HostRegistry, ARefreshKeepsTheAddressesThatStayAddsNewOnesAndDropsTheGone) {
  fixture f;
  auto cfg = one_upstream({backend("app.test", 80)});
  f.registry.build(cfg, {});
  f.dns.answer({"127.0.0.1", "127.0.0.2"});
  auto first = f.registry.build(cfg, {});
  auto one = first[0]->hosts[0];
  auto two = first[0]->hosts[1];
  two->mark_in(out_kind::health);
  two->requests_total.fetch_add(10);
  two->mark_out(out_kind::ejection, "5 consecutive failures");

  f.next_refresh();
  f.dns.answer({"127.0.0.3", "127.0.0.2"});
  EXPECT_EQ(f.changes, 2);
  auto second = f.registry.build(cfg, {});
  EXPECT_EQ(addresses(second[0]), (strings{"127.0.0.2:80", "127.0.0.3:80"}));
  EXPECT_EQ(second[0]->hosts[0], two);  // its state stays with it
  EXPECT_EQ(two->requests_total.load(), 10u);
  EXPECT_TRUE(two->is_ejected());
  EXPECT_EQ(second[0]->hosts[1]->detail(out_kind::health), "not checked yet");
  const auto& st = *second[0]->names[0];
  EXPECT_EQ(st.added, 1u);
  EXPECT_EQ(st.removed, 1u);
  EXPECT_EQ(st.addresses, 2u);
  EXPECT_EQ(st.lookups, 2u);
  strings events;
  for (const auto& e : f.events.recent()) {
    if (e.kind == "dns") {
      events.push_back(e.backend + " " + e.to);
    }
  }
  EXPECT_EQ(events, (strings{"127.0.0.1:80 removed", "127.0.0.3:80 added"}));

  // The same answer again changes nothing.
  f.next_refresh();
  f.dns.answer({"127.0.0.2", "127.0.0.3"});
  EXPECT_EQ(f.changes, 2);
  EXPECT_EQ(st.lookups, 3u);
  (void)one;
}

TEST(HostRegistry, AFailedOrEmptyLookupKeepsTheLastGoodAddresses) {
  fixture f;
  auto cfg = one_upstream({backend("app.test", 80)});
  f.registry.build(cfg, {});
  f.dns.answer({"127.0.0.1", "127.0.0.2"});
  auto first = f.registry.build(cfg, {});
  f.next_refresh();
  f.dns.fail();
  f.next_refresh();
  f.dns.answer({});
  EXPECT_EQ(f.changes, 1);
  auto second = f.registry.build(cfg, {});
  EXPECT_EQ(second[0]->hosts, first[0]->hosts);
  const auto& st = *second[0]->names[0];
  EXPECT_EQ(st.failures, 2u);
  EXPECT_FALSE(st.last_error.empty());
  EXPECT_EQ(st.addresses, 2u);
  f.next_refresh();
  f.dns.answer({"127.0.0.1", "127.0.0.2"});
  EXPECT_TRUE(st.last_error.empty());
  EXPECT_EQ(f.changes, 1);
}

TEST(HostRegistry, HostsThatStartFreshKeepTheirNamesAnswer) {
  fixture f;
  auto cfg = one_upstream({backend("app.test", 80)});
  f.registry.build(cfg, {});
  f.dns.answer({"127.0.0.3", "127.0.0.4"});
  auto first = f.registry.build(cfg, {});
  cfg.upstreams[0].breaker.enabled = !cfg.upstreams[0].breaker.enabled;
  auto second = f.registry.build(cfg, {});
  EXPECT_EQ(addresses(second[0]), (strings{"127.0.0.3:80", "127.0.0.4:80"}));
  EXPECT_NE(second[0]->hosts[0], first[0]->hosts[0]);
  EXPECT_TRUE(second[0]->hosts[0]->is_resolved());  // no lookup to wait for
  EXPECT_EQ(f.registry.lookups_in_flight(), 0u);
  EXPECT_EQ(second[0]->names[0], first[0]->names[0]);  // the name's counters are kept
}

// srv:NAME: each record's target address is a backend with the record's port and weight; records
// above the lowest priority are backups. A record's new weight or priority is applied in place.
TEST(HostRegistry, AnSrvNameGivesEachAddressItsRecordsPortWeightAndRole) {
  fixture f;
  config::backend b;
  b.addr.text = "srv:_http._tcp.app.test";
  b.addr.host = "_http._tcp.app.test";
  b.addr.srv = true;
  auto cfg = one_upstream({b});
  f.registry.build(cfg, {});
  ASSERT_EQ(f.dns.pending.size(), 1u);
  EXPECT_EQ(f.dns.pending.front().name, "srv:_http._tcp.app.test");
  auto ep = [](const char* ip, std::uint16_t port) { return tcp::endpoint(asio::ip::make_address(ip), port); };
  f.dns.answer_with({{ep("127.0.0.1", 8001), "a.test", 10, false},
                     {ep("127.0.0.2", 8002), "b.test", 30, false},
                     {ep("127.0.0.3", 8003), "c.test", 1, true}});
  auto first = f.registry.build(cfg, {});
  ASSERT_EQ(addresses(first[0]), (strings{"127.0.0.1:8001", "127.0.0.2:8002", "127.0.0.3:8003"}));
  const auto& hosts = first[0]->hosts;
  EXPECT_EQ(hosts[0]->weight(), 10u);
  EXPECT_EQ(hosts[1]->weight(), 30u);
  EXPECT_FALSE(hosts[1]->backup());
  EXPECT_TRUE(hosts[2]->backup());
  EXPECT_EQ(hosts[1]->authority(), "b.test:8002");  // Host and TLS name: the record's target
  EXPECT_EQ(hosts[1]->cfg().addr.host, "b.test");
  EXPECT_EQ(hosts[1]->name(), "srv:_http._tcp.app.test");

  // The same addresses, other weights and priorities: same hosts, new roles, a rebuild asked for.
  f.next_refresh();
  f.dns.answer_with({{ep("127.0.0.1", 8001), "a.test", 5, true},
                     {ep("127.0.0.2", 8002), "b.test", 30, false},
                     {ep("127.0.0.3", 8003), "c.test", 1, false}});
  EXPECT_EQ(f.changes, 2);
  auto second = f.registry.build(cfg, {});  // a rebuild keeps the records' roles
  EXPECT_EQ(second[0]->hosts, hosts);
  EXPECT_EQ(hosts[0]->weight(), 5u);
  EXPECT_TRUE(hosts[0]->backup());
  EXPECT_FALSE(hosts[2]->backup());
  EXPECT_EQ(second[0]->names[0]->added, 0u);
}

TEST(HostRegistry, AnAnswerForARemovedNameIsIgnored) {
  fixture f;
  auto first = f.registry.build(one_upstream({backend("app.test", 80)}), {});
  auto h = first[0]->hosts[0];
  f.registry.build(one_upstream({backend("10.0.0.1", 80)}), {});
  f.dns.answer({"127.0.0.4"});
  EXPECT_FALSE(h->is_resolved());
  EXPECT_EQ(f.changes, 0);
  EXPECT_EQ(f.registry.lookups_in_flight(), 0u);
}

}  // namespace
}  // namespace spillway::upstream
