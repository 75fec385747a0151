// Owns: the life cycle of the etcd auth token as a pure state machine: when to authenticate, when a call may
// go out, how long a refused password waits before the next attempt, which rejection invalidates the token.
// Thread: pure; the etcd client drives it on its io_context thread and passes the time in.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

namespace sidecar::core {

// How an Authenticate call ended, classified by the client (gRPC status codes stay in agent/etcd).
enum class AuthReply {
  kToken,         // etcd issued a token
  kAuthDisabled,  // etcd has authentication off: calls go out without a token
  kRefused,       // wrong user or password, or the password source could not be read
  kUnavailable,   // nothing about the credentials: etcd unreachable, no leader, deadline
};

class AuthToken {
 public:
  using TimePoint = std::chrono::steady_clock::time_point;
  static constexpr std::chrono::milliseconds kBackoffInitial{1000};
  static constexpr std::chrono::milliseconds kBackoffMax{30000};

  // What to do with a call that needs the token.
  enum class CallAction {
    kSend,          // a token is held (or auth is off): send the call now with token()
    kWait,          // an Authenticate is in flight: hold the call until on_authenticated
    kAuthenticate,  // hold the call and start an Authenticate now
    kFail,          // a refused password is backing off: fail the call at once with refusal()
  };

  // What on_authenticated decided, for the held calls and the log.
  struct Outcome {
    bool calls_may_proceed = false;        // kToken or kAuthDisabled: send the held calls
    bool announce = false;                 // first token, or first after a refusal: an info line (else debug)
    bool warn_auth_disabled = false;       // etcd has auth off: said once per AuthToken
    bool new_refusal = false;              // refused for a reason unlike the last one: an error line
    std::chrono::milliseconds backoff{0};  // kRefused: the wait before the next attempt
  };

  // `enabled`: a user name is configured. Without one every call is sent at once, without a token.
  explicit AuthToken(bool enabled) : enabled_(enabled) {}

  CallAction on_call(TimePoint now);
  // The Authenticate started by kAuthenticate ended. `detail` is the token for kToken, the reason for
  // kRefused (kept as refusal()), ignored otherwise.
  Outcome on_authenticated(AuthReply reply, std::string detail, TimePoint now);
  // etcd rejected `used` on a call. True when it was the current token, which is now dropped (the call
  // may run again and authenticate); false when a newer token had already replaced it.
  bool on_token_rejected(const std::string& used);

  bool enabled() const { return enabled_; }
  bool has_token() const { return state_ == State::kHaveToken; }
  const std::string& token() const { return token_; }   // empty when etcd has auth off
  const std::string& refusal() const { return refusal_; }  // the last refusal's reason; empty after a token
  uint64_t authentications() const { return authentications_; }  // successful Authenticate calls

 private:
  enum class State { kNoToken, kAuthenticating, kHaveToken, kRefused };

  bool enabled_;
  State state_ = State::kNoToken;
  std::string token_;
  std::string refusal_;
  TimePoint retry_at_{};
  std::chrono::milliseconds backoff_{0};
  uint64_t authentications_ = 0;
  bool warned_auth_disabled_ = false;
};

}  // namespace sidecar::core
