// Durations and ${VAR} expansion: the two value grammars every manifest field goes through.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdlib>
#include <map>
#include <string>

#include "agent/core/manifest.hpp"
#include "tests/unit/manifest_test_support.hpp"

namespace sidecar::core {
namespace {

using std::chrono::milliseconds;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

using manifest_testing::fixed_env;

TEST(ParseDuration, AcceptsMillisecondsSecondsMinutesAndHours) {
  EXPECT_EQ(parse_duration("10s"), milliseconds(10000));
  EXPECT_EQ(parse_duration("250ms"), milliseconds(250));
  EXPECT_EQ(parse_duration("1m"), milliseconds(60000));
  EXPECT_EQ(parse_duration("1h"), milliseconds(3600000));
  EXPECT_EQ(parse_duration("0ms"), milliseconds(0));
  EXPECT_EQ(parse_duration("0s"), milliseconds(0));
}

TEST(ParseDuration, AcceptsFractionsThatAreWholeMilliseconds) {
  EXPECT_EQ(parse_duration("1.5s"), milliseconds(1500));
  EXPECT_EQ(parse_duration("0.25m"), milliseconds(15000));
  EXPECT_EQ(parse_duration("0.001s"), milliseconds(1));
  EXPECT_EQ(parse_duration("2.000s"), milliseconds(2000));
  // Would have to be truncated to 1000ms: refused rather than silently changed.
  EXPECT_EQ(parse_duration("1.0005s"), std::nullopt);
  EXPECT_EQ(parse_duration("0.5ms"), std::nullopt);
}

TEST(ParseDuration, RejectsMissingNumberMissingUnitAndUnknownUnit) {
  for (const char* text : {"", "10", "s", "ms", "1x", "10 s", " 1s", "1s ", "1S", "1sec", "1m30s", "1d"}) {
    EXPECT_EQ(parse_duration(text), std::nullopt) << "'" << text << "'";
  }
}

TEST(ParseDuration, RejectsSignsAndMalformedFractions) {
  for (const char* text : {"-1s", "+1s", "1.s", ".5s", "1..5s", "1.5.0s", "0x10s", "1e3ms"}) {
    EXPECT_EQ(parse_duration(text), std::nullopt) << "'" << text << "'";
  }
}

TEST(ParseDuration, RejectsNumbersTooLongToRepresent) {
  EXPECT_EQ(parse_duration("999999999999h"), milliseconds(999999999999LL * 3600000));
  EXPECT_EQ(parse_duration("9999999999999h"), std::nullopt);
  EXPECT_EQ(parse_duration("1.0000000001s"), std::nullopt);
}

TEST(ExpandEnv, SubstitutesSetVariables) {
  const Expansion x = expand_env("${HOST}-${PORT}", fixed_env({{"HOST", "web1"}, {"PORT", "8080"}}));
  EXPECT_EQ(x.error, std::nullopt);
  EXPECT_EQ(x.value, "web1-8080");
  EXPECT_THAT(x.unset, IsEmpty());
}

TEST(ExpandEnv, UsesDefaultWhenVariableIsUnsetOrEmpty) {
  const EnvLookup env = fixed_env({{"EMPTY", ""}, {"SET", "yes"}});
  EXPECT_EQ(expand_env("${UNSET:-127.0.0.1}", env).value, "127.0.0.1");
  EXPECT_EQ(expand_env("${EMPTY:-fallback}", env).value, "fallback");
  EXPECT_EQ(expand_env("${SET:-fallback}", env).value, "yes");
  EXPECT_EQ(expand_env("${UNSET:-}", env).value, "");
  EXPECT_EQ(expand_env("${UNSET:-a:b-c}", env).value, "a:b-c");
}

TEST(ExpandEnv, ExpandsNestedDefaults) {
  const EnvLookup env = fixed_env({{"B", "bee"}});
  EXPECT_EQ(expand_env("${A:-${B}}", env).value, "bee");
  EXPECT_EQ(expand_env("${A:-${C:-sea}}!", env).value, "sea!");
}

TEST(ExpandEnv, DoubleDollarIsALiteralDollar) {
  const EnvLookup env = fixed_env({{"A", "x"}});
  EXPECT_EQ(expand_env("$${A}", env).value, "${A}");
  EXPECT_EQ(expand_env("cost: $$5 ${A}", env).value, "cost: $5 x");
  EXPECT_EQ(expand_env("$$$$", env).value, "$$");
}

TEST(ExpandEnv, LeavesShellSyntaxForTheHookShell) {
  const Expansion x = expand_env("kill -HUP $(cat /run/x.pid) $HOME $1 end$", fixed_env({{"HOME", "/root"}}));
  EXPECT_EQ(x.error, std::nullopt);
  EXPECT_EQ(x.value, "kill -HUP $(cat /run/x.pid) $HOME $1 end$");
}

TEST(ExpandEnv, DoesNotReexpandVariableValues) {
  EXPECT_EQ(expand_env("${A}", fixed_env({{"A", "${B}"}, {"B", "no"}})).value, "${B}");
}

TEST(ExpandEnv, ReportsUnterminatedBrace) {
  const Expansion x = expand_env("${HOSTNAME-8080", fixed_env({}));
  ASSERT_TRUE(x.error.has_value());
  EXPECT_EQ(*x.error, "unterminated '${' in '${HOSTNAME-8080'");
  EXPECT_EQ(x.value, "");
  EXPECT_TRUE(expand_env("a ${B:-${C}", fixed_env({})).error.has_value());
}

TEST(ExpandEnv, ReportsBadVariableNames) {
  for (const char* text : {"${}", "${1A}", "${A-b}", "${A B}", "${:-x}"}) {
    const Expansion x = expand_env(text, fixed_env({}));
    ASSERT_TRUE(x.error.has_value()) << text;
    EXPECT_THAT(*x.error, HasSubstr("bad substitution")) << text;
  }
}

TEST(ExpandEnv, ListsUnsetVariablesThatHadNoDefault) {
  const Expansion x = expand_env("${A}/${B:-b}/${C}/${D}", fixed_env({{"D", ""}}));
  EXPECT_EQ(x.value, "/b//");
  // D is set (to nothing): that is the user's choice, not an oversight.
  EXPECT_THAT(x.unset, ElementsAre("A", "C"));
}

TEST(ProcessEnv, ReadsTheProcessEnvironment) {
  ASSERT_EQ(::setenv("SIDECAR_MANIFEST_TEST_VAR", "from-env", 1), 0);
  const EnvLookup env = process_env();
  EXPECT_EQ(env("SIDECAR_MANIFEST_TEST_VAR"), std::optional<std::string>("from-env"));
  ASSERT_EQ(::unsetenv("SIDECAR_MANIFEST_TEST_VAR"), 0);
  EXPECT_EQ(env("SIDECAR_MANIFEST_TEST_VAR"), std::nullopt);
}

}  // namespace
}  // namespace sidecar::core
