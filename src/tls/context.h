#pragma once
// TLS contexts (OpenSSL 3 through Asio), built from the config on the control thread at load and
// at every reload, then shared read-only by the workers (an SSL_CTX may serve many threads).
//
//   listener tls ──> server_context: one SSL_CTX per certificate; the first is the default and
//                    the others are chosen by the client's SNI (matched like a browser would,
//                    wildcards included). TLS 1.2 and 1.3 only, modern ciphers, ALPN http/1.1 on
//                    http listeners, session resumption by tickets and by session id.
//   upstream tls ──> client_context: verifies backends against a CA file (or the system's), with
//                    SNI and host name checks per connection.
//
// Every file is read when the context is built: a missing or bad certificate is an error then,
// naming the file and where the config mentions it, and never an outage later.

#include "config/config.h"
#include "tls/ticket_keys.h"

#include <boost/asio/ssl/context.hpp>

#include <functional>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

typedef struct ssl_st SSL;

namespace spillway::tls {

// A problem with a TLS setting, and where the config file wrote it.
class error : public std::runtime_error {
 public:
  error(config::mark where, const std::string& what) : std::runtime_error(what), where_(where) {}
  config::mark where() const { return where_; }

 private:
  config::mark where_;
};

class server_context {
 public:
  // Reads and checks every certificate, chain and key. Throws tls::error naming the file.
  // `alpn_http`: answer ALPN with http/1.1, or (`alpn_h2`) h2 first and http/1.1. `previous` (may be null) is the
  // context this one replaces on a reload: its session-ticket keys (rotated every ticket_rotation_period) carry over,
  // so that clients resume their sessions across reloads.
  static std::shared_ptr<const server_context> make(const config::listener_tls& cfg, bool alpn_http,
                                                    const server_context* previous, bool alpn_h2 = false);

  // The context new connections start with; SNI may switch a connection to another certificate.
  boost::asio::ssl::context& context() const { return entries_.front()->ctx; }
  std::chrono::milliseconds handshake_timeout() const { return handshake_timeout_; }
  std::size_t certificate_count() const { return entries_.size(); }

  ~server_context();

 private:
  struct entry {
    mutable boost::asio::ssl::context ctx{boost::asio::ssl::context::tls_server};
  };
  server_context() = default;
  static int on_client_hello_servername(SSL* ssl, int* alert, void* arg);
  const entry* find(std::string_view server_name) const;

  std::vector<std::unique_ptr<entry>> entries_;
  std::chrono::milliseconds handshake_timeout_{};
  // Shared with the context that replaces this one on a reload (each SSL_CTX holds a reference too).
  std::shared_ptr<ticket_keys> ticket_keys_;
};

class client_context {
 public:
  // Reads the CA file (or the system's trust store when none is given). Throws tls::error. `h2`:
  // offer ALPN h2 (an http2 upstream), else http/1.1.
  static std::shared_ptr<const client_context> make(const config::upstream_tls& cfg, bool h2 = false);

  boost::asio::ssl::context& context() const { return ctx_; }

  // True when `cfg` and the CA file's current content are what this context was built from: a
  // reload then keeps it, and with it the pooled connections made with it.
  bool same_as(const config::upstream_tls& cfg, bool h2 = false) const;

  // Sets SNI and the name the backend's certificate must carry on a new connection to a backend
  // written as `backend_host` in the config: the configured sni, else the host itself.
  void prepare(SSL* ssl, const std::string& backend_host, bool backend_is_ip) const;

 private:
  client_context() = default;
  mutable boost::asio::ssl::context ctx_{boost::asio::ssl::context::tls_client};
  std::string sni_;
  bool verify_ = true;
  bool h2_ = false;
  std::string ca_path_;
  std::string ca_pem_;  // the CA file's content when read
};

using server_context_ptr = std::shared_ptr<const server_context>;
using client_context_ptr = std::shared_ptr<const client_context>;

// Every TLS context a config needs, aligned with its listeners and upstreams (null where a
// listener or upstream has no tls).
struct contexts {
  std::vector<server_context_ptr> listeners;
  std::vector<client_context_ptr> upstreams;
};

// Builds them, reading every certificate, key and CA file. Each problem is appended to `errors`
// (file:line:col of the setting); the result is complete only when none was added. `previous`
// gives the context a listener had before a reload (or null), see server_context::make.
// `previous_client` gives the context an upstream had (or null): it is kept when unchanged.
contexts build(const config::config& cfg, std::vector<config::error>& errors,
               const std::function<const server_context*(const config::listener&)>& previous = {},
               const std::function<client_context_ptr(const config::upstream&)>& previous_client = {});

// The OpenSSL error queue as one line (and cleared), for logs and errors.
std::string last_error();

}  // namespace spillway::tls
