#pragma once
// SimClient: a simulated application using fencelock through the client
// library's own rules — client::CallPolicy for finding the leader and
// retrying (a retry resends the same request: same id, same session and
// sequence), client::SessionState for safe-until, jeopardy, keepalives and
// sequence numbers — over the simulator's network, on its own drifting
// clock. Only the threads and sockets of libfencelock are replaced.
//
// Its workload, drawn from its seed: open a session (TTL 0.5-3 s), then in
// turn acquire one of a few locks (exclusive or shared, or a counting
// semaphore; try or wait with a deadline, sometimes with a lock-delay,
// sometimes cancelling the wait),
// hold it a while, read it back (describe), release it; now and then close
// the session, abandon it (stop keepalives, as a crashed process would),
// force-release a lock as an operator, and start again. Everything it was
// told goes to the NodeChecker on real time.
//
// Each client connects as a principal. In some seeds it also intrudes now
// and then: it sends a keepalive, acquire, release, cancel or close naming
// a session another principal opened (as a client guessing session ids
// would), which must never succeed. In some seeds its acquires carry
// values, so that the state machine's bounds on value bytes are reached.
// Both draw from a generator of their own, so the workload's draws are the
// same with or without them.
//
// Thread-safety: not thread-safe; the simulator's thread.

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "client/call_policy.h"
#include "client/session_state.h"
#include "proto/client.pb.h"
#include "tests/sim/node/node_checker.h"
#include "tests/sim/node/sim_clock.h"

namespace fencelock::sim {

// Locks named with this prefix are counting semaphores of
// kSemaphoreHolders SHARED holders.
inline constexpr std::string_view kSemaphorePrefix = "sem/";
inline constexpr uint32_t kSemaphoreHolders = 2;

// The simulation as a client sees it.
class ClientNet {
 public:
  virtual ~ClientNet() = default;
  virtual Micros now() const = 0;
  // Runs `fn` at real time `at` (>= now()).
  virtual void at(Micros at, std::function<void()> fn) = 0;
  // Starts connecting client `client` to `endpoint`; the simulation answers
  // with SimClient::connected() or connect_failed().
  virtual void connect(uint64_t client, const std::string& endpoint) = 0;
  virtual void send(uint64_t connection, const clientpb::Request& request) = 0;
  virtual void close(uint64_t connection) = 0;
  virtual NodeChecker& checker() = 0;
  virtual void trace(const std::string& line) = 0;
};

struct SimClientOptions {
  uint64_t id = 0;
  SimClock clock;
  uint64_t seed = 0;
  std::vector<std::string> endpoints;
  std::vector<std::string> locks;
  std::chrono::milliseconds request_timeout{1500};
  // A probe: opens a session and acquires every lock once, waiting as long
  // as it takes (the liveness check after healing), then closes.
  bool probe = false;
  // The principal its connections authenticate as ("": authentication off).
  std::string principal;
  // The generator of intrusions and values, apart from the workload's.
  uint64_t side_seed = 0;
  // Sends a request on another principal's session every 20-300 ms.
  bool intrude = false;
  // Acquires carry values of 0 to this many bytes.
  size_t max_value_bytes = 0;
};

class SimClient {
 public:
  using Done = std::function<void(const clientpb::Response&)>;

  SimClient(ClientNet& net, SimClientOptions options);
  SimClient(const SimClient&) = delete;
  SimClient& operator=(const SimClient&) = delete;

  void start();
  // Takes no new work: lets go of what it holds and closes its session.
  void wind_down();
  // A probe that has acquired every lock and closed.
  bool probe_done() const { return probe_done_; }
  uint64_t id() const { return options_.id; }
  const std::string& principal() const { return options_.principal; }
  uint64_t intrusions() const { return intrusions_; }
  uint64_t operations() const { return operations_; }

  // Sends `request` (its id is set here) through CallPolicy as every call
  // of the workload goes: NOT_LEADER and UNAVAILABLE are retried, a lost
  // connection resends it, and `done` gets the final answer or TIMEOUT
  // after the request timeout plus `extra`. For an operator's client,
  // which runs no workload (its start() is never called).
  void request(clientpb::Request request, std::chrono::milliseconds extra, Done done) {
    call(std::move(request), extra, std::move(done));
  }

  // From the network.
  void connected(uint64_t connection, const std::string& endpoint);
  void connect_failed();
  void connection_lost(uint64_t connection);
  void response(uint64_t connection, const clientpb::Response& response);

 private:
  struct Call {
    client::PendingCall call;
    Done done;
  };
  struct Held {
    lockpb::Sequencer sequencer;
  };

  SteadyTime steady() const { return options_.clock.steady(net_.now()); }
  double real(SteadyTime t) const { return options_.clock.real_at(t); }
  // Runs `fn` after `delay` on this client's clock.
  void after(std::chrono::microseconds delay, std::function<void()> fn);
  void trace(const std::string& line);

  // Requests through CallPolicy.
  void call(clientpb::Request request, std::chrono::milliseconds extra, Done done);
  void send_pending();
  void ensure_connection();
  void decide(uint64_t id, const client::CallDecision& decision);

  // The session.
  void open_session();
  void keepalive();
  void jeopardy_check();
  void session_over(const char* why);
  void sync_checker();

  // The workload.
  void next();
  void acquire();
  void hold(lockpb::Sequencer sequencer);
  void describe(const std::string& lock, std::function<void()> then);
  void release(const lockpb::Sequencer& sequencer);
  void close_session();
  void abandon_session();
  void force_release();
  void probe_next();
  // Sends one request naming a live session of another principal.
  void intrude();

  uint64_t pick(uint64_t n) { return n == 0 ? 0 : rng_() % n; }
  bool chance(uint64_t percent) { return pick(100) < percent; }

  ClientNet& net_;
  SimClientOptions options_;
  std::mt19937_64 rng_;
  client::CallPolicy policy_;
  uint64_t next_request_id_ = 1;
  std::map<uint64_t, Call> calls_;  // by request id
  uint64_t connection_ = 0;
  std::string endpoint_;
  bool connecting_ = false;

  std::optional<client::SessionState> session_;
  uint64_t session_life_ = 0;  // counts sessions, so old timers fall silent
  std::map<uint64_t, Held> held_;  // by token
  bool winding_down_ = false;
  bool busy_ = false;  // an operation of the workload is under way
  size_t probe_next_lock_ = 0;
  bool probe_done_ = false;
  uint64_t operations_ = 0;
  std::mt19937_64 side_rng_;
  uint64_t intrusions_ = 0;
};

}  // namespace fencelock::sim
