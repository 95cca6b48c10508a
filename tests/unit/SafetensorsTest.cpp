// The safetensors reader and writer: a round trip keeps every value, and every truncation and
// many corruptions of a good file give an error or a valid file, never a crash (the sanitizer
// build runs this too).
#include "soma/Safetensors.h"
#include "soma/Data.h"

#include <fstream>
#include <gtest/gtest.h>
#include <sstream>
#include <sys/stat.h>
#include <unistd.h>

using namespace soma::rt;

namespace {

std::string path(const std::string &name) {
  return ::testing::TempDir() + "/soma_st_" + std::to_string(getpid()) + "_" + name;
}

TensorFile sample() {
  TensorFile f;
  f.metadata = {{"model", "M \"quoted\" \\ name"}, {"epoch", "3"}};
  NamedTensor w;
  w.name = "dense_1.w";
  w.shape = {3, 2};
  w.f32 = {1.5f, -2.0f, 0.0f, 3.25f, 1e-30f, -7.0f};
  NamedTensor order;
  order.name = "order";
  order.dtype = NamedTensor::DType::I64;
  order.shape = {4};
  order.i64 = {3, 0, 2, 1};
  NamedTensor empty;
  empty.name = "empty";
  empty.shape = {0, 5};
  f.tensors = {w, order, empty};
  return f;
}

std::string bytesOf(const std::string &p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

} // namespace

TEST(Safetensors, RoundTrip) {
  std::string p = path("round.st");
  ASSERT_EQ(writeSafetensors(p, sample()), "");
  TensorFile back;
  ASSERT_EQ(readSafetensors(p, back), "");
  EXPECT_EQ(back.metadata, sample().metadata);
  ASSERT_EQ(back.tensors.size(), 3u);
  EXPECT_EQ(back.tensors[0].name, "dense_1.w");
  EXPECT_EQ(back.tensors[0].shape, (std::vector<int64_t>{3, 2}));
  EXPECT_EQ(back.tensors[0].f32, sample().tensors[0].f32);
  EXPECT_EQ(back.tensors[1].i64, sample().tensors[1].i64);
  EXPECT_EQ(back.tensors[2].elements(), 0);
  // The data starts 8-byte aligned.
  std::string bytes = bytesOf(p);
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i)
    n = n << 8 | static_cast<unsigned char>(bytes[static_cast<size_t>(i)]);
  EXPECT_EQ((8 + n) % 8, 0u);
  std::remove(p.c_str());
}

TEST(Safetensors, EveryTruncationIsAnError) {
  std::string good = path("good.st"), bad = path("truncated.st");
  ASSERT_EQ(writeSafetensors(good, sample()), "");
  std::string bytes = bytesOf(good);
  for (size_t len = 0; len < bytes.size(); ++len) {
    std::ofstream(bad, std::ios::binary) << bytes.substr(0, len);
    TensorFile f;
    EXPECT_NE(readSafetensors(bad, f), "") << "a file cut at " << len << " bytes was accepted";
  }
  std::remove(good.c_str());
  std::remove(bad.c_str());
}

TEST(Safetensors, CorruptedBytesNeverCrash) {
  std::string good = path("good2.st"), bad = path("corrupt.st");
  ASSERT_EQ(writeSafetensors(good, sample()), "");
  std::string bytes = bytesOf(good);
  Rng rng(11);
  int errors = 0;
  for (int trial = 0; trial < 2000; ++trial) {
    std::string b = bytes;
    for (int k = 0; k < 1 + trial % 3; ++k)
      b[rng.below(b.size())] = static_cast<char>(rng.below(256));
    std::ofstream(bad, std::ios::binary) << b;
    TensorFile f;
    std::string e = readSafetensors(bad, f);
    errors += !e.empty();
    if (!e.empty())
      continue;
    for (const NamedTensor &t : f.tensors) { // accepted: then it is self-consistent
      size_t stored = t.dtype == NamedTensor::DType::F32 ? t.f32.size() : t.i64.size();
      EXPECT_EQ(static_cast<int64_t>(stored), t.elements());
    }
  }
  EXPECT_GT(errors, 100);
  std::remove(good.c_str());
  std::remove(bad.c_str());
}

TEST(Safetensors, FailedWriteKeepsThePreviousFile) {
  std::string p = path("keep.st");
  ASSERT_EQ(writeSafetensors(p, sample()), "");
  std::string before = bytesOf(p);
  std::string tmp = p + ".tmp";
  ASSERT_EQ(mkdir(tmp.c_str(), 0755), 0); // the temporary file cannot be created
  TensorFile other = sample();
  other.tensors[0].f32[0] = 99;
  EXPECT_NE(writeSafetensors(p, other), "");
  EXPECT_EQ(bytesOf(p), before);
  rmdir(tmp.c_str());
  std::remove(p.c_str());
}

TEST(Rng, StateRoundTripContinuesTheSequence) {
  Rng a(5);
  a.next();
  Rng b(99);
  ASSERT_TRUE(b.restoreState(a.saveState()));
  for (int i = 0; i < 10; ++i)
    EXPECT_EQ(a.next(), b.next());
  EXPECT_FALSE(b.restoreState("0000000000000000:0000000000000000:0000000000000000:0000000000000000"));
  EXPECT_FALSE(b.restoreState("xyz"));
}
