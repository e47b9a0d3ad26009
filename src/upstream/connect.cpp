#include "upstream/connect.h"

#include "common/completion.h"
#include "common/log.h"
#include "common/reactor_access.h"

namespace spillway::upstream {

namespace asio = boost::asio;

asio::awaitable<boost::system::error_code> connect(tls::stream& s, const host& h, const tls::client_context* tls,
                                                   bool log_tls_failures) {
  if (!h.is_resolved()) {
    // A hostname backend with no answer yet has no address to connect to (it is not available(),
    // but a panicking balancer may still offer it).
    co_return asio::error::host_not_found_try_again;
  }
  auto [ec] = co_await reactor_access::async_connect_nodelay(s.socket(), h.endpoint(), nothrow);
  if (ec) {
    co_return ec;
  }
  if (tls != nullptr) {
    s.start_tls(tls->context());
    tls->prepare(s.native_tls(), h.cfg().addr.host, h.cfg().addr.is_ip);
    ec = co_await s.handshake(asio::ssl::stream_base::client);
    if (ec && log_tls_failures && ec != asio::error::operation_aborted) {
      log::warn("tls handshake with {} failed: {}", h.address(), ec.message());
    }
  }
  co_return ec;
}

}  // namespace spillway::upstream
