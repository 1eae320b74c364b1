// Confinement: paths resolved (links followed) and checked against a root before opening.
#include "common/confined_path.h"

#include <filesystem>

#include "gtest/gtest.h"
#include "tests/testutil/fixtures.h"

namespace sp {
namespace {

namespace fs = std::filesystem;

TEST(ConfinedPath, InsideOutsideAndThroughLinks) {
  test::TempDir d;
  fs::create_directories(d / "root/model");
  fs::create_directories(d / "elsewhere");
  test::write_text(d / "root/model/config.json", "{}");
  test::write_text(d / "elsewhere/secret", "x");
  fs::create_symlink(d / "elsewhere/secret", d / "root/model/link");
  fs::create_directory_symlink(d / "elsewhere", d / "root/dirlink");
  fs::create_symlink(d / "root/model/config.json", d / "root/model/inner");  // a link that stays inside

  auto ok = resolve_under(d / "root/model/config.json", d / "root", "config.json");
  ASSERT_TRUE(ok.ok()) << ok.status();
  EXPECT_EQ(*ok, fs::canonical(d / "root/model/config.json").string());
  EXPECT_TRUE(resolve_under(d / "root/model/inner", d / "root", "f").ok());
  EXPECT_TRUE(resolve_under(d / "root/model/not-yet", d / "root", "output").ok());  // may not exist yet
  EXPECT_TRUE(resolve_under(d / "root", d / "root", "model").ok());

  for (const std::string& bad : {d / "root/model/link", d / "root/dirlink/secret", d / "root/dirlink/new"}) {
    auto r = resolve_under(bad, d / "root", "weight file");
    ASSERT_TRUE(absl::IsPermissionDenied(r.status())) << bad;
    const std::string msg(r.status().message());
    EXPECT_NE(msg.find("leads outside the coordinator's allowed root"), std::string::npos) << msg;
    EXPECT_NE(msg.find(bad), std::string::npos) << "names the path as given: " << msg;
    EXPECT_EQ(msg.find("elsewhere"), std::string::npos) << "does not say where the link leads: " << msg;
  }
  for (const std::string& bad : {d / "elsewhere/secret", d / "root/../elsewhere/secret", std::string("/etc/passwd")}) {
    auto r = resolve_under(bad, d / "root", "model");
    EXPECT_TRUE(absl::IsPermissionDenied(r.status())) << bad;
    EXPECT_NE(std::string(r.status().message()).find("is outside"), std::string::npos) << r.status();
  }
  EXPECT_TRUE(resolve_under("/etc/passwd", kAnyRoot, "file").ok());  // the CLI: no confinement
}

TEST(ConfinedPath, FileNamesInAFolderMustBePlain) {
  test::TempDir d;
  for (const std::string& bad : {"", ".", "..", "../x", "a/b", "/etc/passwd"}) {
    auto r = resolve_in(d.path(), bad, kAnyRoot, "file listed in the manifest");
    EXPECT_TRUE(absl::IsInvalidArgument(r.status())) << "'" << bad << "'";
  }
  EXPECT_TRUE(resolve_in(d.path(), "config.json", d.path(), "config.json").ok());
}

}  // namespace
}  // namespace sp
