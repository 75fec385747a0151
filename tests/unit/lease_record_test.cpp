#include "agent/core/lease_record.hpp"

#include <gtest/gtest.h>

namespace sidecar::core {
namespace {

TEST(LeaseRecord, RoundTripsEveryField) {
  LeaseRecord in{.lease = 0x694da2155b52c919, .pid = 4242, .manifest = "/etc/etcd-sidecar/app.yaml",
                 .endpoints = {"http://10.0.0.1:2379", "http://10.0.0.2:2379"}};
  const std::string text = encode_lease_record(in);
  EXPECT_NE(text.find("\"lease\":\"694da2155b52c919\""), std::string::npos) << text;
  EXPECT_EQ(text.back(), '\n');
  std::string error;
  auto out = decode_lease_record(text, &error);
  ASSERT_TRUE(out) << error;
  EXPECT_EQ(out->lease, in.lease);
  EXPECT_EQ(out->pid, 4242);
  EXPECT_EQ(out->manifest, in.manifest);
  EXPECT_EQ(out->endpoints, in.endpoints);
}

TEST(LeaseRecord, RejectsTruncatedForeignAndZeroLeaseFiles) {
  std::string error;
  EXPECT_FALSE(decode_lease_record("{\"lease_id\":12", &error));
  EXPECT_EQ(error, "not a JSON object");
  EXPECT_FALSE(decode_lease_record("[1,2]", &error));
  EXPECT_FALSE(decode_lease_record("{\"lease\":\"abc\"}", &error));
  EXPECT_EQ(error, "no lease_id");
  EXPECT_FALSE(decode_lease_record("{\"lease_id\":0}", &error));
  EXPECT_FALSE(decode_lease_record("{\"lease_id\":\"12\"}", &error));
  EXPECT_FALSE(decode_lease_record("", &error));
}

TEST(LeaseRecord, FileNameIsStableAndDiffersPerManifestPath) {
  const std::string a = lease_record_file_name("/etc/etcd-sidecar/app.yaml");
  EXPECT_EQ(a, lease_record_file_name("/etc/etcd-sidecar/app.yaml"));
  EXPECT_EQ(a.rfind("app-", 0), 0u) << a;
  EXPECT_EQ(a.size(), std::string("app-").size() + 16 + std::string(".lease").size());
  EXPECT_NE(a, lease_record_file_name("/srv/other/app.yaml"));
  EXPECT_EQ(lease_record_file_name("/x/we ird$name.yml").rfind("we_ird_name-", 0), 0u);
  EXPECT_EQ(lease_record_file_name("/x/").rfind("manifest-", 0), 0u);
}

}  // namespace
}  // namespace sidecar::core
