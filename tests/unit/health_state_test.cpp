// The health state file's format: what an agent keeps for its successor (last TTL reports, maintenance),
// read back exactly, and anything else refused with a reason rather than half-read.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "agent/core/health_state.hpp"

namespace sidecar::core {
namespace {

using ::testing::HasSubstr;

HealthState sample() {
  HealthState s;
  s.services["orders/o-1"].ttl = TtlRecord{TtlReport::kWarn, "disk 91% \"full\"\n", 1764690000123};
  s.services["orders/o-1"].maintenance = MaintenanceRecord{"swap disk", 1764690000000};
  s.services["billing/b-1"].ttl = TtlRecord{TtlReport::kPass, "", 1764690001000};
  s.services["stock/s-1"].maintenance = MaintenanceRecord{"", 5};
  return s;
}

TEST(HealthState, RoundTripsEveryRecord) {
  const HealthState s = sample();
  std::string error;
  const auto back = decode_health_state(encode_health_state(s), &error);
  ASSERT_TRUE(back) << error;
  EXPECT_TRUE(*back == s);
  EXPECT_EQ(back->services.at("orders/o-1").ttl->note, "disk 91% \"full\"\n");
  EXPECT_EQ(back->services.at("orders/o-1").ttl->report, TtlReport::kWarn);
}

TEST(HealthState, EmptyRecordsAreNotWritten) {
  HealthState s;
  s.services["a/1"];  // neither a report nor maintenance
  std::string error;
  const auto back = decode_health_state(encode_health_state(s), &error);
  ASSERT_TRUE(back) << error;
  EXPECT_TRUE(back->services.empty());
}

TEST(HealthState, ACorruptOrForeignFileIsRefusedWithAReason) {
  std::string error;
  const std::string good = encode_health_state(sample());
  EXPECT_FALSE(decode_health_state(good.substr(0, good.size() / 2), &error)) << "truncated";
  EXPECT_THAT(error, HasSubstr("not a JSON object"));
  EXPECT_FALSE(decode_health_state(R"({"version":2,"services":{}})", &error));
  EXPECT_THAT(error, HasSubstr("unknown version"));
  EXPECT_FALSE(decode_health_state(R"({"version":1,"services":{"a/1":{"ttl":{"report":"maybe","at_unix_ms":1}}}})", &error));
  EXPECT_THAT(error, HasSubstr("a/1"));
  EXPECT_THAT(error, HasSubstr("pass, warn or fail"));
  EXPECT_FALSE(decode_health_state(R"({"version":1,"services":{"a/1":{"maintenance":{"reason":"x"}}}})", &error));
  EXPECT_THAT(error, HasSubstr("since_unix_ms"));
  EXPECT_FALSE(decode_health_state("", &error));
}

TEST(HealthState, FileNameSitsNextToTheLeaseRecord) {
  const std::string name = health_state_file_name("/etc/etcd-sidecar/orders.yaml");
  EXPECT_THAT(name, ::testing::StartsWith("orders-"));
  EXPECT_THAT(name, ::testing::EndsWith(".health"));
  EXPECT_NE(name, health_state_file_name("/etc/etcd-sidecar/other/orders.yaml"));
}

TEST(HealthState, AgeIsNeverNegative) {
  EXPECT_EQ(record_age_ms(1000, 4000), 3000);
  EXPECT_EQ(record_age_ms(5000, 4000), 0) << "a clock stepped back counts as a fresh report";
}

}  // namespace
}  // namespace sidecar::core
