#include "proxy/relay.h"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

#include <array>

namespace spillway::proxy {

namespace asio = boost::asio;

asio::awaitable<bool> relay(tls::stream& from, tls::stream& to, std::chrono::steady_clock::time_point& idle_deadline,
                            std::chrono::steady_clock::duration idle, std::uint64_t* bytes) {
  constexpr auto nothrow = asio::as_tuple(asio::use_awaitable);
  std::array<char, 16384> buf;
  while (true) {
    auto [ec, n] = co_await from.async_read_some(asio::buffer(buf), nothrow);
    if (ec) {
      if (tls::is_eof(ec)) {
        co_await to.shutdown_send();  // pass the FIN on; the other way stays open
        co_return true;
      }
      // A reset or an error: nothing more will flow either way.
      from.close();
      to.close();
      co_return false;
    }
    idle_deadline = std::chrono::steady_clock::now() + idle;
    auto [wec, wn] = co_await asio::async_write(to, asio::buffer(buf.data(), n), nothrow);
    if (wec) {
      from.close();
      to.close();
      co_return false;
    }
    if (bytes != nullptr) {
      *bytes += n;
    }
  }
}

}  // namespace spillway::proxy
