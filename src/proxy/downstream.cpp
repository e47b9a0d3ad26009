#include "proxy/downstream.h"

#include "common/log.h"

namespace spillway::proxy {

namespace asio = boost::asio;
using asio::ip::tcp;

downstream_connection::downstream_connection(worker& w, std::string listen, tcp::socket socket,
                                             tls::server_context_ptr tls, downstream_session* owner)
    : worker_(w),
      listen_(std::move(listen)),
      tls_(std::move(tls)),
      stream_(std::move(socket)),
      owner_(owner),
      watch_(w.io()) {
  boost::system::error_code ec;
  auto ep = stream_.socket().remote_endpoint(ec);
  if (!ec) {
    client_address_ = ep.address();
    client_ip_ = client_address_.to_string();
  }
  stream_.socket().set_option(tcp::no_delay(true), ec);
  if (tls_) {
    stream_.start_tls(tls_->context());
  }
  registration_ = worker_.attach(owner_);
  if (const auto* lv = worker_.view()->snap->find_listener(listen_); lv != nullptr) {
    listener_traffic_ = lv->traffic;
    listener_traffic_->local(worker_.index()).connections_total.add();
  }
}

downstream_connection::~downstream_connection() {
  if (listener_traffic_) {
    listener_traffic_->local(worker_.index()).connections_closed.add();
  }
  worker_.detach(registration_);
}

asio::awaitable<bool> downstream_connection::handshake() {
  if (!tls_) {
    co_return true;
  }
  // The owner closes a connection whose handshake is not done in time (its phase says idle).
  set_deadline(clock::now() + tls_->handshake_timeout());
  auto ec = co_await stream_.handshake(asio::ssl::stream_base::server);
  if (!ec) {
    set_deadline(clock::time_point::max());  // the owner sets the next one
    co_return true;
  }
  log::debug("tls handshake from {} on {} failed: {}", client_ip_, listen_,
             watch_.expired() ? "timeout" : ec.message());
  if (auto* t = traffic()) {
    t->tls_handshake_failures.add();
  }
  co_return false;
}

void downstream_connection::close() {
  boost::system::error_code ec;
  stream_.socket().shutdown(tcp::socket::shutdown_both, ec);
  stream_.close();
}

void downstream_connection::cancel() {
  boost::system::error_code ec;
  stream_.socket().cancel(ec);
}

}  // namespace spillway::proxy
