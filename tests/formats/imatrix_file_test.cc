// llama.cpp's importance-matrix file (formats/imatrix_file): what we write reads back,
// importance() is values / ncall as llama-quantize divides, and a damaged or mismatched
// file is an error that names the problem. Agreement with llama-imatrix's own files is
// tested in tests/checkpoint/gguf_export_test.cc.
#include "formats/imatrix_file.h"

#include <cmath>
#include <limits>

#include "common/file_util.h"
#include "gtest/gtest.h"
#include "tests/testutil/fixtures.h"

namespace sp {
namespace {

TEST(ImatrixFile, WritesAndReadsBack) {
  test::TempDir d;
  Imatrix m;
  m.entries.push_back({"blk.0.attn_q.weight", 4, {4.0f, 8.0f, 2.0f}});
  m.entries.push_back({"blk.0.ffn_down.weight", 2, {1.0f, 3.0f}});
  m.last_call = 4;
  m.dataset = "calib.txt";
  const std::string path = d / "imatrix.dat";
  ASSERT_TRUE(write_imatrix(path, m).ok());
  EXPECT_TRUE(absl::IsFailedPrecondition(write_imatrix(path, m)));  // never overwritten
  auto r = read_imatrix(path);
  ASSERT_TRUE(r.ok()) << r.status();
  ASSERT_EQ(r->entries.size(), 2u);
  EXPECT_EQ(r->entries[1].name, "blk.0.ffn_down.weight");
  EXPECT_EQ(r->last_call, 4);
  EXPECT_EQ(r->dataset, "calib.txt");
  auto w = r->importance("blk.0.attn_q.weight", 3);
  ASSERT_TRUE(w.ok());
  EXPECT_EQ(*w, (std::vector<float>{1.0f, 2.0f, 0.5f}));
  auto none = r->importance("output.weight", 7);
  ASSERT_TRUE(none.ok());
  EXPECT_TRUE(none->empty());  // no entry: quantized without
  auto wrong = r->importance("blk.0.attn_q.weight", 4);
  ASSERT_FALSE(wrong.ok());
  EXPECT_NE(wrong.status().message().find("has 3 values for blk.0.attn_q.weight, which has 4 columns"), std::string::npos);
}

TEST(ImatrixFile, DamagedFilesAreErrors) {
  Imatrix m;
  m.entries.push_back({"a", 1, {1.0f, std::numeric_limits<float>::infinity()}});
  test::TempDir d;
  ASSERT_TRUE(write_imatrix(d / "m.dat", m).ok());
  auto r = read_imatrix(d / "m.dat");
  ASSERT_TRUE(r.ok());
  EXPECT_NE(r->importance("a", 2).status().message().find("non-finite"), std::string::npos);
  auto bytes = read_file(d / "m.dat");
  ASSERT_TRUE(bytes.ok());
  for (size_t cut : {size_t{2}, size_t{6}, size_t{10}, size_t{20}}) {
    auto p = parse_imatrix({reinterpret_cast<const uint8_t*>(bytes->data()), cut}, "m.dat");
    ASSERT_FALSE(p.ok()) << cut;
    EXPECT_NE(p.status().message().find("m.dat: not an importance-matrix file"), std::string::npos) << p.status();
  }
  const uint8_t zero[4] = {0, 0, 0, 0};
  EXPECT_FALSE(parse_imatrix(zero, "z").ok());
  EXPECT_TRUE(absl::IsNotFound(read_imatrix(d / "missing.dat").status()));
}

}  // namespace
}  // namespace sp
