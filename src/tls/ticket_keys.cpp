#include "tls/ticket_keys.h"

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>

#include <algorithm>

namespace spillway::tls {

namespace {

// The SSL_CTX's reference to its ring, dropped when OpenSSL frees the context (which may be after
// Spillway let go of it, while a connection still uses it).
void free_ring(void*, void* ptr, CRYPTO_EX_DATA*, int, long, void*) {
  delete static_cast<std::shared_ptr<ticket_keys>*>(ptr);
}

int ex_index() {
  static const int index = SSL_CTX_get_ex_new_index(0, nullptr, nullptr, nullptr, free_ring);
  return index;
}

// OpenSSL 3's ticket key callback: enc = 1 makes a ticket (return 1), enc = 0 opens one (return 1,
// 2 to ask for a new ticket, 0 for "unknown key: full handshake", -1 for an error).
int on_ticket(SSL* ssl, unsigned char* name, unsigned char* iv, EVP_CIPHER_CTX* cipher, EVP_MAC_CTX* mac, int enc) {
  // The context the connection started with: SNI may switch certificates, but tickets belong to
  // the listener, and every context of a listener points at the same ring.
  auto* ring = static_cast<std::shared_ptr<ticket_keys>*>(SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl), ex_index()));
  if (ring == nullptr || !*ring) {
    return -1;
  }
  ticket_keys* keys = ring->get();
  const auto now = ticket_keys::clock::now();
  const ticket_key* key = nullptr;
  std::optional<ticket_key> enc_key;
  std::optional<ticket_keys::found> dec_key;
  if (enc == 1) {
    enc_key = keys->for_encryption(now);
    if (!enc_key || RAND_bytes(iv, EVP_CIPHER_get_iv_length(EVP_aes_256_cbc())) != 1) {
      return -1;
    }
    key = &*enc_key;
    std::copy(key->name.begin(), key->name.end(), name);
  } else {
    dec_key = keys->for_decryption(name, now);
    if (!dec_key) {
      return 0;
    }
    key = &dec_key->key;
  }
  OSSL_PARAM params[] = {
      OSSL_PARAM_construct_octet_string(OSSL_MAC_PARAM_KEY, const_cast<unsigned char*>(key->hmac.data()),
                                        key->hmac.size()),
      OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, const_cast<char*>("SHA256"), 0),
      OSSL_PARAM_construct_end(),
  };
  if (EVP_MAC_CTX_set_params(mac, params) != 1) {
    return -1;
  }
  const int ok = enc == 1 ? EVP_EncryptInit_ex(cipher, EVP_aes_256_cbc(), nullptr, key->aes.data(), iv)
                          : EVP_DecryptInit_ex(cipher, EVP_aes_256_cbc(), nullptr, key->aes.data(), iv);
  if (ok != 1) {
    return -1;
  }
  if (enc_key) {
    OPENSSL_cleanse(&*enc_key, sizeof *enc_key);
  }
  const bool renew = dec_key && dec_key->renew;
  if (dec_key) {
    OPENSSL_cleanse(&dec_key->key, sizeof dec_key->key);
  }
  return enc == 1 ? 1 : (renew ? 2 : 1);
}

}  // namespace

ticket_keys::ticket_keys(std::chrono::nanoseconds period, std::size_t kept, random_fn random)
    : period_(period), kept_(kept), random_(std::move(random)) {
  if (!random_) {
    random_ = [](unsigned char* p, std::size_t n) { return RAND_bytes(p, static_cast<int>(n)) == 1; };
  }
}

ticket_keys::~ticket_keys() {
  for (auto& k : keys_) {
    OPENSSL_cleanse(&k, sizeof k);
  }
}

bool ticket_keys::rotate_if_due(clock::time_point now) {
  if (!keys_.empty() && now - keys_.front().created < period_) {
    return true;
  }
  ticket_key k;
  if (!random_(k.name.data(), k.name.size()) || !random_(k.hmac.data(), k.hmac.size()) ||
      !random_(k.aes.data(), k.aes.size())) {
    OPENSSL_cleanse(&k, sizeof k);
    return !keys_.empty();  // keep using the last key rather than fail every handshake
  }
  k.created = now;
  keys_.push_front(k);
  OPENSSL_cleanse(&k, sizeof k);
  while (keys_.size() > kept_ + 1) {
    OPENSSL_cleanse(&keys_.back(), sizeof keys_.back());
    keys_.pop_back();
  }
  return true;
}

std::optional<ticket_key> ticket_keys::for_encryption(clock::time_point now) {
  std::lock_guard lock(mutex_);
  if (!rotate_if_due(now)) {
    return std::nullopt;
  }
  return keys_.front();
}

std::optional<ticket_keys::found> ticket_keys::for_decryption(const unsigned char* name, clock::time_point now) {
  std::lock_guard lock(mutex_);
  rotate_if_due(now);
  for (std::size_t i = 0; i < keys_.size(); ++i) {
    const auto& k = keys_[i];
    // A key decrypts for (kept + 1) periods from its making, however few rotations happened: it
    // made tickets for about one period, and a ticket lives (OpenSSL's default) two hours.
    if (now - k.created >= period_ * static_cast<long>(kept_ + 1)) {
      break;
    }
    if (CRYPTO_memcmp(k.name.data(), name, k.name.size()) == 0) {
      return found{k, i > 0};
    }
  }
  return std::nullopt;
}

std::size_t ticket_keys::size() const {
  std::lock_guard lock(mutex_);
  return keys_.size();
}

void ticket_keys::install(SSL_CTX* ctx, const std::shared_ptr<ticket_keys>& keys) {
  const int index = ex_index();
  delete static_cast<std::shared_ptr<ticket_keys>*>(SSL_CTX_get_ex_data(ctx, index));
  SSL_CTX_set_ex_data(ctx, index, new std::shared_ptr<ticket_keys>(keys));
  SSL_CTX_set_tlsext_ticket_key_evp_cb(ctx, on_ticket);
}

}  // namespace spillway::tls
