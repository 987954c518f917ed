// Process-level tests of TLS, client identity and ACLs (docs/security.md):
// real fencelockd processes with certificates made by scripts/tls-certs.sh
// (the openssl command), clients over TLS, and raw TLS connections to the
// peer port that claim to be members.

#include <catch2/catch.hpp>
#include <fstream>

#include "client/session.h"
#include "net/frame.h"
#include "net/tls.h"
#include "proto/peer.pb.h"
#include "tests/cluster/http_get.h"
#include "tests/cluster/process_cluster.h"
#include "tests/run_command.h"

#ifndef FENCELOCK_SOURCE_DIR
#error "FENCELOCK_SOURCE_DIR must name the source tree (scripts/tls-certs.sh)"
#endif
#ifndef FENCELOCKD_PATH
#error "FENCELOCKD_PATH must name the fencelockd binary"
#endif

namespace fencelock::testing {
namespace {

using namespace std::chrono_literals;
namespace asio = boost::asio;
namespace ssl = boost::asio::ssl;

// A directory of certificates: a CA, nodes 1..3, clients admin and alice,
// an ACL, and a second CA's "mallory" client and node 2 in other/.
struct Certificates {
  std::filesystem::path dir;

  Certificates() {
    dir = std::filesystem::temp_directory_path() /
          ("fencelock-tls-" + std::to_string(getpid()) + "-" + std::to_string(rand()));
    std::string script = std::string(FENCELOCK_SOURCE_DIR) + "/scripts/tls-certs.sh ";
    auto make = [&](const std::string& args, const std::string& env = "") {
      auto run = run_command(env + script + args);
      INFO(run.output);
      REQUIRE(run.exit_code == 0);
    };
    make(dir.string() + " node 1 2 3");
    make(dir.string() + " client admin alice");
    make((dir / "other").string() + " node 2");
    make((dir / "other").string() + " client mallory");
    make((dir / "expired").string() + " client admin", "FENCELOCK_TLS_DAYS=0 ");
    // The expired CA's own lifetime is ten years; its client's is zero days.
    auto run = run_command("cp " + (dir / "ca.crt").string() + " " + (dir / "both-ca.crt").string() +
                           " && cat " + (dir / "expired" / "ca.crt").string() + " >> " +
                           (dir / "both-ca.crt").string());
    REQUIRE(run.exit_code == 0);
    std::ofstream(dir / "acl") << "# principal prefix rights\n"
                                  "admin  *      lock,read,admin\n"
                                  "alice  jobs/  lock,read\n";
    std::ofstream(dir / "tokens") << "0123456789abcdef0123456789abcdef admin\n"
                                     "fedcba9876543210fedcba9876543210 alice\n";
  }
  ~Certificates() {
    std::error_code ignored;
    std::filesystem::remove_all(dir, ignored);
  }
  std::string file(const std::string& name) const { return (dir / name).string(); }
};

ProcessClusterOptions tls_cluster(const Certificates& certs, const std::string& client_auth,
                                  const std::string& ca = "ca.crt") {
  ProcessClusterOptions options;
  std::string dir = certs.dir.string();
  options.node_flags = [dir, client_auth, ca](uint64_t id) {
    std::vector<std::string> flags = {
        "--tls-cert", dir + "/n" + std::to_string(id) + ".crt",
        "--tls-key", dir + "/n" + std::to_string(id) + ".key",
        "--tls-ca", dir + "/" + ca,
        "--client-auth", client_auth,
        "--acl", dir + "/acl"};
    if (client_auth == "token") {
      flags.push_back("--tokens-file");
      flags.push_back(dir + "/tokens");
    }
    return flags;
  };
  options.client_ca = certs.file("ca.crt");
  if (client_auth == "cert") {
    options.client_cert = certs.file("admin.crt");
    options.client_key = certs.file("admin.key");
  } else {
    options.client_token = "0123456789abcdef0123456789abcdef";
  }
  return options;
}

// A client of `cluster` with another identity.
std::shared_ptr<client::Client> client_as(ProcessCluster& cluster, const std::string& cert,
                                          const std::string& key, const std::string& token = "") {
  client::ClientOptions options = cluster.client_options();
  options.tls_cert_file = cert;
  options.tls_key_file = key;
  options.token = token;
  options.request_timeout = 3s;
  auto client = client::Client::connect(options);
  REQUIRE(client.ok());
  return client.value();
}

// Opens a TLS connection to `peer_address` presenting `cert`/`key`, sends
// a Hello from `from` to `to`, and returns "accepted", "refused: <reason>"
// or "error: <what>" (the handshake or the read failed).
// When accepted, sends `then` (if any) on the same connection.
std::string peer_hello(const std::string& peer_address, const std::string& ca,
                       const std::string& cert, const std::string& key, uint64_t from,
                       uint64_t to, const peerpb::PeerEnvelope* then = nullptr) {
  asio::io_context io;
  ssl::context context(ssl::context::tls_client);
  context.load_verify_file(ca);
  context.use_certificate_chain_file(cert);
  context.use_private_key_file(key, ssl::context::pem);
  context.set_verify_mode(ssl::verify_none);  // the node's side is what is tested
  ssl::stream<asio::ip::tcp::socket> stream(io, context);
  std::string host = peer_address.substr(0, peer_address.rfind(':'));
  std::string port = peer_address.substr(peer_address.rfind(':') + 1);
  boost::system::error_code ec;
  asio::ip::tcp::resolver resolver(io);
  asio::connect(stream.next_layer(), resolver.resolve(host, port), ec);
  if (ec) return "error: connect: " + ec.message();
  stream.next_layer().set_option(asio::socket_base::receive_buffer_size(1 << 16));
  stream.handshake(ssl::stream_base::client, ec);
  if (ec) return "error: handshake: " + ec.message();
  peerpb::PeerEnvelope hello;
  hello.mutable_hello()->set_cluster_id("fencelock");
  hello.mutable_hello()->set_from(from);
  hello.mutable_hello()->set_to(to);
  std::string frame;
  net::append_frame(hello, frame);
  asio::write(stream, asio::buffer(frame), ec);
  if (ec) return "error: write: " + ec.message();
  net::FrameDecoder decoder(1 << 20);
  while (true) {
    auto region = decoder.prepare(4096);
    size_t n = stream.read_some(asio::buffer(region.data(), region.size()), ec);
    if (ec) return "error: read: " + ec.message();
    decoder.commit(n);
    peerpb::PeerEnvelope answer;
    if (decoder.next_message(answer) == net::DecodeStatus::kFrame) {
      if (!answer.has_hello_ack()) return "error: not a HelloAck";
      if (!answer.hello_ack().accepted()) return "refused: " + answer.hello_ack().reason();
      if (then != nullptr) {
        std::string next;
        net::append_frame(*then, next);
        asio::write(stream, asio::buffer(next), ec);
        if (ec) return "error: write: " + ec.message();
      }
      return "accepted";
      return "refused: " + answer.hello_ack().reason();
    }
  }
}

TEST_CASE("a TLS cluster with certificate identities grants each principal only what the ACL says",
          "[cluster][security]") {
  Certificates certs;
  ProcessCluster cluster(tls_cluster(certs, "cert"));
  cluster.start_all();
  cluster.wait_for_leader();

  auto admin = cluster.client();
  auto alice = client_as(cluster, certs.file("alice.crt"), certs.file("alice.key"));

  // alice may lock and read under jobs/, and nothing else.
  auto alice_session = client::Session::open(alice, {});
  REQUIRE(alice_session.ok());
  auto held = alice_session.value()->acquire("jobs/build");
  REQUIRE(held.ok());
  CHECK(alice->describe("jobs/build").ok());
  auto elsewhere = alice_session.value()->acquire("payroll/run");
  REQUIRE_FALSE(elsewhere.ok());
  CHECK(elsewhere.code() == lockpb::PERMISSION_DENIED);
  CHECK(alice->describe("payroll/run").code() == lockpb::PERMISSION_DENIED);
  CHECK(alice->list("").code() == lockpb::PERMISSION_DENIED);
  CHECK(alice->list("jobs/").ok());

  // Without the admin right: no force-release, no sessions, no membership,
  // no snapshot.
  Status forced = alice->force_release("jobs/build");
  CHECK(forced.code() == lockpb::PERMISSION_DENIED);
  CHECK(forced.message().find("alice") != std::string::npos);
  CHECK(alice->list_sessions().code() == lockpb::PERMISSION_DENIED);
  CHECK(alice->member_add(9, "127.0.0.1:1", "127.0.0.1:2").code() == lockpb::PERMISSION_DENIED);
  CHECK(alice->member_remove(2).code() == lockpb::PERMISSION_DENIED);
  auto saved = alice->save_snapshot((certs.dir / "alice.flbackup").string());
  CHECK(saved.code() == lockpb::PERMISSION_DENIED);
  CHECK(alice->describe("jobs/build").value().holders_size() == 1);  // still held

  // With it, all of them; a session shows the principal that owns it.
  auto sessions = admin->list_sessions();
  REQUIRE(sessions.ok());
  REQUIRE(sessions.value().sessions_size() >= 1);
  bool alices = false;
  for (const auto& s : sessions.value().sessions()) alices |= s.principal() == "alice";
  CHECK(alices);
  // alice's session is hers alone: admin cannot release through it.
  lockpb::Sequencer sequencer = held.value()->sequencer();
  auto admin_session = client::Session::open(admin, {});
  REQUIRE(admin_session.ok());
  clientpb::Request release;
  release.mutable_release()->mutable_key()->set_session_id(sequencer.session_id());
  release.mutable_release()->mutable_key()->set_sequence(1000);
  release.mutable_release()->set_lock(sequencer.lock());
  release.mutable_release()->set_token(sequencer.token());
  auto stolen = admin->call(std::move(release));
  CHECK(stolen.code() == lockpb::PERMISSION_DENIED);
  CHECK(alice->describe("jobs/build").value().holders_size() == 1);
  CHECK(admin->member_list().ok());
  CHECK(admin->force_release("jobs/build").ok());
  auto after = admin->describe("jobs/build");
  CHECK((after.code() == lockpb::NOT_FOUND || (after.ok() && after.value().holders_size() == 0)));
  CHECK(admin->save_snapshot((certs.dir / "admin.flbackup").string()).ok());

  // A client without a certificate, or with one from another CA, is
  // refused at the handshake and reaches nothing.
  auto anonymous = client_as(cluster, "", "");
  CHECK_FALSE(anonymous->describe("jobs/build").ok());
  auto mallory = client_as(cluster, certs.file("other/mallory.crt"), certs.file("other/mallory.key"));
  CHECK_FALSE(mallory->describe("jobs/build").ok());
  // And a plaintext client gets nowhere either.
  client::ClientOptions plain = cluster.client_options();
  plain.tls_ca_file.clear();
  plain.tls_cert_file.clear();
  plain.tls_key_file.clear();
  plain.request_timeout = 2s;
  CHECK_FALSE(client::Client::connect(plain).value()->describe("jobs/build").ok());
}

TEST_CASE("the HTTP port speaks HTTPS with TLS and serves /metrics and /v1/ only to an admin "
          "principal; health stays open",
          "[security][http]") {
  Certificates certs;
  const std::string admin_token = "0123456789abcdef0123456789abcdef";
  const std::string alice_token = "fedcba9876543210fedcba9876543210";
  SECTION("certificate identities") {
    ProcessClusterOptions options = tls_cluster(certs, "cert");
    options.http = true;
    ProcessCluster cluster(options);
    cluster.start_all();
    const uint64_t leader = cluster.wait_for_leader();
    REQUIRE(leader != 0);
    const std::string address = cluster.http_endpoint(leader);
    const std::string ca = certs.file("ca.crt");
    CHECK(https_get(address, "/healthz", ca).status == 200);
    CHECK(https_get(address, "/readyz", ca).status == 200);
    CHECK(https_get(address, "/", ca).status == 200);
    HttpResult anonymous = https_get(address, "/metrics", ca);
    CHECK(anonymous.status == 401);
    CHECK(https_get(address, "/v1/locks", ca, certs.file("alice.crt"), certs.file("alice.key"))
              .status == 403);
    HttpResult admin = https_get(address, "/metrics", ca, certs.file("admin.crt"),
                                 certs.file("admin.key"));
    CHECK(admin.status == 200);
    CHECK(admin.body.find("fencelock_raft_term") != std::string::npos);
    // A certificate of another CA fails the handshake; plain HTTP gets no answer.
    CHECK(https_get(address, "/healthz", ca, certs.file("other/mallory.crt"),
                    certs.file("other/mallory.key"))
              .status == 0);
    CHECK(http_get(address, "/healthz", "", 2s).status != 200);
  }
  SECTION("bearer tokens") {
    ProcessClusterOptions options = tls_cluster(certs, "token");
    options.http = true;
    ProcessCluster cluster(options);
    cluster.start_all();
    const uint64_t leader = cluster.wait_for_leader();
    REQUIRE(leader != 0);
    const std::string address = cluster.http_endpoint(leader);
    const std::string ca = certs.file("ca.crt");
    CHECK(https_get(address, "/metrics", ca).status == 401);
    CHECK(https_get(address, "/metrics", ca, "", "", "not-a-token-at-all-000").status == 401);
    CHECK(https_get(address, "/v1/status", ca, "", "", alice_token).status == 403);
    CHECK(https_get(address, "/v1/status", ca, "", "", admin_token).status == 200);
    CHECK(https_get(address, "/healthz", ca).status == 200);
  }
}

TEST_CASE("peers refuse a certificate of another CA, or one naming another member, at the handshake",
          "[cluster][security]") {
  Certificates certs;
  ProcessCluster cluster(tls_cluster(certs, "cert"));
  cluster.start_all();
  cluster.wait_for_leader();
  std::string node1 = cluster.peer_endpoint(1);
  std::string ca = certs.file("ca.crt");

  // The genuine node 2 certificate, claiming node 2: accepted (the test's
  // own connection works).
  CHECK(peer_hello(node1, ca, certs.file("n2.crt"), certs.file("n2.key"), 2, 1) == "accepted");
  // The same certificate claiming node 3: refused, naming the certificate.
  std::string as_three = peer_hello(node1, ca, certs.file("n2.crt"), certs.file("n2.key"), 3, 1);
  CHECK(as_three.rfind("refused: ", 0) == 0);
  CHECK(as_three.find("certificate does not name node 3") != std::string::npos);
  // A certificate for node 2 signed by another CA: the handshake fails.
  std::string other = peer_hello(node1, ca, certs.file("other/n2.crt"), certs.file("other/n2.key"), 2, 1);
  CHECK(other.rfind("error: ", 0) == 0);
  // A client certificate (no member name) is refused too.
  std::string client_cert = peer_hello(node1, ca, certs.file("admin.crt"), certs.file("admin.key"), 2, 1);
  CHECK(client_cert.rfind("refused: ", 0) == 0);
  CHECK(eventually([&] {
    return cluster.log_tail(1, 200).find("unable to get local issuer certificate") !=
           std::string::npos;
  }));
  // The cluster serves on.
  auto session = client::Session::open(cluster.client(), {});
  REQUIRE(session.ok());
  CHECK(session.value()->acquire("jobs/after").ok());
}

TEST_CASE(
    "over mutual TLS, a member's own certificate sending a heartbeat of term+1 committing 2^62 to "
    "every node: every node stays up and serving",
    "[cluster][security]") {
  // The crafted heartbeat of the security issue: with TLS only a holder of
  // a member's key can send it; the node must survive that too.
  Certificates certs;
  ProcessCluster cluster(tls_cluster(certs, "cert"));
  cluster.start_all();
  cluster.wait_for_leader();
  for (uint64_t target : cluster.ids()) {
    uint64_t claimed = target == 1 ? 2 : 1;
    auto status = cluster.status_of(target);
    REQUIRE(status.has_value());
    uint64_t term = 0;
    for (const auto& member : status->members()) {
      if (member.id() == status->self_id()) term = member.term();
    }
    peerpb::PeerEnvelope envelope;
    raftpb::Message* m = envelope.mutable_raft();
    m->set_type(raftpb::MSG_HEARTBEAT);
    m->set_from(claimed);
    m->set_to(target);
    m->set_term(term + 1);
    m->set_commit(uint64_t{1} << 62);
    std::string crt = certs.file("n" + std::to_string(claimed) + ".crt");
    std::string key = certs.file("n" + std::to_string(claimed) + ".key");
    REQUIRE(peer_hello(cluster.peer_endpoint(target), certs.file("ca.crt"), crt, key, claimed,
                       target, &envelope) == "accepted");
    CHECK(eventually([&] {
      auto now = cluster.status_of(target);
      return now && now->dropped_peer_messages() >= 1;
    }));
    CHECK(cluster.running(target));
  }
  cluster.wait_for_leader();
  auto session = client::Session::open(cluster.client(), {});
  REQUIRE(session.ok());
  auto held = session.value()->acquire("jobs/after-heartbeat");
  REQUIRE(held.ok());
  CHECK(held.value()->release().ok());
  for (uint64_t id : cluster.ids()) CHECK(cluster.running(id));
}

TEST_CASE("a member's certificate is rotated by restarting it with a new one", "[cluster][security]") {
  Certificates certs;
  ProcessClusterOptions options = tls_cluster(certs, "cert");
  // Node 1's new key and certificate, from the same CA, in rotated/.
  std::filesystem::path rotated = certs.dir / "rotated";
  std::filesystem::create_directories(rotated);
  std::filesystem::copy_file(certs.dir / "ca.crt", rotated / "ca.crt");
  std::filesystem::copy_file(certs.dir / "ca.key", rotated / "ca.key");
  auto made = run_command(std::string(FENCELOCK_SOURCE_DIR) + "/scripts/tls-certs.sh " +
                          rotated.string() + " node 1");
  REQUIRE(made.exit_code == 0);
  auto use_rotated = std::make_shared<bool>(false);
  auto original = options.node_flags;
  options.node_flags = [original, use_rotated, rotated](uint64_t id) {
    std::vector<std::string> flags = original(id);
    if (id == 1 && *use_rotated) {
      flags[1] = (rotated / "n1.crt").string();
      flags[3] = (rotated / "n1.key").string();
    }
    return flags;
  };
  ProcessCluster cluster(options);
  cluster.start_all();
  cluster.wait_for_leader();
  REQUIRE(cluster.terminate(1) == 0);
  *use_rotated = true;
  cluster.start(1);
  // Node 1 rejoins with its new certificate: the others accept it, and it
  // accepts them.
  CHECK(eventually([&] {
    auto status = cluster.status_of(1);
    if (!status) return false;
    int reachable = 0;
    for (const auto& member : status->members()) reachable += member.reachable() ? 1 : 0;
    return reachable == 3 && status->members_size() == 3;
  }, 15s));
  // Everyone else down to one: the cluster needs node 1's new links.
  cluster.kill(3);
  cluster.wait_for_leader();
  auto session = client::Session::open(cluster.client(), {});
  REQUIRE(session.ok());
  CHECK(session.value()->acquire("jobs/rotated").ok());
}

TEST_CASE("an expired certificate is refused with a clear log line", "[cluster][security]") {
  Certificates certs;
  // The nodes trust both CAs, so only the expiry can refuse the client.
  ProcessCluster cluster(tls_cluster(certs, "cert", "both-ca.crt"));
  cluster.start_all();
  cluster.wait_for_leader();
  std::this_thread::sleep_for(1100ms);  // a zero-day certificate expires within the second
  // The client library will not present it...
  client::ClientOptions options = cluster.client_options();
  options.tls_cert_file = certs.file("expired/admin.crt");
  options.tls_key_file = certs.file("expired/admin.key");
  auto refused = client::Client::connect(options);
  REQUIRE_FALSE(refused.ok());
  CHECK(refused.status().message().find("expired on") != std::string::npos);
  // ...and a client that does is refused by the node.
  std::string answer = peer_hello(cluster.client_endpoint(1), certs.file("ca.crt"),
                                  certs.file("expired/admin.crt"), certs.file("expired/admin.key"),
                                  1, 1);
  CHECK(answer.rfind("error: ", 0) == 0);
  bool logged = eventually([&] {
    for (uint64_t id : cluster.ids()) {
      std::string log = cluster.log_tail(id, 200);
      if (log.find("refused the certificate /CN=admin") != std::string::npos &&
          log.find("certificate has expired (expired on") != std::string::npos) {
        return true;
      }
    }
    return false;
  });
  CHECK(logged);

  // A node given an expired certificate of its own does not start: exit 2
  // and one line saying so.
  auto run = run_command(std::string(FENCELOCKD_PATH) + " --id 1 --peers 1=127.0.0.1:1 " +
                         "--client-addr 127.0.0.1:2 --data-dir " + (certs.dir / "d").string() +
                         " --tls-cert " + certs.file("expired/admin.crt") + " --tls-key " +
                         certs.file("expired/admin.key") + " --tls-ca " + certs.file("ca.crt"));
  CHECK(run.exit_code == 2);
  CHECK(run.output.find("expired on") != std::string::npos);
}

TEST_CASE("bearer tokens name principals; an unknown token or none is UNAUTHENTICATED",
          "[cluster][security]") {
  Certificates certs;
  ProcessCluster cluster(tls_cluster(certs, "token"));
  cluster.start_all();
  cluster.wait_for_leader();
  auto admin = cluster.client();
  CHECK(admin->list_sessions().ok());

  auto alice = client_as(cluster, "", "", "fedcba9876543210fedcba9876543210");
  CHECK(alice->list("jobs/").ok());
  CHECK(alice->list_sessions().code() == lockpb::PERMISSION_DENIED);

  auto stranger = client_as(cluster, "", "", "not-a-token-but-long-enough");
  Status refused = stranger->describe("jobs/a").status();
  CHECK(refused.code() == lockpb::UNAUTHENTICATED);
  auto nobody = client_as(cluster, "", "");
  CHECK(nobody->describe("jobs/a").code() == lockpb::UNAUTHENTICATED);

  // The command line's exit code for a refused identity is 77.
  auto run = run_command(std::string(FENCELOCK_CLI_PATH) + " --timeout 3s --endpoints " +
                         cluster.client_endpoints().front() + " --cacert " + certs.file("ca.crt") +
                         " sessions");
  CHECK(run.exit_code == 77);
}

}  // namespace
}  // namespace fencelock::testing
