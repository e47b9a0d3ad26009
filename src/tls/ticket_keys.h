#pragma once
// Session-ticket keys of a TLS listener, rotated (RFC 5077 section 5.5: keys should be changed
// regularly, or a stolen key decrypts every session it ever protected).
//
//   time ──> key 1 ──(period)──> key 2 ──(period)──> key 3 ...
//   new tickets: always the newest key;  resumption: the newest or one of the `kept` before it,
//   so a ticket stays usable for at least period × kept (longer than OpenSSL's 2 h ticket lifetime
//   with the defaults), and a ticket made with an older key is answered with a new one.
//
// Rotation is lazy: whoever asks after a period has passed makes the next key, so no timer is
// needed. The ring lives as long as any context of its listener: a reload hands it to the new
// context, so clients resume across reloads. Any thread (a mutex, taken once per handshake).

#include <array>
#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>

typedef struct ssl_ctx_st SSL_CTX;

namespace spillway::tls {

// A new key every hour; the two before it still decrypt.
inline constexpr std::chrono::seconds ticket_rotation_period{3600};
inline constexpr std::size_t ticket_keys_kept = 2;

struct ticket_key {
  std::array<unsigned char, 16> name{};  // sent in the ticket, picks the key when it comes back
  std::array<unsigned char, 32> hmac{};  // HMAC-SHA256 secret
  std::array<unsigned char, 32> aes{};   // AES-256-CBC key
  std::chrono::steady_clock::time_point created;
};

class ticket_keys {
 public:
  using clock = std::chrono::steady_clock;
  // Fills a new key with random bytes; injected by tests. Returns false when randomness failed.
  using random_fn = std::function<bool(unsigned char*, std::size_t)>;

  explicit ticket_keys(std::chrono::nanoseconds period = ticket_rotation_period, std::size_t kept = ticket_keys_kept,
                       random_fn random = {});
  ~ticket_keys();  // cleanses the keys
  ticket_keys(const ticket_keys&) = delete;
  ticket_keys& operator=(const ticket_keys&) = delete;

  // The key new tickets are made with at `now` (a new one when the period has passed since the
  // newest was made). nullopt only when no key could be made (no randomness).
  std::optional<ticket_key> for_encryption(clock::time_point now);

  struct found {
    ticket_key key;
    bool renew = false;  // an older key: the client should get a new ticket
  };
  // The key named `name` if it is still kept at `now`; nullopt means a full handshake.
  std::optional<found> for_decryption(const unsigned char* name, clock::time_point now);

  // Keys held now, newest first (for tests).
  std::size_t size() const;

  // Makes `ctx` issue and accept tickets with `keys` (OpenSSL's ticket key callback); `ctx` holds
  // a reference to them until it is freed.
  static void install(SSL_CTX* ctx, const std::shared_ptr<ticket_keys>& keys);

 private:
  bool rotate_if_due(clock::time_point now);

  std::chrono::nanoseconds period_;
  std::size_t kept_;
  random_fn random_;
  mutable std::mutex mutex_;
  std::deque<ticket_key> keys_;  // newest first
};

}  // namespace spillway::tls
