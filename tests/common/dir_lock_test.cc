// One process per folder: a second claim names the holder, a dead holder frees it.
#include "common/dir_lock.h"

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>

#include "gtest/gtest.h"
#include "tests/testutil/fixtures.h"

namespace sp {
namespace {

TEST(DirLock, ASecondClaimNamesTheHolderAndAReleasedOneCanBeTaken) {
  test::TempDir d;
  auto first = DirLock::acquire(d / "data", "shardpress-coordinator (starting)");
  ASSERT_TRUE(first.ok()) << first.status();
  first->describe("shardpress-coordinator, listening on 127.0.0.1:7070");
  auto second = DirLock::acquire(d / "data", "another");
  ASSERT_FALSE(second.ok());
  EXPECT_TRUE(absl::IsFailedPrecondition(second.status()));
  const std::string msg(second.status().message());
  EXPECT_NE(msg.find("listening on 127.0.0.1:7070"), std::string::npos) << msg;
  EXPECT_NE(msg.find("pid " + std::to_string(::getpid())), std::string::npos) << msg;
  { DirLock gone = std::move(*first); }
  EXPECT_TRUE(DirLock::acquire(d / "data", "again").ok());
}

TEST(DirLock, APlainFileOrAnUncreatableFolderIsRefused) {
  test::TempDir d;
  test::write_text(d / "file", "x");
  auto f = DirLock::acquire(d / "file", "x");
  EXPECT_TRUE(absl::IsInvalidArgument(f.status())) << f.status();
  EXPECT_NE(std::string(f.status().message()).find("is not a folder"), std::string::npos);
  auto under = DirLock::acquire(d / "file/sub", "x");
  EXPECT_TRUE(absl::IsInvalidArgument(under.status())) << under.status();
}

// The kernel drops the lock of a process killed with SIGKILL: a restart is never blocked.
TEST(DirLock, AKilledHolderFreesTheFolder) {
  test::TempDir d;
  int ready[2];
  ASSERT_EQ(::pipe(ready), 0);
  const pid_t child = ::fork();
  if (child == 0) {
    auto l = DirLock::acquire(d / "data", "child");
    const char c = l.ok() ? 'y' : 'n';
    (void)!::write(ready[1], &c, 1);
    ::pause();
    ::_exit(0);
  }
  char c = 0;
  ASSERT_EQ(::read(ready[0], &c, 1), 1);
  ASSERT_EQ(c, 'y');
  auto busy = DirLock::acquire(d / "data", "parent");
  EXPECT_TRUE(absl::IsFailedPrecondition(busy.status()));
  EXPECT_NE(std::string(busy.status().message()).find("child, pid " + std::to_string(child)), std::string::npos)
      << busy.status();
  ::kill(child, SIGKILL);
  ::waitpid(child, nullptr, 0);
  EXPECT_TRUE(DirLock::acquire(d / "data", "parent").ok());
  ::close(ready[0]);
  ::close(ready[1]);
}

}  // namespace
}  // namespace sp
