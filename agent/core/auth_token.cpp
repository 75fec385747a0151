#include "agent/core/auth_token.hpp"

#include <algorithm>
#include <utility>

namespace sidecar::core {

AuthToken::CallAction AuthToken::on_call(TimePoint now) {
  if (!enabled_ || state_ == State::kHaveToken) return CallAction::kSend;
  if (state_ == State::kAuthenticating) return CallAction::kWait;
  // A refused password is not asked again inside its backoff: no tight loop against etcd's bcrypt.
  if (state_ == State::kRefused && now < retry_at_) return CallAction::kFail;
  state_ = State::kAuthenticating;
  return CallAction::kAuthenticate;
}

AuthToken::Outcome AuthToken::on_authenticated(AuthReply reply, std::string detail, TimePoint now) {
  Outcome out;
  switch (reply) {
    case AuthReply::kToken:
    case AuthReply::kAuthDisabled:
      out.calls_may_proceed = true;
      out.announce = authentications_ == 0 || !refusal_.empty();
      out.warn_auth_disabled = reply == AuthReply::kAuthDisabled && !warned_auth_disabled_;
      warned_auth_disabled_ = warned_auth_disabled_ || reply == AuthReply::kAuthDisabled;
      token_ = reply == AuthReply::kToken ? std::move(detail) : std::string();
      refusal_.clear();
      backoff_ = std::chrono::milliseconds(0);
      state_ = State::kHaveToken;
      ++authentications_;
      break;
    case AuthReply::kRefused:
      backoff_ = backoff_.count() == 0 ? kBackoffInitial : std::min(backoff_ * 2, kBackoffMax);
      retry_at_ = now + backoff_;
      out.backoff = backoff_;
      out.new_refusal = detail != refusal_;
      refusal_ = std::move(detail);
      token_.clear();
      state_ = State::kRefused;
      break;
    case AuthReply::kUnavailable:
      // The held calls fail with the transport's reason; their own retries authenticate again (on the next
      // member if the client moved on).
      state_ = State::kNoToken;
      break;
  }
  return out;
}

bool AuthToken::on_token_rejected(const std::string& used) {
  if (state_ != State::kHaveToken || token_ != used) return false;
  token_.clear();
  state_ = State::kNoToken;
  return true;
}

}  // namespace sidecar::core
