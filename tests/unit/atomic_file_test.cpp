#include "agent/output/atomic_file.hpp"

#include <gtest/gtest.h>

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

namespace sidecar::output {
namespace {

namespace fs = std::filesystem;

class AtomicFile : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = (fs::temp_directory_path() / "sidecar-atomic-XXXXXX").string();
    ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }

  std::string path(const std::string& rel) const { return (fs::path(dir_) / rel).string(); }

  static std::string read(const std::string& p) {
    std::ifstream in(p, std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
  }
  static void write_plain(const std::string& p, const std::string& bytes) {
    std::ofstream out(p, std::ios::binary);
    out << bytes;
  }
  static unsigned mode_of(const std::string& p) {
    struct stat st{};
    EXPECT_EQ(::stat(p.c_str(), &st), 0);
    return st.st_mode & 07777;
  }
  // Files in the directory other than the expected ones: leftovers would be temp files.
  std::vector<std::string> entries(const std::string& d) const {
    std::vector<std::string> out;
    for (const auto& e : fs::directory_iterator(d)) out.push_back(e.path().filename().string());
    std::sort(out.begin(), out.end());
    return out;
  }

  std::string dir_;
};

TEST_F(AtomicFile, WritesNewFileWithMode) {
  WriteResult r = write_file_atomic(path("out.json"), "hello\n", 0640);
  ASSERT_EQ(r.status, WriteResult::Status::kWritten) << r.error;
  EXPECT_TRUE(r.warning.empty()) << r.warning;
  EXPECT_EQ(read(path("out.json")), "hello\n");
  EXPECT_EQ(mode_of(path("out.json")), 0640u);
  EXPECT_EQ(entries(dir_), std::vector<std::string>{"out.json"});
}

TEST_F(AtomicFile, ModeIsExactRegardlessOfUmask) {
  mode_t old = ::umask(0077);
  WriteResult r = write_file_atomic(path("wide"), "x", 0666);
  ::umask(old);
  ASSERT_TRUE(r.ok()) << r.error;
  EXPECT_EQ(mode_of(path("wide")), 0666u);
}

TEST_F(AtomicFile, ReplacesExistingContentAndInode) {
  write_plain(path("f"), "old content that is longer");
  struct stat before{};
  ASSERT_EQ(::stat(path("f").c_str(), &before), 0);
  WriteResult r = write_file_atomic(path("f"), "new", 0600);
  ASSERT_TRUE(r.ok()) << r.error;
  EXPECT_EQ(read(path("f")), "new");
  EXPECT_EQ(mode_of(path("f")), 0600u);
  struct stat after{};
  ASSERT_EQ(::stat(path("f").c_str(), &after), 0);
  // A new inode means readers holding the old file see the old bytes in full, never a partial write.
  EXPECT_NE(before.st_ino, after.st_ino);
  EXPECT_EQ(entries(dir_), std::vector<std::string>{"f"});
}

TEST_F(AtomicFile, WritesEmptyAndLargeContent) {
  ASSERT_TRUE(write_file_atomic(path("empty"), "", 0644).ok());
  EXPECT_EQ(read(path("empty")), "");
  std::string big(3 * 1024 * 1024 + 17, 'z');
  big[12345] = '\0';
  ASSERT_TRUE(write_file_atomic(path("big"), big, 0644).ok());
  EXPECT_EQ(read(path("big")), big);
}

TEST_F(AtomicFile, CreatesParentDirectories) {
  std::string p = path("a/b/c/out.txt");
  WriteResult r = write_file_atomic(p, "deep", 0644);
  ASSERT_TRUE(r.ok()) << r.error;
  EXPECT_EQ(read(p), "deep");
  EXPECT_TRUE(fs::is_directory(path("a/b/c")));
}

TEST_F(AtomicFile, ParentThatIsAFileIsAnErrorNamingPathAndErrno) {
  // Root ignores permission bits, so unwritability is provoked with a regular file where a directory must be.
  write_plain(path("file"), "keep");
  WriteResult r = write_file_atomic(path("file/child"), "x", 0644);
  EXPECT_EQ(r.status, WriteResult::Status::kFailed);
  EXPECT_NE(r.error.find(path("file")), std::string::npos) << r.error;
  EXPECT_NE(r.error.find("Not a directory"), std::string::npos) << r.error;
  EXPECT_EQ(read(path("file")), "keep");

  WriteResult deeper = write_file_atomic(path("file/sub/child"), "x", 0644);
  EXPECT_EQ(deeper.status, WriteResult::Status::kFailed);
  EXPECT_NE(deeper.error.find("Not a directory"), std::string::npos) << deeper.error;
  EXPECT_EQ(entries(dir_), std::vector<std::string>{"file"});
}

TEST_F(AtomicFile, FailedRenameLeavesTargetIntactAndNoTempFile) {
  // The target is a non-empty directory: everything up to the rename succeeds, the rename fails.
  fs::create_directories(path("target/inside"));
  WriteResult r = write_file_atomic(path("target"), "x", 0644);
  EXPECT_EQ(r.status, WriteResult::Status::kFailed);
  EXPECT_NE(r.error.find("rename " + path("target")), std::string::npos) << r.error;
  EXPECT_TRUE(fs::is_directory(path("target/inside")));
  EXPECT_EQ(entries(dir_), std::vector<std::string>{"target"});
}

TEST_F(AtomicFile, PathEndingInSlashIsAnError) {
  WriteResult r = write_file_atomic(dir_ + "/", "x", 0644);
  EXPECT_EQ(r.status, WriteResult::Status::kFailed);
  EXPECT_FALSE(r.error.empty());
}

TEST_F(AtomicFile, SkipIfSameLeavesIdenticalFileUntouched) {
  ASSERT_TRUE(write_file_atomic(path("f"), "same", 0644).ok());
  struct stat before{};
  ASSERT_EQ(::stat(path("f").c_str(), &before), 0);
  WriteResult r = write_file_atomic(path("f"), "same", 0644, /*skip_if_same=*/true);
  EXPECT_EQ(r.status, WriteResult::Status::kUnchanged);
  struct stat after{};
  ASSERT_EQ(::stat(path("f").c_str(), &after), 0);
  EXPECT_EQ(before.st_ino, after.st_ino);
}

TEST_F(AtomicFile, SkipIfSameStillWritesDifferentContentOrMode) {
  ASSERT_TRUE(write_file_atomic(path("f"), "one", 0644).ok());
  EXPECT_EQ(write_file_atomic(path("f"), "two", 0644, true).status, WriteResult::Status::kWritten);
  EXPECT_EQ(read(path("f")), "two");
  EXPECT_EQ(write_file_atomic(path("f"), "two", 0600, true).status, WriteResult::Status::kWritten);
  EXPECT_EQ(mode_of(path("f")), 0600u);
  EXPECT_EQ(write_file_atomic(path("missing"), "x", 0644, true).status, WriteResult::Status::kWritten);
}

TEST_F(AtomicFile, SameContentComparesExactly) {
  write_plain(path("f"), "abc");
  EXPECT_TRUE(same_content(path("f"), "abc"));
  EXPECT_FALSE(same_content(path("f"), "abd"));
  EXPECT_FALSE(same_content(path("f"), "ab"));
  EXPECT_FALSE(same_content(path("f"), "abcd"));
  EXPECT_FALSE(same_content(path("missing"), ""));
  EXPECT_FALSE(same_content(dir_, ""));  // a directory is not a file with empty content
  write_plain(path("empty"), "");
  EXPECT_TRUE(same_content(path("empty"), ""));
}

TEST_F(AtomicFile, StagedFileIsCompleteHiddenAndInTheSameDirectory) {
  write_plain(path("nginx.conf"), "old");
  StageResult s = stage_file(path("nginx.conf"), "new", 0640);
  ASSERT_TRUE(s.ok()) << s.error;
  fs::path staged(*s.staged_path);
  EXPECT_EQ(staged.parent_path(), fs::path(dir_));
  EXPECT_EQ(staged.filename().string().rfind(".nginx.conf.tmp.", 0), 0u) << staged;
  EXPECT_EQ(read(*s.staged_path), "new");
  EXPECT_EQ(mode_of(*s.staged_path), 0640u);
  EXPECT_EQ(read(path("nginx.conf")), "old");  // not visible yet

  WriteResult c = commit_staged(*s.staged_path, path("nginx.conf"));
  ASSERT_TRUE(c.ok()) << c.error;
  EXPECT_EQ(read(path("nginx.conf")), "new");
  EXPECT_FALSE(fs::exists(staged));
}

TEST_F(AtomicFile, DiscardRemovesStagedFileAndKeepsTarget) {
  write_plain(path("nginx.conf"), "old");
  StageResult s = stage_file(path("nginx.conf"), "broken", 0644);
  ASSERT_TRUE(s.ok()) << s.error;
  discard_staged(*s.staged_path);
  EXPECT_FALSE(fs::exists(*s.staged_path));
  EXPECT_EQ(read(path("nginx.conf")), "old");
  EXPECT_EQ(entries(dir_), std::vector<std::string>{"nginx.conf"});
  discard_staged(*s.staged_path);  // twice is harmless
}

TEST_F(AtomicFile, StageCreatesParentDirectories) {
  StageResult s = stage_file(path("x/y/conf"), "c", 0644);
  ASSERT_TRUE(s.ok()) << s.error;
  EXPECT_EQ(fs::path(*s.staged_path).parent_path(), fs::path(path("x/y")));
  discard_staged(*s.staged_path);
}

TEST_F(AtomicFile, StageIntoUnusableDirectoryIsAnError) {
  write_plain(path("file"), "keep");
  StageResult s = stage_file(path("file/conf"), "c", 0644);
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.error.find("Not a directory"), std::string::npos) << s.error;
}

TEST_F(AtomicFile, FailedCommitRemovesStagedFile) {
  StageResult s = stage_file(path("conf"), "c", 0644);
  ASSERT_TRUE(s.ok()) << s.error;
  fs::create_directories(path("conf/inside"));  // the target became a non-empty directory meanwhile
  WriteResult c = commit_staged(*s.staged_path, path("conf"));
  EXPECT_EQ(c.status, WriteResult::Status::kFailed);
  EXPECT_FALSE(fs::exists(*s.staged_path));
}

TEST_F(AtomicFile, RelativePathWithoutDirectoryUsesCurrentDirectory) {
  auto old = fs::current_path();
  fs::current_path(dir_);
  WriteResult r = write_file_atomic("rel.txt", "r", 0644);
  fs::current_path(old);
  ASSERT_TRUE(r.ok()) << r.error;
  EXPECT_EQ(read(path("rel.txt")), "r");
}

TEST(MakeDirectories, ExistingDirectoryIsFineAndFileIsNot) {
  EXPECT_FALSE(make_directories("/").has_value());
  EXPECT_FALSE(make_directories(fs::temp_directory_path().string()).has_value());
}

}  // namespace
}  // namespace sidecar::output
