#include "common/config_file.h"

#include "gtest/gtest.h"
#include "tests/testutil/fixtures.h"

namespace sp {
namespace {

TEST(ConfigFile, ReadsKnownKeysAndNamesUnknownOnes) {
  test::TempDir d;
  test::write_text(d / "c.yaml", "listen: 127.0.0.1:7070\nlease_ttl: 30s\n");
  std::string listen, ttl = "1s", other = "keep";
  ASSERT_TRUE(load_config_file(d / "c.yaml", {{"listen", &listen}, {"lease_ttl", &ttl}, {"other", &other}}).ok());
  EXPECT_EQ(listen, "127.0.0.1:7070");
  EXPECT_EQ(ttl, "30s");
  EXPECT_EQ(other, "keep");  // absent keys keep their default

  test::write_text(d / "bad.yaml", "listen: x\nlisten_addr: y\n");
  auto st = load_config_file(d / "bad.yaml", {{"listen", &listen}});
  EXPECT_EQ(std::string(st.message()), d / "bad.yaml" + ": unknown key 'listen_addr' (allowed: listen)");
  test::write_text(d / "list.yaml", "listen: [a, b]\n");
  EXPECT_FALSE(load_config_file(d / "list.yaml", {{"listen", &listen}}).ok());
  EXPECT_FALSE(load_config_file(d / "missing.yaml", {{"listen", &listen}}).ok());
}

TEST(ConfigFile, ConfigPathFromArgs) {
  const char* argv[] = {"prog", "--listen", "x", "--config", "/etc/c.yaml"};
  EXPECT_EQ(config_path_from_args(5, const_cast<char**>(argv)), "/etc/c.yaml");
  EXPECT_EQ(config_path_from_args(3, const_cast<char**>(argv)), "");
}

}  // namespace
}  // namespace sp
