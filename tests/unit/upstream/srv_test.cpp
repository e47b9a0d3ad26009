// SRV answers: records read out of real DNS wire messages (built here), malformed ones refused,
// and the priority/weight rules of RFC 2782.

#include "upstream/srv.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace spillway::upstream {
namespace {

using bytes = std::vector<unsigned char>;

void put16(bytes& b, unsigned v) {
  b.push_back(static_cast<unsigned char>(v >> 8));
  b.push_back(static_cast<unsigned char>(v & 0xff));
}

bytes name(const std::string& dotted) {
  bytes out;
  std::size_t start = 0;
  while (start < dotted.size()) {
    auto dot = dotted.find('.', start);
    auto label = dotted.substr(start, dot == std::string::npos ? std::string::npos : dot - start);
    out.push_back(static_cast<unsigned char>(label.size()));
    out.insert(out.end(), label.begin(), label.end());
    start = dot == std::string::npos ? dotted.size() : dot + 1;
  }
  out.push_back(0);
  return out;
}

struct rr {
  unsigned type = 33;  // SRV
  unsigned priority = 0, weight = 0, port = 0;
  bytes target;  // encoded name (or a compression pointer)
};

// A response to an SRV query for `qname` with `answers`.
bytes message(const std::string& qname, const std::vector<rr>& answers) {
  bytes m;
  put16(m, 0x1234);  // id
  put16(m, 0x8180);  // response, recursion desired and available, no error
  put16(m, 1);
  put16(m, static_cast<unsigned>(answers.size()));
  put16(m, 0);
  put16(m, 0);
  auto q = name(qname);
  m.insert(m.end(), q.begin(), q.end());
  put16(m, 33);
  put16(m, 1);
  for (const auto& a : answers) {
    put16(m, 0xc00c);  // the owner: a pointer to the question's name
    put16(m, a.type);
    put16(m, 1);
    put16(m, 0);
    put16(m, 30);  // TTL
    bytes rd;
    if (a.type == 33) {
      put16(rd, a.priority);
      put16(rd, a.weight);
      put16(rd, a.port);
    }
    rd.insert(rd.end(), a.target.begin(), a.target.end());
    put16(m, static_cast<unsigned>(rd.size()));
    m.insert(m.end(), rd.begin(), rd.end());
  }
  return m;
}

TEST(Srv, RecordsAreReadWithTheirTargetsPortsWeightsAndPriorities) {
  auto m = message("_http._tcp.app.test", {{33, 10, 60, 8080, name("a.app.test")},
                                           {33, 10, 0, 8081, name("b.app.test")},
                                           {5, 0, 0, 0, name("alias.test")},  // a CNAME: skipped
                                           {33, 20, 5, 9090, name("c.app.test")}});
  std::vector<srv_record> out;
  ASSERT_FALSE(parse_srv_answer(m.data(), m.size(), out));
  ASSERT_EQ(out.size(), 3u);
  EXPECT_EQ(out[0].target, "a.app.test");
  EXPECT_EQ(out[0].port, 8080);
  EXPECT_EQ(out[0].weight, 60);
  EXPECT_EQ(out[0].priority, 10);
  EXPECT_EQ(out[2].target, "c.app.test");
  EXPECT_EQ(out[2].port, 9090);

  std::vector<std::uint32_t> weights;
  std::vector<bool> backups;
  srv_roles(out, weights, backups);
  EXPECT_EQ(weights, (std::vector<std::uint32_t>{60, 1, 5}));   // weight 0 is the smallest share, not none
  EXPECT_EQ(backups, (std::vector<bool>{false, false, true}));  // priority 20 waits for the 10s
}

TEST(Srv, ACompressedTargetIsExpanded) {
  bytes pointer_to_question = {0xc0, 0x0c};
  auto m = message("_http._tcp.app.test", {{33, 1, 1, 80, pointer_to_question}});
  std::vector<srv_record> out;
  ASSERT_FALSE(parse_srv_answer(m.data(), m.size(), out));
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].target, "_http._tcp.app.test");
}

TEST(Srv, TheRootTargetAndPortZeroOfferNothing) {
  auto m = message("_http._tcp.app.test", {{33, 0, 0, 80, bytes{0}}, {33, 0, 0, 0, name("a.test")}});
  std::vector<srv_record> out;
  EXPECT_FALSE(parse_srv_answer(m.data(), m.size(), out));
  EXPECT_TRUE(out.empty());
}

TEST(Srv, MalformedMessagesAreRefused) {
  auto good = message("_http._tcp.app.test", {{33, 1, 1, 80, name("a.test")}});
  std::vector<srv_record> out;
  // Every truncation of a good message: refused, never read past its end (ASan watches).
  for (std::size_t n = 0; n < good.size(); ++n) {
    out.clear();
    bytes cut(good.begin(), good.begin() + static_cast<std::ptrdiff_t>(n));
    EXPECT_TRUE(parse_srv_answer(cut.data(), cut.size(), out)) << n;
  }
  // rdata too short for priority, weight and port.
  auto m = message("_http._tcp.app.test", {{99, 0, 0, 0, bytes{1, 2}}});
  m[m.size() - 10 - 2 + 1] = 33;  // the record's type becomes SRV, its 2-byte rdata stays
  EXPECT_TRUE(parse_srv_answer(m.data(), m.size(), out));
  // A target running past its record's data into the next bytes.
  auto t = message("_http._tcp.app.test", {{33, 1, 1, 80, name("a.test")}});
  t[t.size() - 6 - 2 - 2 - 1] -= 3;  // rdlength 3 shorter: the name no longer ends inside it
  EXPECT_TRUE(parse_srv_answer(t.data(), t.size() - 3, out));
  // A compression pointer loop.
  auto loop = message("_http._tcp.app.test", {{33, 1, 1, 80, bytes{0xc0, 0x00}}});
  out.clear();
  auto ec = parse_srv_answer(loop.data(), loop.size(), out);
  EXPECT_TRUE(ec || out.empty());
}

}  // namespace
}  // namespace spillway::upstream
