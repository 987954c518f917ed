#pragma once
// TLS for both ports, on Asio's SSL stream over OpenSSL 3 (docs/security.md).
//
// A node has one certificate and key, and one CA bundle it trusts. The
// same pair serves clients and peers: peers always use mutual TLS (each
// side presents its certificate and checks the other's against the CA),
// and a peer's certificate must name the member it claims to be
// (names_member). Clients check the node's certificate against their CA
// and the address they dialed; a node asks clients for a certificate, and
// requires one when client identity comes from certificates.
//
// A CA file may hold several certificates: during a CA rotation it holds
// the old CA and the new, and nodes are restarted one at a time.
//
// Thread-safety: a TlsContext is shared read-only by the connections of
// one io_context thread; functions here are free of shared state.

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <boost/asio/ssl.hpp>

#include "common/status.h"
#include "net/asio.h"

namespace spdlog {
class logger;
}

namespace fencelock::net {

using Tcp = boost::asio::ip::tcp;
using TlsStream = boost::asio::ssl::stream<Tcp::socket>;

// The files of a node's (or client's) TLS identity. All empty: no TLS. A
// client may give a CA alone (server authentication only).
struct TlsFiles {
  std::string cert_file;
  std::string key_file;
  std::string ca_file;
};

// What a context asks of the other side's certificate.
enum class PeerCertificate {
  kNone,      // client context without a CA: no TLS at all (not used)
  kOptional,  // a server asking clients for one, not requiring it
  kRequired,  // peers; clients when --client-auth cert
};

// A loaded context: certificates read and checked once, at start-up.
class TlsContext {
 public:
  // Loads `files` for the server side (accepting) or client side
  // (dialing). INVALID_ARGUMENT naming the file and OpenSSL's reason when a
  // file is missing, unreadable or does not match; FAILED_PRECONDITION when
  // the certificate has expired or is not yet valid. Every certificate
  // the other side presents is checked against ca_file; a failure is
  // logged to `logger` with its subject and reason (an expired
  // certificate says so).
  static Result<std::shared_ptr<TlsContext>> load(const TlsFiles& files, bool server,
                                                  PeerCertificate peer,
                                                  std::shared_ptr<spdlog::logger> logger);

  boost::asio::ssl::context& native() { return context_; }
  bool server() const { return server_; }

 private:
  TlsContext(boost::asio::ssl::context::method method, bool server);
  boost::asio::ssl::context context_;
  bool server_;
};

// The names in a certificate that identify its holder.
struct CertificateNames {
  std::string common_name;
  std::vector<std::string> dns;  // subjectAltName DNS entries
  std::vector<std::string> ips;  // subjectAltName IP entries, as text
  std::vector<std::string> uris;
};

// The verified certificate the other side of `stream` presented; empty
// names when it presented none.
CertificateNames peer_names(TlsStream& stream);

// The DNS name by which a certificate names member `id`: "fencelock-node-<id>".
std::string member_dns_name(uint64_t id);

// Whether `names` name member `id` whose peer address is `peer_address`
// ("host:port"): a DNS name member_dns_name(id), or the address's host (an
// IP or DNS entry) when no other member in `members` (id -> peer address)
// shares that host — on one machine the host alone cannot tell members
// apart.
bool names_member(const CertificateNames& names, uint64_t id, const std::string& peer_address,
                  const std::map<uint64_t, std::string>& members);

// A client's principal from its certificate: the subject's common name, or
// the first subjectAltName (DNS, then URI, then IP) when it has none.
std::string principal_of(const CertificateNames& names);

// Runs the TLS handshake on `socket` as the side `context` is for, giving
// up after `deadline`. A client context checks the server's certificate
// against `verify_host` (the host it dialed) unless that is empty. Sets
// `error` (and returns null) on failure.
boost::asio::awaitable<std::unique_ptr<TlsStream>> handshake(Tcp::socket socket,
                                                             TlsContext& context,
                                                             std::chrono::milliseconds deadline,
                                                             const std::string& verify_host,
                                                             std::string& error);

}  // namespace fencelock::net
