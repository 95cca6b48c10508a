#include "soma/runtime.h"
#include "soma/Data.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <gtest/gtest.h>
#include <unistd.h>
#include <vector>

using namespace soma::rt;

namespace {
CsvOptions csv(int64_t label, bool header) {
  CsvOptions o;
  o.labelColumns = {label};
  o.header = header;
  return o;
}

std::string tempFile(const std::string &name, const std::string &content) {
  std::string path = ::testing::TempDir() + "/soma_" + std::to_string(getpid()) + "_" + name;
  std::ofstream(path, std::ios::binary) << content;
  return path;
}

std::string idx(uint32_t magic, const std::vector<uint32_t> &dims, size_t payload) {
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
  EXPECT_NE(loadIdx(tempFile("c", idx(0x803, {3, 2, 3}, 18)), lab, d).find("2 labels for 3 images"), std::string::npos);
  EXPECT_NE(loadIdx("/nonexistent/file", lab, d).find("cannot open"), std::string::npos);
}

TEST(Csv, LoadsFeaturesAndLabelColumn) {
  Dataset d;
  ASSERT_EQ(loadCsv(tempFile("a.csv", "a,b,y\n1,2,0\n# note\n3, 4 ,1\n"), csv(-1, true), d), "");
  EXPECT_EQ(d.count, 2);
  EXPECT_EQ(d.features, (std::vector<float>{1, 2, 3, 4}));
  EXPECT_EQ(d.labels, (std::vector<float>{0, 1}));
  ASSERT_EQ(loadCsv(tempFile("b.csv", "5,1,2\n"), csv(0, false), d), "");
  EXPECT_EQ(d.labels, (std::vector<float>{5}));
}

TEST(Csv, SeveralLabelColumnsAndNone) {
  Dataset d;
  CsvOptions o = csv(0, true);
  o.labelColumns = {3, 0};
  ASSERT_EQ(loadCsv(tempFile("m.csv", "y1,a,b,y2\n1,2,3,0\n0,5,6,1\n"), o, d), "");
  EXPECT_EQ(d.labelSize, 2);
  EXPECT_EQ(d.features, (std::vector<float>{2, 3, 5, 6}));
  EXPECT_EQ(d.labels, (std::vector<float>{0, 1, 1, 0})); // in the order given
  o.labelColumns.clear();
  o.labelNames = {"y1", "y2"};
  ASSERT_EQ(loadCsv(tempFile("n.csv", "y1,a,b,y2\n1,2,3,0.5\n"), o, d), "");
  EXPECT_EQ(d.labels, (std::vector<float>{1, 0.5f}));
  // Several labels are numbers; a column is a label or a feature, once.
  EXPECT_NE(loadCsv(tempFile("o.csv", "y1,a,b,y2\n1,2,3,cat\n"), o, d).find(":2:7: error: label (field 4) is not a"),
            std::string::npos);
  o.labelNames = {"y1", "y1"};
  EXPECT_NE(loadCsv(tempFile("p.csv", "y1,a\n1,2\n"), o, d).find("named twice as a label"), std::string::npos);
  o.labelNames = {"y1"};
  o.columnNames = {"y1", "a"};
  EXPECT_NE(loadCsv(tempFile("q.csv", "y1,a\n1,2\n"), o, d).find("both a label and a feature"), std::string::npos);
  // No labels: every column is a feature.
  CsvOptions none = csv(-1, false);
  none.labelled = false;
  ASSERT_EQ(loadCsv(tempFile("r.csv", "1,2,3\n"), none, d), "");
  EXPECT_EQ(d.labelSize, 0);
  EXPECT_TRUE(d.labels.empty());
  EXPECT_EQ(d.sampleSize, 3);
}

TEST(Csv, ReportsRowAndFieldErrors) {
  Dataset d;
  EXPECT_NE(loadCsv(tempFile("c.csv", "1,2\n1,2,3\n"), csv(-1, false), d).find(":2: error: row has 3 columns"),
            std::string::npos);
  EXPECT_NE(loadCsv(tempFile("d.csv", "1,x\n"), csv(-1, false), d).find("is not a number: 'x'"), std::string::npos);
  EXPECT_NE(checkClassLabels(Dataset{{1}, 1, 1, {0}, {3}}, 3, "f").find("not a class"), std::string::npos);
}

TEST(Csv, NamedColumnsAndClassNames) {
  Dataset train, test;
  std::vector<std::string> classes;
  CsvOptions o;
  o.header = true;
  o.labelNames = {"species"};
  o.columnNames = {"petal", "sepal"};
  o.classNames = &classes;
  ASSERT_EQ(loadCsv(tempFile("iris.csv", "sepal,petal,species,id\n5.1,1.4,setosa,1\n7,4.7,versicolor,2\n"
                                         "6.3,6,virginica,3\n5,1.3,setosa,4\n"),
                    o, train),
            "");
  EXPECT_EQ(classes, (std::vector<std::string>{"setosa", "versicolor", "virginica"}));
  EXPECT_EQ(train.labels, (std::vector<float>{0, 1, 2, 0}));
  EXPECT_EQ(train.features, (std::vector<float>{1.4f, 5.1f, 4.7f, 7, 6, 6.3f, 1.3f, 5}));
  // A test set uses the training set's numbering, and knows no other class.
  ASSERT_EQ(loadCsv(tempFile("t.csv", "sepal,petal,species,id\n6,5,virginica,9\n"), o, test), "");
  EXPECT_EQ(test.labels, (std::vector<float>{2}));
  EXPECT_NE(loadCsv(tempFile("u.csv", "sepal,petal,species,id\n6,5,daisy,9\n"), o, test)
                .find(":2: error: class 'daisy' is not one of the training data's"),
            std::string::npos);
  o.labelNames = {"kind"};
  EXPECT_NE(loadCsv(tempFile("v.csv", "sepal,petal,species\n1,2,a\n"), o, test).find("no column named 'kind'"),
            std::string::npos);
}

TEST(Data, StandardizeAndSplit) {
  Dataset d{{2}, 2, 4, {1, 10, 3, 10, 5, 10, 7, 10}, {0, 1, 2, 3}};
  Standardizer s;
  s.fit(d);
  s.apply(d);
  EXPECT_FLOAT_EQ(d.features[0], (1 - 4) / std::sqrt(5.0f));
  EXPECT_FLOAT_EQ(d.features[1], 0); // a constant feature becomes 0, not NaN
  Dataset held;
  splitOff(d, 0.5, 3, held);
  EXPECT_EQ(d.count, 2);
  EXPECT_EQ(held.count, 2);
  std::vector<float> all = d.labels;
  all.insert(all.end(), held.labels.begin(), held.labels.end());
  std::sort(all.begin(), all.end());
  EXPECT_EQ(all, (std::vector<float>{0, 1, 2, 3})); // every sample in exactly one part
}

TEST(Npy, LoadsFeaturesAndLabels) {
  auto npy = [](const std::string &descr, const std::string &shape, const std::string &data) {
    std::string header = "{'descr': '" + descr + "', 'fortran_order': False, 'shape': " + shape + ", }";
    while ((10 + header.size() + 1) % 64)
      header += ' ';
    header += '\n';
    std::string s = "\x93NUMPY";
    s += '\x01';
    s += '\x00';
    s += static_cast<char>(header.size() & 0xff);
    s += static_cast<char>(header.size() >> 8);
    return s + header + data;
  };
  float f[6] = {1, 2, 3, 4, 5, 6};
  int64_t l[3] = {2, 0, 1};
  std::string fp = tempFile("x.npy", npy("<f4", "(3, 2)", std::string(reinterpret_cast<char *>(f), sizeof f)));
  std::string lp = tempFile("y.npy", npy("<i8", "(3,)", std::string(reinterpret_cast<char *>(l), sizeof l)));
  Dataset d;
  ASSERT_EQ(loadNpy(fp, lp, d), "");
  EXPECT_EQ(d.count, 3);
  EXPECT_EQ(d.sampleDims, (std::vector<int64_t>{2}));
  EXPECT_EQ(d.features, (std::vector<float>{1, 2, 3, 4, 5, 6}));
  EXPECT_EQ(d.labels, (std::vector<float>{2, 0, 1}));
  std::string bad = tempFile("b.npy", npy("<c8", "(3,)", std::string(24, '\0')));
  EXPECT_NE(loadNpy(fp, bad, d).find("not supported"), std::string::npos);
  std::string cut = tempFile("c.npy", npy("<i8", "(3,)", std::string(8, '\0')));
  EXPECT_NE(loadNpy(fp, cut, d).find("truncated"), std::string::npos);
  EXPECT_NE(loadNpy(tempFile("n.npy", "hello"), lp, d).find("not a NumPy .npy file"), std::string::npos);
  // Labels of shape (n, k): k a sample; none without a labels file.
  std::string wide = tempFile("w.npy", npy("<f4", "(3, 2)", std::string(reinterpret_cast<char *>(f), sizeof f)));
  ASSERT_EQ(loadNpy(fp, wide, d), "");
  EXPECT_EQ(d.labelSize, 2);
  EXPECT_EQ(d.labels, (std::vector<float>{1, 2, 3, 4, 5, 6}));
  ASSERT_EQ(loadNpy(fp, "", d), "");
  EXPECT_EQ(d.labelSize, 0);
  EXPECT_TRUE(d.labels.empty());
  std::string flat = tempFile("s.npy", npy("<f4", "(2, 3)", std::string(reinterpret_cast<char *>(f), sizeof f)));
  EXPECT_NE(loadNpy(fp, flat, d).find("2 labels for 3 samples"), std::string::npos);
  std::string empty = tempFile("e.npy", npy("<f4", "(3, 0)", ""));
  EXPECT_NE(loadNpy(fp, empty, d).find("the labels have no values"), std::string::npos);
}

TEST(Data, SplitKeepsSeveralLabelsWithTheirSample) {
  Dataset d{{1}, 1, 4, {0, 1, 2, 3}, {0, 10, 1, 11, 2, 12, 3, 13}, 2}, held;
  splitOff(d, 0.5, 7, held);
  ASSERT_EQ(held.count, 2);
  EXPECT_EQ(held.labelSize, 2);
  for (const Dataset *part : {&d, &held})
    for (int64_t i = 0; i < part->count; ++i) {
      EXPECT_EQ(part->labels[i * 2], part->features[i]);
      EXPECT_EQ(part->labels[i * 2 + 1], part->features[i] + 10);
    }
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
