#include "tests/support/agent_fixture.hpp"

#include <cstdio>
#include <utility>

namespace sidecar::test {

void EtcdAgentFixture::start_etcd(std::vector<std::string> extra_args) {
  etcd_ = EtcdProcess::start(std::move(extra_args));
  ASSERT_NE(etcd_, nullptr) << "etcd did not start";
  client_ = std::make_unique<EtcdSyncClient>(etcd_->endpoint());
}

void EtcdAgentFixture::start_etcd_tls(ServerTls server_tls, ClientTls client_tls) {
  etcd_ = EtcdProcess::start_tls(std::move(server_tls));
  ASSERT_NE(etcd_, nullptr) << "etcd (TLS) did not start";
  client_ = std::make_unique<EtcdSyncClient>(etcd_->endpoint(), client_tls);
}

void EtcdAgentFixture::dump_logs() const {
  if (agent_) dump_agent_log(*agent_);
  dump_etcd_log_tail();
}

void EtcdAgentFixture::dump_agent_log(const AgentProcess& agent, std::string_view label) const {
  const std::string log = agent.output();
  const bool cut = log.size() > log_tail_bytes_;
  std::fprintf(stderr, "---- %.*s log%s (%s) ----\n%s---- end of %.*s log ----\n", static_cast<int>(label.size()),
               label.data(), cut ? " (tail)" : "", agent.dir().c_str(),
               (cut ? log.substr(log.size() - log_tail_bytes_) : log).c_str(), static_cast<int>(label.size()),
               label.data());
}

void EtcdAgentFixture::dump_etcd_log_tail() const {
  if (!etcd_) return;
  std::fprintf(stderr, "---- etcd log tail ----\n%s\n---- end of etcd log ----\n", etcd_->log_tail(2048).c_str());
}

}  // namespace sidecar::test
