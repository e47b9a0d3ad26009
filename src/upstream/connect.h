#pragma once
// Opening a connection to a backend: TCP, then TLS when the upstream speaks it. Shared by the
// proxy's sessions and the health checker, so that both meet a backend the same way.

#include "tls/context.h"
#include "tls/stream.h"
#include "upstream/host.h"

#include <boost/asio/awaitable.hpp>

namespace spillway::upstream {

// Connects `s` to `h` and, with `tls`, runs the TLS handshake (SNI and certificate checks as the
// upstream's tls settings say). Returns the first error. `log_tls_failures`: a failed handshake is
// logged, since a wrong CA or name is a configuration problem an operator must see.
boost::asio::awaitable<boost::system::error_code> connect(tls::stream& s, const host& h, const tls::client_context* tls,
                                                          bool log_tls_failures = true);

}  // namespace spillway::upstream
