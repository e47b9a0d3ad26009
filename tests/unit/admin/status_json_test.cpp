#include "admin/status_json.h"

#include "admin_fixture.h"

#include <gtest/gtest.h>
#include <boost/json.hpp>

namespace spillway::admin {
namespace {

namespace json = boost::json;

const json::object& backend(const json::value& status, std::size_t upstream, std::size_t i) {
  return status.at("upstreams").at(upstream).at("backends").at(i).as_object();
}

TEST(admin_status_json, is_one_json_object_and_a_newline) {
  testing::admin_fixture f;
  const auto text = status_json(f.s, f.now);
  ASSERT_FALSE(text.empty());
  EXPECT_EQ(text.back(), '\n');
  json::error_code ec;
  auto v = json::parse(text, ec);
  ASSERT_FALSE(ec) << ec.message() << "\n" << text;
  EXPECT_TRUE(v.is_object());
  // An empty state too.
  EXPECT_TRUE(json::parse(status_json(state{}, f.now)).is_object());
}

TEST(admin_status_json, has_the_fields_of_spec_section_3) {
  testing::admin_fixture f;
  auto v = json::parse(status_json(f.s, f.now));
  const auto& ups = v.at("upstreams").as_array();
  ASSERT_EQ(ups.size(), 2u);
  EXPECT_EQ(ups[0].at("name"), "app");
  EXPECT_EQ(ups[1].at("name"), "we\"ird\\up\nstream");  // escaped, and read back as it was
  const auto& b = backend(v, 0, 0);
  EXPECT_EQ(b.at("address"), "127.0.0.1:9001");
  EXPECT_EQ(b.at("healthy"), true);
  EXPECT_EQ(b.at("ejected"), false);
  EXPECT_EQ(b.at("breaker"), "closed");
  EXPECT_EQ(b.at("active_requests"), 3);
  EXPECT_EQ(b.at("requests_total"), 42);
  EXPECT_EQ(b.at("failures_total"), 2);
  const auto& cfg = v.at("config").as_object();
  EXPECT_EQ(cfg.at("generation"), 4);
  EXPECT_EQ(cfg.at("loaded_at"), "2023-11-14T22:13:20.123Z");
  EXPECT_EQ(cfg.at("path"), "/etc/spillway/spillway.yaml");
  EXPECT_EQ(cfg.at("last_reload_error"), "line 3: \"bad\"\tvalue");
}

TEST(admin_status_json, a_backend_out_of_rotation_says_why) {
  testing::admin_fixture f;
  auto v = json::parse(status_json(f.s, f.now));
  EXPECT_EQ(backend(v, 0, 0).at("available"), true);
  EXPECT_TRUE(backend(v, 0, 0).at("out_reason").is_null());
  const auto& down = backend(v, 0, 1);
  EXPECT_EQ(down.at("available"), false);
  EXPECT_EQ(down.at("out_reason"), "unhealthy");
  EXPECT_EQ(down.at("health_detail"), "connect: connection refused");
  EXPECT_TRUE(down.at("breaker_window").is_null());  // no circuit breaker
  const auto& ejected = backend(v, 0, 2);
  EXPECT_EQ(ejected.at("out_reason"), "ejected");
  EXPECT_EQ(ejected.at("ejection_detail"), "3 consecutive failures");
  EXPECT_EQ(ejected.at("consecutive_failures"), 3);
  EXPECT_EQ(backend(v, 1, 0).at("breaker"), "open");
  EXPECT_EQ(backend(v, 1, 0).at("out_reason"), "breaker_open");
}

TEST(admin_status_json, a_hostnames_addresses_show_under_their_name) {
  testing::admin_fixture f;
  auto v = json::parse(status_json(f.s, f.now));
  EXPECT_EQ(backend(v, 0, 0).at("name"), "127.0.0.1:9001");  // an address backend is its own name
  const auto& resolved = backend(v, 0, 2);
  EXPECT_EQ(resolved.at("address"), "10.1.2.3:9003");
  EXPECT_EQ(resolved.at("name"), "backend.internal:9003");
  const auto& names = v.at("upstreams").at(0).at("names").as_array();
  ASSERT_EQ(names.size(), 1u);
  EXPECT_EQ(names[0].at("name"), "backend.internal:9003");
  EXPECT_EQ(names[0].at("addresses"), 1);
  EXPECT_EQ(names[0].at("lookups"), 12);
  EXPECT_EQ(names[0].at("failures"), 2);
  EXPECT_EQ(names[0].at("added"), 3);
  EXPECT_EQ(names[0].at("removed"), 1);
  EXPECT_EQ(names[0].at("last_error"), "Host not found");
  EXPECT_TRUE(v.at("upstreams").at(1).at("names").as_array().empty());
}

TEST(admin_status_json, traffic_upstream_counters_listeners_and_events) {
  testing::admin_fixture f;
  auto v = json::parse(status_json(f.s, f.now));
  const auto& b = backend(v, 0, 0);
  EXPECT_EQ(b.at("responses").at("2xx"), 40);
  EXPECT_EQ(b.at("responses").at("5xx"), 2);
  EXPECT_GT(b.at("latency_ms").at("p99").as_double(), 0.0);
  const auto& app = v.at("upstreams").at(0).as_object();
  EXPECT_EQ(app.at("retries").at("failure"), 2);
  EXPECT_EQ(app.at("overflow").at("max_pending"), 9);
  const auto& listeners = v.at("listeners").as_array();
  ASSERT_EQ(listeners.size(), 2u);
  EXPECT_EQ(listeners[0].at("name"), "web");
  EXPECT_EQ(listeners[0].at("connections_active"), 3);
  EXPECT_EQ(listeners[1].at("protocol"), "tcp");
  EXPECT_EQ(listeners[1].at("tls"), true);
  const auto& events = v.at("events").as_array();
  ASSERT_EQ(events.size(), 2u);
  EXPECT_EQ(events[0].at("kind"), "ejection");
  EXPECT_EQ(events[0].at("backend"), "10.1.2.3:9003");
  EXPECT_EQ(events[1].at("kind"), "reload");
  EXPECT_EQ(events[1].at("to"), "rejected");
}

TEST(admin_status_json, an_open_breaker_says_when_it_may_go_half_open) {
  testing::admin_fixture f;
  config::circuit_breaker cfg;
  cfg.minimum_requests = 2;
  f.up->circuit = std::make_unique<breaker::circuit_breaker>(cfg, 1);
  auto& circuit = *f.up->circuit;
  for (int i = 0; i < 2; ++i) {
    auto token = circuit.try_acquire(f.now);
    ASSERT_TRUE(token);
    circuit.on_result(token, {true, false}, f.now);
  }
  ASSERT_EQ(circuit.current(), breaker::state::open);
  const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(circuit.open_until() - f.now).count();
  ASSERT_GT(left, 0);
  auto v = json::parse(status_json(f.s, f.now));
  const auto& window = backend(v, 0, 0).at("breaker_window");
  EXPECT_EQ(window.at("half_open_in_ms"), left);
  // Past its time it reads 0, never negative.
  v = json::parse(status_json(f.s, circuit.open_until() + std::chrono::seconds(1)));
  EXPECT_EQ(backend(v, 0, 0).at("breaker_window").at("half_open_in_ms"), 0);
}

}  // namespace
}  // namespace spillway::admin
