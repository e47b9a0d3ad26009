#include "tls/context.h"

#include "common/log.h"

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include <fmt/format.h>

#include <fstream>
#include <sstream>

namespace spillway::tls {

namespace {

// TLS 1.2 suites with forward secrecy and AEAD only (TLS 1.3 suites are all modern already).
constexpr const char* tls12_ciphers =
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:"
    "ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305";

void set_protocols(SSL_CTX* c) {
  SSL_CTX_set_min_proto_version(c, TLS1_2_VERSION);
  SSL_CTX_set_max_proto_version(c, TLS1_3_VERSION);
  SSL_CTX_set_options(c, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION);
  SSL_CTX_set_mode(c, SSL_MODE_RELEASE_BUFFERS);
  SSL_CTX_set_cipher_list(c, tls12_ciphers);
}

// Protocol lists in ALPN wire format, in Spillway's order of preference.
constexpr unsigned char alpn_http11[] = {8, 'h', 't', 't', 'p', '/', '1', '.', '1'};
constexpr unsigned char alpn_h2_http11[] = {2, 'h', '2', 8, 'h', 't', 't', 'p', '/', '1', '.', '1'};

// `arg`: the listener's list (alpn_http11 or alpn_h2_http11).
int select_alpn(SSL*, const unsigned char** out, unsigned char* outlen, const unsigned char* in, unsigned inlen,
                void* arg) {
  const bool h2 = arg == alpn_h2_http11;
  const unsigned char* ours = h2 ? alpn_h2_http11 : alpn_http11;
  const unsigned ours_len = h2 ? sizeof alpn_h2_http11 : sizeof alpn_http11;
  unsigned char* chosen = nullptr;
  if (SSL_select_next_proto(&chosen, outlen, ours, ours_len, in, inlen) != OPENSSL_NPN_NEGOTIATED) {
    // The client offers only protocols Spillway does not speak: go on without ALPN, as if it had
    // offered none; HTTP/1.1 is what it gets.
    return SSL_TLSEXT_ERR_NOACK;
  }
  *out = chosen;
  return SSL_TLSEXT_ERR_OK;
}

}  // namespace

std::string last_error() {
  std::string out;
  while (unsigned long e = ERR_get_error()) {
    char buf[256];
    ERR_error_string_n(e, buf, sizeof buf);
    // "error:0A00018E:SSL routines::ca md too weak" -> keep the reason, the code is noise to users.
    std::string_view s(buf);
    if (auto p = s.rfind(':'); p != std::string_view::npos && p + 1 < s.size()) {
      s = s.substr(p + 1);
    }
    if (!out.empty()) {
      out += "; ";
    }
    out += s;
  }
  return out.empty() ? "unknown TLS error" : out;
}

server_context::~server_context() = default;

std::shared_ptr<const server_context> server_context::make(const config::listener_tls& cfg, bool alpn_http,
                                                           const server_context* previous, bool alpn_h2) {
  ERR_clear_error();
  std::shared_ptr<server_context> sc(new server_context());
  sc->handshake_timeout_ = cfg.handshake_timeout;
  for (const auto& cert : cfg.certificates) {
    auto e = std::make_unique<entry>();
    SSL_CTX* c = e->ctx.native_handle();
    set_protocols(c);
    if (SSL_CTX_use_certificate_chain_file(c, cert.cert.c_str()) != 1) {
      throw error(cert.cert_at, fmt::format("certificate {}: {}", cert.cert, last_error()));
    }
    if (SSL_CTX_use_PrivateKey_file(c, cert.key.c_str(), SSL_FILETYPE_PEM) != 1) {
      throw error(cert.key_at, fmt::format("key {}: {}", cert.key, last_error()));
    }
    if (SSL_CTX_check_private_key(c) != 1) {
      throw error(cert.key_at, fmt::format("key {} does not belong to certificate {}", cert.key, cert.cert));
    }
    X509* leaf = SSL_CTX_get0_certificate(c);
    if (X509_cmp_current_time(X509_get0_notAfter(leaf)) < 0) {
      log::warn("certificate {} has expired; clients will refuse it", cert.cert);
    }
    SSL_CTX_set_session_cache_mode(c, SSL_SESS_CACHE_SERVER);
    static constexpr unsigned char sid_ctx[] = "spillway";
    SSL_CTX_set_session_id_context(c, sid_ctx, sizeof sid_ctx - 1);
    if (alpn_http) {
      SSL_CTX_set_alpn_select_cb(c, select_alpn, const_cast<unsigned char*>(alpn_h2 ? alpn_h2_http11 : alpn_http11));
    }
    sc->entries_.push_back(std::move(e));
  }
  SSL_CTX* first = sc->entries_.front()->ctx.native_handle();
  if (sc->entries_.size() > 1) {
    SSL_CTX_set_tlsext_servername_callback(first, on_client_hello_servername);
    SSL_CTX_set_tlsext_servername_arg(first, sc.get());
  }
  // Tickets are made and opened with the listener's rotating keys (see ticket_keys.h); every
  // context of the listener gets the ring, whichever one SNI picked. Carrying the ring over a
  // reload keeps clients' tickets valid.
  sc->ticket_keys_ =
      previous != nullptr && previous->ticket_keys_ ? previous->ticket_keys_ : std::make_shared<ticket_keys>();
  for (const auto& e : sc->entries_) {
    ticket_keys::install(e->ctx.native_handle(), sc->ticket_keys_);
  }
  return sc;
}

const server_context::entry* server_context::find(std::string_view server_name) const {
  for (const auto& e : entries_) {
    X509* leaf = SSL_CTX_get0_certificate(e->ctx.native_handle());
    if (X509_check_host(leaf, server_name.data(), server_name.size(), X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS, nullptr) ==
        1) {
      return e.get();
    }
  }
  return nullptr;
}

int server_context::on_client_hello_servername(SSL* ssl, int*, void* arg) {
  const auto* self = static_cast<const server_context*>(arg);
  const char* name = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
  if (name == nullptr) {
    return SSL_TLSEXT_ERR_OK;  // no SNI: the first certificate
  }
  const entry* e = self->find(name);
  if (e != nullptr && e != self->entries_.front().get()) {
    SSL_set_SSL_CTX(ssl, e->ctx.native_handle());
  }
  // No certificate names it: the first one answers, as a default server does.
  return SSL_TLSEXT_ERR_OK;
}

namespace {
std::string file_content(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}
}  // namespace

bool client_context::same_as(const config::upstream_tls& cfg, bool h2) const {
  return h2 == h2_ && cfg.sni == sni_ && cfg.verify == verify_ && cfg.ca == ca_path_ &&
         (cfg.ca.empty() || file_content(cfg.ca) == ca_pem_);
}

std::shared_ptr<const client_context> client_context::make(const config::upstream_tls& cfg, bool h2) {
  ERR_clear_error();
  std::shared_ptr<client_context> cc(new client_context());
  cc->ca_path_ = cfg.ca;
  if (!cfg.ca.empty()) {
    cc->ca_pem_ = file_content(cfg.ca);
  }
  SSL_CTX* c = cc->ctx_.native_handle();
  set_protocols(c);
  cc->sni_ = cfg.sni;
  cc->verify_ = cfg.verify;
  if (cfg.ca.empty()) {
    if (SSL_CTX_set_default_verify_paths(c) != 1) {
      throw error(cfg.ca_at, "cannot load the system's CA certificates: " + last_error());
    }
  } else if (SSL_CTX_load_verify_locations(c, cfg.ca.c_str(), nullptr) != 1) {
    throw error(cfg.ca_at, fmt::format("ca {}: {}", cfg.ca, last_error()));
  }
  SSL_CTX_set_verify(c, cfg.verify ? SSL_VERIFY_PEER : SSL_VERIFY_NONE, nullptr);
  cc->h2_ = h2;
  if (h2) {
    static constexpr unsigned char alpn_h2[] = {2, 'h', '2'};
    SSL_CTX_set_alpn_protos(c, alpn_h2, sizeof alpn_h2);
  }
  return cc;
}

void client_context::prepare(SSL* ssl, const std::string& backend_host, bool backend_is_ip) const {
  const std::string& name = sni_.empty() ? backend_host : sni_;
  const bool by_name = !sni_.empty() || !backend_is_ip;
  if (by_name) {
    SSL_set_tlsext_host_name(ssl, name.c_str());  // RFC 6066: never an IP literal
  }
  if (!verify_) {
    return;
  }
  if (by_name) {
    SSL_set1_host(ssl, name.c_str());
  } else {
    X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), backend_host.c_str());
  }
}

contexts build(const config::config& cfg, std::vector<config::error>& errors,
               const std::function<const server_context*(const config::listener&)>& previous,
               const std::function<client_context_ptr(const config::upstream&)>& previous_client) {
  contexts out;
  auto fail = [&](const error& e, const std::string& owner) {
    errors.push_back(config::error{cfg.path, e.where().line, e.where().col, owner + ": " + e.what()});
  };
  for (const auto& l : cfg.listeners) {
    server_context_ptr sc;
    if (l.tls) {
      try {
        sc = server_context::make(*l.tls, l.proto == config::protocol::http, previous ? previous(l) : nullptr,
                                  l.proto == config::protocol::http && l.http2);
      } catch (const error& e) {
        fail(e, fmt::format("listener \"{}\" tls", l.name));
      }
    }
    out.listeners.push_back(std::move(sc));
  }
  for (const auto& u : cfg.upstreams) {
    client_context_ptr cc;
    if (u.tls) {
      const bool h2 = u.protocol == config::upstream_protocol::http2;
      if (auto old = previous_client ? previous_client(u) : nullptr; old && old->same_as(*u.tls, h2)) {
        out.upstreams.push_back(std::move(old));
        continue;
      }
      try {
        cc = client_context::make(*u.tls, h2);
      } catch (const error& e) {
        fail(e, fmt::format("upstream \"{}\" tls", u.name));
      }
    }
    out.upstreams.push_back(std::move(cc));
  }
  return out;
}

}  // namespace spillway::tls
