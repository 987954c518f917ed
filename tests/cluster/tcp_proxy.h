#pragma once
// TcpProxy: forwards 127.0.0.1 ports to target addresses, and can cut every
// link at once, so a test can isolate a client (or a node) from the cluster,
// or one target's links alone (the fault driver gives every directed peer
// link its own target, so it can cut a link in one direction).
//
// Thread-safety: thread-safe; it runs its own I/O thread.

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace fencelock::testing {

class TcpProxy {
 public:
  // One listening port per target ("host:port").
  explicit TcpProxy(const std::vector<std::string>& targets);
  ~TcpProxy();

  // The proxy's addresses, in the order of the targets.
  std::vector<std::string> endpoints() const;

  // Closes every forwarded connection and refuses new ones (accepted and
  // closed at once) until heal().
  void cut();
  void heal();
  // The same for the links of target `index` only (the order of the
  // constructor's targets). A target is open when neither the whole proxy
  // nor the target is cut.
  void cut(size_t index);
  void heal(size_t index);

 private:
  struct Impl;
  std::shared_ptr<Impl> impl_;
};

}  // namespace fencelock::testing
