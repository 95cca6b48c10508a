// batchnorm, layernorm and dropout against their definitions (PyTorch's): in training, batch
// statistics and running averages with the unbiased variance; in evaluation, the running ones;
// dropout's masks scaled by 1 / (1 - p), different each step, absent in evaluation.
#include "../common/JitHarness.h"
#include "../common/Programs.h"
#include "ast/Sema.h"
#include "frontend/Parser.h"
#include "interp/Interp.h"
#include "lowering/Lower.h"
#include "soma/Data.h"
#include "soma/Session.h"

#include <cmath>
#include <gtest/gtest.h>
#include <sstream>
#include <stdexcept>

using namespace soma;

namespace {

Program check(const std::string &model) { return test::checkProgram(model); }

struct Outcome {
  std::map<std::string, interp::Tensor> in;
  std::map<std::string, interp::Tensor> out;
};

// Runs the training-mode (or evaluation) forward function on a batch.
Outcome run(const Program &p, bool training, const std::vector<double> &x, int64_t batch, double seed = 5) {
  LoweredModel m = lowerModel(p);
  ir::Function f = training ? lowerTrainingForward(m, p) : m.forward;
  Outcome r;
  r.in[kInputX].data = x;
  r.in[kInputLabel].data.assign(static_cast<size_t>(batch), 0);
  r.in[kInputInvBatch].data = {1.0 / static_cast<double>(batch)};
  r.in[kInputDropoutSeed].data = {seed};
  auto init = test::initialParams(m, 1);
  for (size_t i = 0; i < m.params.size(); ++i)
    r.in[m.params[i].name].data.assign(init[i].begin(), init[i].end());
  r.in["batchnorm_1.running_mean"].data = {0.5, -1, 2};
  r.in["batchnorm_1.running_var"].data = {4, 1, 0.25};
  r.out = interp::run(f, r.in, batch);
  return r;
}

} // namespace

TEST(BatchNorm, TrainingUsesBatchStatisticsAndUpdatesRunningOnes) {
  Program p = check("model M { input x: f32[3]  batchnorm(momentum: 0.25) }");
  std::vector<double> x = {1, 2, 3, 5, -2, 0, 0, 4, 3, 2, 0, 6};
  Outcome r = run(p, true, x, 4);
  for (int c = 0; c < 3; ++c) {
    double mean = 0, var = 0;
    for (int b = 0; b < 4; ++b)
      mean += x[b * 3 + c] / 4;
    for (int b = 0; b < 4; ++b)
      var += (x[b * 3 + c] - mean) * (x[b * 3 + c] - mean) / 4;
    for (int b = 0; b < 4; ++b) // scale 1, shift 0 at the start
      EXPECT_NEAR(r.out["output"].data[b * 3 + c], (x[b * 3 + c] - mean) / std::sqrt(var + 1e-5), 1e-12);
    double rm = r.in["batchnorm_1.running_mean"].data[c], rv = r.in["batchnorm_1.running_var"].data[c];
    EXPECT_NEAR(r.out["batchnorm_1.running_mean"].data[c], 0.75 * rm + 0.25 * mean, 1e-12);
    EXPECT_NEAR(r.out["batchnorm_1.running_var"].data[c], 0.75 * rv + 0.25 * var * 4 / 3, 1e-12);
  }
}

TEST(BatchNorm, EvaluationUsesRunningStatistics) {
  Program p = check("model M { input x: f32[3]  batchnorm }");
  std::vector<double> x = {1, 2, 3};
  Outcome r = run(p, false, x, 1);
  double rm[3] = {0.5, -1, 2}, rv[3] = {4, 1, 0.25};
  for (int c = 0; c < 3; ++c)
    EXPECT_NEAR(r.out["output"].data[c], (x[c] - rm[c]) / std::sqrt(rv[c] + 1e-5), 1e-12);
}

TEST(LayerNorm, NormalizesEachSample) {
  Program p = check("model M { input x: f32[3]  layernorm(eps: 0.001) }");
  std::vector<double> x = {1, 2, 6, -3, 0, 3};
  Outcome r = run(p, false, x, 2);
  for (int b = 0; b < 2; ++b) {
    double mean = (x[b * 3] + x[b * 3 + 1] + x[b * 3 + 2]) / 3, var = 0;
    for (int i = 0; i < 3; ++i)
      var += (x[b * 3 + i] - mean) * (x[b * 3 + i] - mean) / 3;
    for (int i = 0; i < 3; ++i)
      EXPECT_NEAR(r.out["output"].data[b * 3 + i], (x[b * 3 + i] - mean) / std::sqrt(var + 0.001), 1e-12);
  }
}

TEST(Dropout, ScalesKeptUnitsAndChangesItsMaskEachStep) {
  Program p = check("model M { input x: f32[1000]  dropout(0.3) -> reshape([1000]) }");
  std::vector<double> x(1000, 2.0);
  Outcome a = run(p, true, x, 1, 5), b = run(p, true, x, 1, 6);
  int dropped = 0, differ = 0;
  for (int i = 0; i < 1000; ++i) {
    double v = a.out["output"].data[i];
    EXPECT_TRUE(v == 0 || std::fabs(v - 2.0 / 0.7) < 1e-12) << v;
    dropped += v == 0;
    differ += (v == 0) != (b.out["output"].data[i] == 0);
  }
  EXPECT_NEAR(dropped, 300, 50);
  EXPECT_GT(differ, 200); // another step, another mask
  Outcome e = run(p, false, x, 1);
  for (double v : e.out["output"].data)
    EXPECT_EQ(v, 2.0); // evaluation: no dropout
}

TEST(Embedding, LooksUpOneRowPerId) {
  Program p = check("model M { input ids: f32[3]  embedding(4, 2) -> flatten }");
  LoweredModel m = lowerModel(p);
  std::map<std::string, interp::Tensor> in;
  in[kInputX].data = {2, 0, 3, 1, 1, 7}; // 7 is outside the vocabulary: zeros
  in[kInputLabel].data = {0, 0};
  in[kInputInvBatch].data = {0.5};
  in["embedding_1.w"].data = {0, 1, 10, 11, 20, 21, 30, 31};
  auto out = interp::run(m.forward, in, 2)["output"].data;
  EXPECT_EQ(out, (std::vector<double>{20, 21, 0, 1, 30, 31, 10, 11, 10, 11, 0, 0}));
  EXPECT_EQ(p.model.params[0].init.kind, InitSpec::Kind::Normal);
}
