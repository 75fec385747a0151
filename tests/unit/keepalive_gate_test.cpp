// core::KeepaliveGate: one keepalive write at a time on the stream, and one that could not go out is sent
// as soon as the stream can take it rather than a whole TTL/3 later.
#include "agent/core/keepalive_gate.hpp"

#include <gtest/gtest.h>

namespace {

using sidecar::core::KeepaliveGate;

constexpr int64_t kLease = 0x1a2b;
constexpr int64_t kNewLease = 0x2c3d;

KeepaliveGate up_gate() {
  KeepaliveGate gate;
  gate.on_stream_up();
  return gate;
}

TEST(KeepaliveGate, WritesAtOnceWhenTheStreamIsIdle) {
  KeepaliveGate gate = up_gate();
  EXPECT_TRUE(gate.request(kLease));
  EXPECT_TRUE(gate.write_pending());
  EXPECT_FALSE(gate.owed().has_value());
  EXPECT_FALSE(gate.on_write_done().has_value());  // nothing owed: nothing more to write
  EXPECT_FALSE(gate.write_pending());
}

TEST(KeepaliveGate, KeepaliveAskedForDuringAWriteIsSentWhenTheWriteCompletes) {
  KeepaliveGate gate = up_gate();
  ASSERT_TRUE(gate.request(kLease));
  EXPECT_FALSE(gate.request(kLease));  // a write is pending: never two at once
  EXPECT_EQ(gate.owed(), kLease);
  EXPECT_EQ(gate.on_write_done(), kLease);  // retried at once, not at the next TTL/3 tick
  EXPECT_TRUE(gate.write_pending());       // and that one is in flight now
  EXPECT_FALSE(gate.owed().has_value());
  EXPECT_FALSE(gate.on_write_done().has_value());
}

TEST(KeepaliveGate, OnlyTheNewestLeaseOwedIsSent) {
  KeepaliveGate gate = up_gate();
  ASSERT_TRUE(gate.request(kLease));
  EXPECT_FALSE(gate.request(kLease));
  EXPECT_FALSE(gate.request(kNewLease));  // the lease was replaced meanwhile
  EXPECT_EQ(gate.on_write_done(), kNewLease);
  EXPECT_FALSE(gate.on_write_done().has_value());
}

TEST(KeepaliveGate, KeepaliveAskedForWithoutAStreamIsOwedAndNotWrittenIntoNothing) {
  KeepaliveGate gate;  // no stream yet
  EXPECT_FALSE(gate.request(kLease));
  EXPECT_EQ(gate.owed(), kLease);
  EXPECT_FALSE(gate.write_pending());
  // A write completing on a stream that went away meanwhile must not send into it.
  EXPECT_FALSE(gate.on_write_done().has_value());
}

TEST(KeepaliveGate, StreamLostDuringAWriteOwesTheNextAndANewStreamStartsClean) {
  KeepaliveGate gate = up_gate();
  ASSERT_TRUE(gate.request(kLease));
  gate.on_stream_down();
  EXPECT_FALSE(gate.write_pending());
  EXPECT_FALSE(gate.request(kLease));
  EXPECT_EQ(gate.owed(), kLease);
  // The reconnect asks Registration, which sends a keepalive on every new stream: the owed one is not
  // queued behind it, and the stream takes a write at once.
  gate.on_stream_up();
  EXPECT_FALSE(gate.owed().has_value());
  EXPECT_TRUE(gate.request(kLease));
}

}  // namespace
