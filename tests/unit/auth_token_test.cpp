// core::AuthToken: when the etcd client authenticates, holds, sends or fails a call, and how a refused
// password backs off. Time is passed in, so every step is exact.
#include "agent/core/auth_token.hpp"

#include <gtest/gtest.h>

#include <chrono>

namespace sidecar::core {
namespace {

using namespace std::chrono_literals;
using Action = AuthToken::CallAction;

const AuthToken::TimePoint kStart{};

TEST(AuthToken, WithoutAUserEveryCallIsSentAtOnce) {
  AuthToken auth(false);
  EXPECT_EQ(auth.on_call(kStart), Action::kSend);
  EXPECT_EQ(auth.on_call(kStart + 1h), Action::kSend);
  EXPECT_EQ(auth.token(), "");
}

TEST(AuthToken, TheFirstCallAuthenticatesAndLaterOnesWaitForIt) {
  AuthToken auth(true);
  EXPECT_EQ(auth.on_call(kStart), Action::kAuthenticate);
  EXPECT_EQ(auth.on_call(kStart), Action::kWait);
  const auto outcome = auth.on_authenticated(AuthReply::kToken, "tok-1", kStart);
  EXPECT_TRUE(outcome.calls_may_proceed);
  EXPECT_TRUE(outcome.announce);
  EXPECT_TRUE(auth.has_token());
  EXPECT_EQ(auth.token(), "tok-1");
  EXPECT_EQ(auth.authentications(), 1u);
  EXPECT_EQ(auth.on_call(kStart), Action::kSend);
}

TEST(AuthToken, ARejectedTokenIsDroppedOnceAndTheNextCallAuthenticatesAgain) {
  AuthToken auth(true);
  auth.on_call(kStart);
  auth.on_authenticated(AuthReply::kToken, "tok-1", kStart);
  EXPECT_TRUE(auth.on_token_rejected("tok-1"));
  EXPECT_FALSE(auth.has_token());
  EXPECT_EQ(auth.on_call(kStart), Action::kAuthenticate);
  // A second call that used the same old token, answered while the new Authenticate runs: nothing to drop.
  EXPECT_FALSE(auth.on_token_rejected("tok-1"));
  const auto outcome = auth.on_authenticated(AuthReply::kToken, "tok-2", kStart);
  EXPECT_FALSE(outcome.announce);  // a routine renewal: debug, not info
  EXPECT_EQ(auth.authentications(), 2u);
  // A late rejection of the old token must not drop the new one.
  EXPECT_FALSE(auth.on_token_rejected("tok-1"));
  EXPECT_EQ(auth.token(), "tok-2");
}

TEST(AuthToken, ARefusedPasswordFailsCallsUntilItsBackoffHasPassed) {
  AuthToken auth(true);
  auth.on_call(kStart);
  const auto refused = auth.on_authenticated(AuthReply::kRefused, "wrong password", kStart);
  EXPECT_FALSE(refused.calls_may_proceed);
  EXPECT_TRUE(refused.new_refusal);
  EXPECT_EQ(refused.backoff, 1s);
  EXPECT_EQ(auth.refusal(), "wrong password");
  EXPECT_EQ(auth.on_call(kStart + 999ms), Action::kFail);
  EXPECT_EQ(auth.on_call(kStart + 1s), Action::kAuthenticate);
}

TEST(AuthToken, RefusalsDoubleTheBackoffUpToThirtySecondsAndAreReportedOncePerReason) {
  AuthToken auth(true);
  AuthToken::TimePoint now = kStart;
  std::chrono::milliseconds expected = 1s;
  for (int i = 0; i < 8; ++i) {
    ASSERT_EQ(auth.on_call(now), Action::kAuthenticate) << i;
    const auto outcome = auth.on_authenticated(AuthReply::kRefused, "wrong password", now);
    EXPECT_EQ(outcome.backoff, expected) << i;
    EXPECT_EQ(outcome.new_refusal, i == 0) << i;
    now += outcome.backoff;
    expected = std::min<std::chrono::milliseconds>(expected * 2, 30s);
  }
  ASSERT_EQ(auth.on_call(now), Action::kAuthenticate);
  EXPECT_TRUE(auth.on_authenticated(AuthReply::kRefused, "user not found", now).new_refusal);
}

TEST(AuthToken, SuccessAfterARefusalIsAnnouncedAndResetsTheBackoff) {
  AuthToken auth(true);
  auth.on_call(kStart);
  auth.on_authenticated(AuthReply::kRefused, "wrong password", kStart);
  ASSERT_EQ(auth.on_call(kStart + 1s), Action::kAuthenticate);
  auth.on_authenticated(AuthReply::kRefused, "wrong password", kStart + 1s);  // backoff now 2 s
  ASSERT_EQ(auth.on_call(kStart + 3s), Action::kAuthenticate);
  const auto ok = auth.on_authenticated(AuthReply::kToken, "tok", kStart + 3s);
  EXPECT_TRUE(ok.announce);
  EXPECT_EQ(auth.refusal(), "");
  auth.on_token_rejected("tok");
  ASSERT_EQ(auth.on_call(kStart + 4s), Action::kAuthenticate);
  EXPECT_EQ(auth.on_authenticated(AuthReply::kRefused, "wrong password", kStart + 4s).backoff, 1s);
}

TEST(AuthToken, AnUnreachableEtcdLeavesNoBackoffTheNextCallAuthenticatesAgain) {
  AuthToken auth(true);
  auth.on_call(kStart);
  const auto outcome = auth.on_authenticated(AuthReply::kUnavailable, "", kStart);
  EXPECT_FALSE(outcome.calls_may_proceed);
  EXPECT_EQ(outcome.backoff, 0ms);
  EXPECT_EQ(auth.on_call(kStart), Action::kAuthenticate);
}

TEST(AuthToken, AuthDisabledOnTheServerSendsCallsWithoutATokenAndWarnsOnce) {
  AuthToken auth(true);
  auth.on_call(kStart);
  const auto first = auth.on_authenticated(AuthReply::kAuthDisabled, "ignored", kStart);
  EXPECT_TRUE(first.calls_may_proceed);
  EXPECT_TRUE(first.warn_auth_disabled);
  EXPECT_EQ(auth.token(), "");
  EXPECT_EQ(auth.on_call(kStart), Action::kSend);
  EXPECT_TRUE(auth.on_token_rejected(""));
  ASSERT_EQ(auth.on_call(kStart), Action::kAuthenticate);
  EXPECT_FALSE(auth.on_authenticated(AuthReply::kAuthDisabled, "", kStart).warn_auth_disabled);
}

}  // namespace
}  // namespace sidecar::core
