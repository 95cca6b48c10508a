// Learning-rate schedules, warm-up and reduce-on-plateau against their PyTorch definitions;
// gradient clipping and per-layer learning-rate multipliers in the lowered training step.
#include "../common/JitHarness.h"
#include "../common/Programs.h"
#include "ast/Sema.h"
#include "frontend/Parser.h"
#include "interp/Interp.h"
#include "lowering/Lower.h"
#include "soma/Data.h"
#include "soma/Session.h"
#include "soma/Train.h"

#include <cmath>
#include <gtest/gtest.h>
#include <sstream>

using namespace soma;
using namespace soma::rt;

namespace {

Program check(const std::string &model, const std::string &settings) {
  return test::checkProgram(model + "\ntrain M { data train = csv(\"x\") loss = cross_entropy(label) " + settings +
                            " }");
}

const char *kModel = "model M { input x: f32[4] dense(5) -> tanh dense(3) }";

std::vector<double> perEpoch(const std::string &settings, int64_t epochs) {
  TrainSpec t = *check(kModel, "optimizer = sgd(lr: 0.1) epochs = " + std::to_string(epochs) + " " + settings).train;
  TrainingState st;
  std::vector<double> lrs;
  for (int64_t e = 1; e <= epochs; ++e)
    lrs.push_back(scheduledLr(t, st, e, 9, 10)); // the last of 10 steps
  return lrs;
}

void expectLrs(const std::vector<double> &actual, const std::vector<double> &expected) {
  ASSERT_EQ(actual.size(), expected.size());
  for (size_t i = 0; i < actual.size(); ++i)
    EXPECT_NEAR(actual[i], expected[i], 1e-12) << "epoch " << i + 1;
}

} // namespace

TEST(LrSchedule, ConstantStepMultiStepExponential) {
  expectLrs(perEpoch("", 3), {0.1, 0.1, 0.1});
  expectLrs(perEpoch("schedule = step(every: 2, gamma: 0.5)", 5), {0.1, 0.1, 0.05, 0.05, 0.025});
  expectLrs(perEpoch("schedule = multistep(milestones: [1, 3])", 4), {0.1, 0.01, 0.01, 0.001});
  expectLrs(perEpoch("schedule = exponential(0.5)", 3), {0.1, 0.05, 0.025});
}

TEST(LrSchedule, CosineAfterWarmup) {
  // 2 warm-up epochs of 10 steps: the last step of epoch 1 is at 10/20 of the rate.
  double pi = std::acos(-1.0);
  std::vector<double> expected = {0.1 * 0.5, 0.1};
  for (int j = 0; j < 4; ++j)
    expected.push_back(0.001 + (0.1 - 0.001) * (1 + std::cos(pi * j / 4)) / 2);
  expectLrs(perEpoch("schedule = cosine(min_lr: 0.001) warmup = 2", 6), expected);
  TrainSpec t = *check(kModel, "optimizer = sgd(lr: 0.1) warmup = 1").train;
  TrainingState st;
  EXPECT_NEAR(scheduledLr(t, st, 1, 0, 4), 0.025, 1e-12); // first step: 1/4 of the rate
}

TEST(LrSchedule, PlateauReducesAfterPatience) {
  TrainSpec t =
      *check(kModel, "optimizer = sgd(lr: 0.1) schedule = plateau(factor: 0.5, patience: 1, min_lr: 0.02)").train;
  TrainingState st;
  std::vector<double> losses = {1.0, 0.9, 0.95, 0.91, 0.92, 0.5, 0.6, 0.7, 0.8, 0.9};
  std::vector<double> lrs;
  for (double l : losses) {
    plateauStep(t, st, l);
    lrs.push_back(scheduledLr(t, st, 2, 0, 1));
  }
  // Better at 1, 2; worse at 3, 4 (two bad epochs > patience 1): halve; worse at 5; better at 6;
  // worse at 7, 8: halve again; then the floor min_lr.
  expectLrs(lrs, {0.1, 0.1, 0.1, 0.05, 0.05, 0.05, 0.05, 0.025, 0.025, 0.02});
}

namespace {

// One SGD step (lr 1) of the lowered training step in the reference evaluator: the parameters
// before and after.
std::pair<std::map<std::string, std::vector<double>>, std::map<std::string, std::vector<double>>>
oneStep(const std::string &model, const std::string &settings) {
  Program p = check(model, settings);
  LoweredModel m = lowerModel(p);
  lowerTraining(m, p);
  EXPECT_EQ(ir::verify(m.train), "");
  std::map<std::string, interp::Tensor> in;
  rt::Rng rng(4);
  for (int i = 0; i < 6 * 4; ++i)
    in[kInputX].data.push_back(rng.uniform() * 4 - 2);
  in[kInputLabel].data = {0, 1, 2, 0, 1, 2};
  in[kInputInvBatch].data = {1.0 / 6};
  in[kInputLr].data = {1.0};
  auto init = test::initialParams(m, 3);
  std::map<std::string, std::vector<double>> before, after;
  for (size_t i = 0; i < m.params.size(); ++i) {
    in[m.params[i].name].data.assign(init[i].begin(), init[i].end());
    before[m.params[i].name] = in[m.params[i].name].data;
  }
  auto out = interp::run(m.train, in, 6);
  for (const ParamInfo &pi : m.params)
    after[pi.name] = out[pi.name].data;
  return {before, after};
}

} // namespace

TEST(Clipping, NormScalesAllGradientsTogether) {
  auto [before, after] = oneStep(kModel, "optimizer = sgd(lr: 1) clip_norm = 0.01");
  double sq = 0;
  for (auto &[name, w] : before)
    for (size_t i = 0; i < w.size(); ++i)
      sq += (after[name][i] - w[i]) * (after[name][i] - w[i]);
  EXPECT_NEAR(std::sqrt(sq), 0.01, 1e-6); // the step is the clipped gradient: norm 0.01
}

TEST(Clipping, ValueClampsEachElement) {
  auto [before, after] = oneStep(kModel, "optimizer = sgd(lr: 1) clip_value = 0.001");
  double largest = 0;
  for (auto &[name, w] : before)
    for (size_t i = 0; i < w.size(); ++i)
      largest = std::max(largest, std::fabs(after[name][i] - w[i]));
  EXPECT_NEAR(largest, 0.001, 1e-12);
}

TEST(LrMult, ZeroFreezesALayer) {
  auto [before, after] = oneStep("model M { input x: f32[4] dense(5, lr_mult: 0) -> tanh dense(3, lr_mult: 2) }",
                                 "optimizer = sgd(lr: 1)");
  EXPECT_EQ(after["dense_1.w"], before["dense_1.w"]);
  EXPECT_EQ(after["dense_1.b"], before["dense_1.b"]);
  EXPECT_NE(after["dense_2.w"], before["dense_2.w"]);
  // The same gradient (the forward pass is the same), twice the plain step.
  auto [b1, plain] = oneStep(kModel, "optimizer = sgd(lr: 1)");
  ASSERT_EQ(b1["dense_2.b"], before["dense_2.b"]);
  for (size_t i = 0; i < plain["dense_2.b"].size(); ++i)
    EXPECT_NEAR(after["dense_2.b"][i] - before["dense_2.b"][i], 2 * (plain["dense_2.b"][i] - b1["dense_2.b"][i]),
                1e-12);
}

TEST(Augment, ShiftsAndFlipsImagesDeterministically) {
  // 200 copies of a 5x5 image with one bright pixel: each comes back with that pixel moved by at
  // most 2 on each axis (or gone off the edge), mirrored about half of the time.
  Dims input{5, 5};
  TrainSpec::Augment a;
  a.shift = 2;
  a.flip = true;
  int64_t n = 200;
  std::vector<float> x(static_cast<size_t>(n * 25), 0.0f);
  for (int64_t r = 0; r < n; ++r)
    x[static_cast<size_t>(r * 25 + 1 * 5 + 1)] = 1; // (1, 1)
  std::vector<float> again = x;
  augmentImages(x.data(), n, input, a, 3, 17);
  augmentImages(again.data(), n, input, a, 3, 17);
  EXPECT_EQ(x, again); // the same seed and step, the same images
  int moved = 0, mirrored = 0;
  for (int64_t r = 0; r < n; ++r) {
    int count = 0;
    for (int y = 0; y < 5; ++y)
      for (int c = 0; c < 5; ++c) {
        float v = x[static_cast<size_t>(r * 25 + y * 5 + c)];
        EXPECT_TRUE(v == 0 || v == 1);
        if (v == 1) {
          ++count;
          bool plain = std::abs(y - 1) <= 2 && std::abs(c - 1) <= 2,
               flipped = std::abs(y - 1) <= 2 && std::abs(c - 3) <= 2;
          EXPECT_TRUE(plain || flipped) << y << "," << c;
          moved += y != 1 || (c != 1 && c != 3);
          mirrored += c >= 3;
        }
      }
    EXPECT_LE(count, 1);
  }
  EXPECT_GT(moved, 100);
  EXPECT_GT(mirrored, 30);
  std::vector<float> other(static_cast<size_t>(n * 25), 0.0f);
  for (int64_t r = 0; r < n; ++r)
    other[static_cast<size_t>(r * 25 + 6)] = 1;
  augmentImages(other.data(), n, input, a, 3, 18);
  EXPECT_NE(x, other); // another step, other shifts
}
