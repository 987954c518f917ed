#include "net/tls.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <cstdio>
#include <memory>

#include <spdlog/spdlog.h>

#include "net/address.h"

namespace fencelock::net {

namespace asio = boost::asio;
namespace ssl = boost::asio::ssl;

namespace {

// OpenSSL's reason for the last failure, and the queue cleared.
std::string openssl_error() {
  unsigned long code = ERR_get_error();
  ERR_clear_error();
  if (code == 0) return "unknown OpenSSL error";
  char buffer[256];
  ERR_error_string_n(code, buffer, sizeof(buffer));
  return buffer;
}

struct BioDeleter {
  void operator()(BIO* bio) const { BIO_free(bio); }
};
struct X509Deleter {
  void operator()(X509* x) const { X509_free(x); }
};

std::string asn1_time_text(const ASN1_TIME* time) {
  std::unique_ptr<BIO, BioDeleter> bio(BIO_new(BIO_s_mem()));
  if (!bio || ASN1_TIME_print(bio.get(), time) != 1) return "?";
  char* data = nullptr;
  long length = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, static_cast<size_t>(length));
}

std::string subject_text(X509* cert) {
  if (cert == nullptr) return "(no certificate)";
  char buffer[512];
  X509_NAME_oneline(X509_get_subject_name(cert), buffer, sizeof(buffer));
  return buffer;
}

// Checks that `file`'s first certificate is valid now.
Status check_validity(const std::string& file) {
  std::unique_ptr<BIO, BioDeleter> bio(BIO_new_file(file.c_str(), "r"));
  if (!bio) return Status(lockpb::INVALID_ARGUMENT, "cannot read " + file + ": " + openssl_error());
  std::unique_ptr<X509, X509Deleter> cert(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
  if (!cert) {
    return Status(lockpb::INVALID_ARGUMENT,
                  file + " holds no PEM certificate: " + openssl_error());
  }
  if (X509_cmp_current_time(X509_get0_notAfter(cert.get())) < 0) {
    return Status(lockpb::FAILED_PRECONDITION,
                  "certificate " + file + " (" + subject_text(cert.get()) + ") expired on " +
                      asn1_time_text(X509_get0_notAfter(cert.get())));
  }
  if (X509_cmp_current_time(X509_get0_notBefore(cert.get())) > 0) {
    return Status(lockpb::FAILED_PRECONDITION,
                  "certificate " + file + " (" + subject_text(cert.get()) +
                      ") is not valid before " + asn1_time_text(X509_get0_notBefore(cert.get())));
  }
  return Status();
}

void append_general_names(X509* cert, CertificateNames& names) {
  auto* sans = static_cast<GENERAL_NAMES*>(
      X509_get_ext_d2i(cert, NID_subject_alt_name, nullptr, nullptr));
  if (sans == nullptr) return;
  for (int i = 0; i < sk_GENERAL_NAME_num(sans); ++i) {
    const GENERAL_NAME* name = sk_GENERAL_NAME_value(sans, i);
    if (name->type == GEN_DNS || name->type == GEN_URI) {
      const ASN1_IA5STRING* text = name->type == GEN_DNS ? name->d.dNSName
                                                         : name->d.uniformResourceIdentifier;
      std::string value(reinterpret_cast<const char*>(ASN1_STRING_get0_data(text)),
                        static_cast<size_t>(ASN1_STRING_length(text)));
      (name->type == GEN_DNS ? names.dns : names.uris).push_back(std::move(value));
    } else if (name->type == GEN_IPADD) {
      const ASN1_OCTET_STRING* ip = name->d.iPAddress;
      char text[INET6_ADDRSTRLEN] = {};
      int length = ASN1_STRING_length(ip);
      const unsigned char* data = ASN1_STRING_get0_data(ip);
      if (length == 4) {
        inet_ntop(AF_INET, data, text, sizeof(text));
      } else if (length == 16) {
        inet_ntop(AF_INET6, data, text, sizeof(text));
      } else {
        continue;
      }
      names.ips.emplace_back(text);
    }
  }
  GENERAL_NAMES_free(sans);
}

}  // namespace

TlsContext::TlsContext(ssl::context::method method, bool server)
    : context_(method), server_(server) {}

Result<std::shared_ptr<TlsContext>> TlsContext::load(const TlsFiles& files, bool server,
                                                     PeerCertificate peer,
                                                     std::shared_ptr<spdlog::logger> logger) {
  std::shared_ptr<TlsContext> tls(
      new TlsContext(server ? ssl::context::tls_server : ssl::context::tls_client, server));
  ssl::context& context = tls->context_;
  boost::system::error_code ec;
  context.set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 |
                          ssl::context::no_sslv3 | ssl::context::no_tlsv1 |
                          ssl::context::no_tlsv1_1 | ssl::context::single_dh_use,
                      ec);
  // AES-128-GCM first: as safe for this use, and cheaper per byte than
  // OpenSSL's default AES-256 (every lock operation crosses two links).
  SSL_CTX_set_ciphersuites(context.native_handle(),
                           "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:"
                           "TLS_CHACHA20_POLY1305_SHA256");
  if (!files.cert_file.empty() || !files.key_file.empty()) {
    if (files.cert_file.empty() || files.key_file.empty()) {
      return Status(lockpb::INVALID_ARGUMENT, "a TLS certificate needs its key, and a key its certificate");
    }
    Status valid = check_validity(files.cert_file);
    if (!valid.ok()) return valid;
    if (SSL_CTX_use_certificate_chain_file(context.native_handle(), files.cert_file.c_str()) != 1) {
      return Status(lockpb::INVALID_ARGUMENT,
                    "cannot load certificate " + files.cert_file + ": " + openssl_error());
    }
    if (SSL_CTX_use_PrivateKey_file(context.native_handle(), files.key_file.c_str(),
                                    SSL_FILETYPE_PEM) != 1) {
      return Status(lockpb::INVALID_ARGUMENT,
                    "cannot load key " + files.key_file + ": " + openssl_error());
    }
    if (SSL_CTX_check_private_key(context.native_handle()) != 1) {
      return Status(lockpb::INVALID_ARGUMENT, "key " + files.key_file +
                                                  " does not match certificate " +
                                                  files.cert_file + ": " + openssl_error());
    }
  } else if (server) {
    return Status(lockpb::INVALID_ARGUMENT, "a TLS server needs a certificate and key");
  }
  if (files.ca_file.empty()) {
    return Status(lockpb::INVALID_ARGUMENT, "TLS needs a CA file to check the other side");
  }
  if (SSL_CTX_load_verify_locations(context.native_handle(), files.ca_file.c_str(), nullptr) !=
      1) {
    return Status(lockpb::INVALID_ARGUMENT,
                  "cannot load CA file " + files.ca_file + ": " + openssl_error());
  }
  if (server) {
    // The CAs a client may pick its certificate by.
    STACK_OF(X509_NAME)* names = SSL_load_client_CA_file(files.ca_file.c_str());
    if (names != nullptr) SSL_CTX_set_client_CA_list(context.native_handle(), names);
  }
  ssl::verify_mode mode = ssl::verify_peer;
  if (server && peer == PeerCertificate::kRequired) mode |= ssl::verify_fail_if_no_peer_cert;
  if (server && peer == PeerCertificate::kNone) mode = ssl::verify_none;
  context.set_verify_mode(mode);
  context.set_verify_callback([logger](bool preverified, ssl::verify_context& verify) {
    if (preverified) return true;
    X509_STORE_CTX* store = verify.native_handle();
    int error = X509_STORE_CTX_get_error(store);
    X509* cert = X509_STORE_CTX_get_current_cert(store);
    std::string why = X509_verify_cert_error_string(error);
    if (error == X509_V_ERR_CERT_HAS_EXPIRED && cert != nullptr) {
      why += " (expired on " + asn1_time_text(X509_get0_notAfter(cert)) + ")";
    } else if (error == X509_V_ERR_CERT_NOT_YET_VALID && cert != nullptr) {
      why += " (not valid before " + asn1_time_text(X509_get0_notBefore(cert)) + ")";
    }
    if (logger) {
      // Asio's stream reads through a memory BIO: no socket to name here;
      // the handshake's failure, logged by the caller, names the remote.
      logger->warn("TLS: refused the certificate {} (depth {}): {}", subject_text(cert),
                   X509_STORE_CTX_get_error_depth(store), why);
    }
    return false;
  });
  return tls;
}

CertificateNames peer_names(TlsStream& stream) {
  CertificateNames names;
  X509* cert = SSL_get0_peer_certificate(stream.native_handle());
  if (cert == nullptr) return names;
  char buffer[256] = {};
  if (X509_NAME_get_text_by_NID(X509_get_subject_name(cert), NID_commonName, buffer,
                                sizeof(buffer)) > 0) {
    names.common_name = buffer;
  }
  append_general_names(cert, names);
  return names;
}

std::string member_dns_name(uint64_t id) { return "fencelock-node-" + std::to_string(id); }

bool names_member(const CertificateNames& names, uint64_t id, const std::string& peer_address,
                  const std::map<uint64_t, std::string>& members) {
  std::string wanted = member_dns_name(id);
  for (const auto& dns : names.dns) {
    if (dns == wanted) return true;
  }
  std::string host;
  uint16_t port = 0;
  if (!split_host_port(peer_address, host, port)) return false;
  for (const auto& [other, address] : members) {
    std::string other_host;
    uint16_t other_port = 0;
    if (other != id && split_host_port(address, other_host, other_port) && other_host == host) {
      return false;  // shared host: only the id can tell them apart
    }
  }
  for (const auto& ip : names.ips) {
    if (ip == host) return true;
  }
  for (const auto& dns : names.dns) {
    if (dns == host) return true;
  }
  return false;
}

std::string principal_of(const CertificateNames& names) {
  if (!names.common_name.empty()) return names.common_name;
  if (!names.dns.empty()) return names.dns.front();
  if (!names.uris.empty()) return names.uris.front();
  if (!names.ips.empty()) return names.ips.front();
  return "";
}

asio::awaitable<std::unique_ptr<TlsStream>> handshake(Tcp::socket socket, TlsContext& context,
                                                      std::chrono::milliseconds deadline,
                                                      const std::string& verify_host,
                                                      std::string& error) {
  auto executor = socket.get_executor();
  auto stream = std::make_unique<TlsStream>(std::move(socket), context.native());
  if (!context.server() && !verify_host.empty()) {
    boost::system::error_code parse_ec;
    asio::ip::make_address(verify_host, parse_ec);
    // SNI names a host, never an address (RFC 6066 §3).
    if (parse_ec) SSL_set_tlsext_host_name(stream->native_handle(), verify_host.c_str());
  }
  // Boost 1.74 has no per-operation cancellation: the deadline closes the socket.
  asio::steady_timer timer(executor);
  timer.expires_after(deadline);
  // Shared with the timer's handler, which may run after this frame is
  // gone: once `done`, it touches nothing else.
  struct Watch {
    bool done = false;
    bool timed_out = false;
  };
  auto watch = std::make_shared<Watch>();
  TlsStream* raw = stream.get();
  timer.async_wait([raw, watch](boost::system::error_code ec) {
    if (ec || watch->done) return;
    watch->timed_out = true;
    boost::system::error_code ignored;
    raw->lowest_layer().close(ignored);
  });
  boost::system::error_code ec;
  co_await stream->async_handshake(
      context.server() ? ssl::stream_base::server : ssl::stream_base::client,
      asio::redirect_error(asio::use_awaitable, ec));
  watch->done = true;
  timer.cancel();
  if (watch->timed_out) {
    error = "TLS handshake took longer than " + std::to_string(deadline.count()) + " ms";
    co_return nullptr;
  }
  if (ec) {
    error = "TLS handshake failed: " + ec.message();
    co_return nullptr;
  }
  if (!context.server() && !verify_host.empty()) {
    X509* cert = SSL_get0_peer_certificate(stream->native_handle());
    bool ok = cert != nullptr &&
              (X509_check_ip_asc(cert, verify_host.c_str(), 0) == 1 ||
               X509_check_host(cert, verify_host.data(), verify_host.size(), 0, nullptr) == 1);
    if (!ok) {
      error = "the server's certificate (" + subject_text(cert) + ") does not name " + verify_host;
      co_return nullptr;
    }
  }
  co_return stream;
}

}  // namespace fencelock::net
