// Unit tests of what names a member in a peer's certificate (net/tls.h)
// and of a client's principal from its certificate.

#include "net/tls.h"

#include <catch2/catch.hpp>

namespace fencelock::net {
namespace {

TEST_CASE("a certificate names a member by DNS fencelock-node-ID, or by its unshared host",
          "[net][tls]") {
  std::map<uint64_t, std::string> shared_host = {
      {1, "127.0.0.1:7101"}, {2, "127.0.0.1:7102"}, {3, "127.0.0.1:7103"}};
  CertificateNames node2;
  node2.dns = {"fencelock-node-2", "localhost"};
  node2.ips = {"127.0.0.1"};
  CHECK(names_member(node2, 2, "127.0.0.1:7102", shared_host));
  // On a shared host the IP names nobody: node 2's certificate is not node 3's.
  CHECK_FALSE(names_member(node2, 3, "127.0.0.1:7103", shared_host));

  std::map<uint64_t, std::string> own_hosts = {
      {1, "10.0.0.1:7100"}, {2, "10.0.0.2:7100"}, {3, "node3.example:7100"}};
  CertificateNames by_ip;
  by_ip.ips = {"10.0.0.2"};
  CHECK(names_member(by_ip, 2, "10.0.0.2:7100", own_hosts));
  CHECK_FALSE(names_member(by_ip, 1, "10.0.0.1:7100", own_hosts));
  CertificateNames by_dns;
  by_dns.dns = {"node3.example"};
  CHECK(names_member(by_dns, 3, "node3.example:7100", own_hosts));
  CHECK_FALSE(names_member(by_dns, 2, "10.0.0.2:7100", own_hosts));
  CHECK_FALSE(names_member(CertificateNames{}, 2, "10.0.0.2:7100", own_hosts));
  // A common name alone never names a member.
  CertificateNames by_cn;
  by_cn.common_name = "fencelock-node-2";
  CHECK_FALSE(names_member(by_cn, 2, "10.0.0.2:7100", own_hosts));
}

TEST_CASE("a client's principal is its common name, else its first subjectAltName",
          "[net][tls]") {
  CertificateNames names;
  CHECK(principal_of(names).empty());
  names.ips = {"10.1.1.1"};
  CHECK(principal_of(names) == "10.1.1.1");
  names.uris = {"spiffe://example/alice"};
  CHECK(principal_of(names) == "spiffe://example/alice");
  names.dns = {"alice.example"};
  CHECK(principal_of(names) == "alice.example");
  names.common_name = "alice";
  CHECK(principal_of(names) == "alice");
}

TEST_CASE("loading TLS files reports the file and the reason", "[net][tls]") {
  auto missing = TlsContext::load({"/nonexistent/n1.crt", "/nonexistent/n1.key", "/nonexistent/ca.crt"},
                                  true, PeerCertificate::kRequired, nullptr);
  REQUIRE_FALSE(missing.ok());
  CHECK(missing.status().message().find("/nonexistent/n1.crt") != std::string::npos);
  auto half = TlsContext::load({"/x.crt", "", "/ca.crt"}, true, PeerCertificate::kRequired, nullptr);
  CHECK(half.code() == lockpb::INVALID_ARGUMENT);
  auto no_ca = TlsContext::load({"", "", ""}, false, PeerCertificate::kRequired, nullptr);
  CHECK(no_ca.code() == lockpb::INVALID_ARGUMENT);
}

}  // namespace
}  // namespace fencelock::net
