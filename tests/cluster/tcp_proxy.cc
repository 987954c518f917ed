#include "tests/cluster/tcp_proxy.h"

#include <atomic>
#include <future>
#include <list>
#include <thread>

#include "net/asio.h"

namespace fencelock::testing {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;

struct TcpProxy::Impl : std::enable_shared_from_this<Impl> {
  struct Link {
    Link(asio::io_context& io, size_t target_index) : client(io), server(io), target(target_index) {}
    tcp::socket client;
    tcp::socket server;
    size_t target;
  };

  asio::io_context io;
  std::vector<std::unique_ptr<tcp::acceptor>> acceptors;
  std::vector<tcp::endpoint> targets;
  std::list<std::shared_ptr<Link>> links;
  bool cut = false;
  std::vector<bool> target_cut;
  std::thread thread;

  bool closed(size_t i) const { return cut || target_cut[i]; }

  void accept(size_t i) {
    acceptors[i]->async_accept([self = shared_from_this(), i](boost::system::error_code ec, tcp::socket socket) {
      if (ec) return;
      if (self->closed(i)) {
        socket.close();
      } else {
        self->links.remove_if([](const std::shared_ptr<Link>& old) {
          return !old->client.is_open() && !old->server.is_open();
        });
        auto link = std::make_shared<Link>(self->io, i);
        link->client = std::move(socket);
        self->links.push_back(link);
        link->server.async_connect(self->targets[i], [self, link, i](boost::system::error_code connect_ec) {
          if (connect_ec || self->closed(i)) {
            close(*link);
            return;
          }
          pump(link, link->client, link->server);
          pump(link, link->server, link->client);
        });
      }
      self->accept(i);
    });
  }

  static void close(Link& link) {
    boost::system::error_code ignored;
    link.client.close(ignored);
    link.server.close(ignored);
  }

  static void pump(std::shared_ptr<Link> link, tcp::socket& from, tcp::socket& to) {
    auto buffer = std::make_shared<std::array<char, 16384>>();
    from.async_read_some(asio::buffer(*buffer), [link, &from, &to, buffer](boost::system::error_code ec, size_t n) {
      if (ec) {
        close(*link);
        return;
      }
      asio::async_write(to, asio::buffer(buffer->data(), n), [link, &from, &to, buffer](boost::system::error_code write_ec, size_t) {
        if (write_ec) {
          close(*link);
          return;
        }
        pump(link, from, to);
      });
    });
  }
};

TcpProxy::TcpProxy(const std::vector<std::string>& targets) : impl_(std::make_shared<Impl>()) {
  for (const auto& target : targets) {
    auto colon = target.rfind(':');
    impl_->targets.emplace_back(asio::ip::make_address(target.substr(0, colon)),
                                static_cast<uint16_t>(std::stoi(target.substr(colon + 1))));
    impl_->target_cut.push_back(false);
    impl_->acceptors.push_back(std::make_unique<tcp::acceptor>(
        impl_->io, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0)));
  }
  for (size_t i = 0; i < targets.size(); ++i) impl_->accept(i);
  impl_->thread = std::thread([impl = impl_] { impl->io.run(); });
}

TcpProxy::~TcpProxy() {
  impl_->io.stop();
  impl_->thread.join();
}

std::vector<std::string> TcpProxy::endpoints() const {
  std::vector<std::string> out;
  for (const auto& acceptor : impl_->acceptors) {
    out.push_back("127.0.0.1:" + std::to_string(acceptor->local_endpoint().port()));
  }
  return out;
}

void TcpProxy::cut() {
  std::promise<void> done;
  asio::post(impl_->io, [this, &done] {
    impl_->cut = true;
    for (auto& link : impl_->links) Impl::close(*link);
    impl_->links.clear();
    done.set_value();
  });
  done.get_future().wait();
}

void TcpProxy::heal() {
  std::promise<void> done;
  asio::post(impl_->io, [this, &done] {
    impl_->cut = false;
    done.set_value();
  });
  done.get_future().wait();
}

void TcpProxy::cut(size_t index) {
  std::promise<void> done;
  asio::post(impl_->io, [this, index, &done] {
    impl_->target_cut.at(index) = true;
    for (auto it = impl_->links.begin(); it != impl_->links.end();) {
      if ((*it)->target == index) {
        Impl::close(**it);
        it = impl_->links.erase(it);
      } else {
        ++it;
      }
    }
    done.set_value();
  });
  done.get_future().wait();
}

void TcpProxy::heal(size_t index) {
  std::promise<void> done;
  asio::post(impl_->io, [this, index, &done] {
    impl_->target_cut.at(index) = false;
    done.set_value();
  });
  done.get_future().wait();
}

}  // namespace fencelock::testing
