#include "soma/Data.h"
#include "soma/runtime.h"

#include <atomic>
#include <cstdio>
#include <fstream>
#include <gtest/gtest.h>
#include <unistd.h>
#include <vector>

using namespace soma::rt;

namespace {
std::string tempFile(const std::string &name, const std::string &content) {
  std::string path = ::testing::TempDir() + "/soma_" + std::to_string(getpid()) + "_" + name;
  std::ofstream(path, std::ios::binary) << content;
  return path;
}

std::string idx(uint32_t magic, std::vector<uint32_t> dims, size_t payload) {
  std::string s;
  auto be = [&](uint32_t v) {
    for (int i = 3; i >= 0; --i)
      s += static_cast<char>(v >> (8 * i) & 0xff);
  };
  be(magic);
  for (uint32_t d : dims)
    be(d);
  for (size_t i = 0; i < payload; ++i)
    s += static_cast<char>(i % 7);
  return s;
}
} // namespace

TEST(Idx, LoadsImagesScaledToUnitRange) {
  Dataset d;
  std::string img = tempFile("i", idx(0x803, {2, 2, 3}, 12)), lab = tempFile("l", idx(0x801, {2}, 2));
  ASSERT_EQ(loadIdx(img, lab, d), "");
  EXPECT_EQ(d.count, 2);
  EXPECT_EQ(d.sampleDims, (std::vector<int64_t>{2, 3}));
  EXPECT_FLOAT_EQ(d.features[1], 1.0f / 255.0f);
  EXPECT_EQ(d.labels[1], 1.0f);
}

TEST(Idx, RejectsBadMagicTruncationAndCountMismatch) {
  Dataset d;
  std::string lab = tempFile("l2", idx(0x801, {2}, 2));
  EXPECT_NE(loadIdx(tempFile("m", idx(0x802, {2, 2, 3}, 12)), lab, d).find("magic number"), std::string::npos);
  EXPECT_NE(loadIdx(tempFile("t", idx(0x803, {2, 2, 3}, 11)), lab, d).find("truncated"), std::string::npos);
  EXPECT_NE(loadIdx(tempFile("c", idx(0x803, {3, 2, 3}, 18)), lab, d).find("2 labels for 3 images"),
            std::string::npos);
  EXPECT_NE(loadIdx("/nonexistent/file", lab, d).find("cannot open"), std::string::npos);
}

TEST(Csv, LoadsFeaturesAndLabelColumn) {
  Dataset d;
  ASSERT_EQ(loadCsv(tempFile("a.csv", "a,b,y\n1,2,0\n# note\n3, 4 ,1\n"), -1, true, d), "");
  EXPECT_EQ(d.count, 2);
  EXPECT_EQ(d.features, (std::vector<float>{1, 2, 3, 4}));
  EXPECT_EQ(d.labels, (std::vector<float>{0, 1}));
  ASSERT_EQ(loadCsv(tempFile("b.csv", "5,1,2\n"), 0, false, d), "");
  EXPECT_EQ(d.labels, (std::vector<float>{5}));
}

TEST(Csv, ReportsRowAndFieldErrors) {
  Dataset d;
  EXPECT_NE(loadCsv(tempFile("c.csv", "1,2\n1,2,3\n"), -1, false, d).find(":2: error: row has 3 columns"),
            std::string::npos);
  EXPECT_NE(loadCsv(tempFile("d.csv", "1,x\n"), -1, false, d).find("is not a number: 'x'"), std::string::npos);
  EXPECT_NE(checkClassLabels(Dataset{{1}, 1, 1, {0}, {3}}, 3, "f").find("not a class"), std::string::npos);
}

TEST(Rng, IsDeterministicPerSeed) {
  Rng a(5), b(5), c(6);
  uint64_t x = a.next();
  EXPECT_EQ(x, b.next());
  EXPECT_NE(x, c.next());
  std::vector<int64_t> v = {0, 1, 2, 3, 4, 5, 6, 7}, w = v;
  Rng(1).shuffle(v);
  Rng(1).shuffle(w);
  EXPECT_EQ(v, w);
}

TEST(ThreadPool, EveryRowRunsExactlyOnce) {
  for (int threads : {1, 2, 3}) {
    soma_rt_set_threads(threads);
    std::vector<std::atomic<int>> hits(1000);
    auto fn = [](void *ctx, int64_t lo, int64_t hi) {
      auto *h = static_cast<std::vector<std::atomic<int>> *>(ctx);
      for (int64_t i = lo; i < hi; ++i)
        (*h)[i]++;
    };
    for (int rep = 0; rep < 50; ++rep)
      soma_rt_parallel_for(fn, &hits, 1000, 1 << 20);
    for (auto &h : hits)
      ASSERT_EQ(h.load(), 50);
  }
  soma_rt_set_threads(1);
}
