// Each loss, lowered to primitive ops, computes its textbook (PyTorch) value on a fixed batch,
// including far from zero where a naive formula overflows; and the JIT step agrees with the
// reference for each.
#include "../common/JitHarness.h"
#include "../common/Programs.h"
#include "ast/Sema.h"
#include "frontend/Parser.h"
#include "interp/Interp.h"
#include "lowering/Lower.h"

#include <cmath>
#include <functional>
#include <gtest/gtest.h>
#include <sstream>

using namespace soma;

namespace {

// A model whose outputs are its inputs (identity), so the loss sees chosen values.
double lossOf(const std::string &lastLayer, const std::string &loss, const std::vector<double> &outputs,
              const std::vector<double> &labels, int64_t k) {
  Program p = test::checkProgram("model M { input x: f32[" + std::to_string(k) + "] " + lastLayer + " }\n" +
                                 "train M { data train = csv(\"x\") loss = " + loss + " optimizer = sgd(lr: 1) }");
  LoweredModel m = lowerModel(p);
  std::map<std::string, interp::Tensor> in;
  in[kInputX].data = outputs;
  in[kInputLabel].data = labels;
  in[kInputInvBatch].data = {1.0 / static_cast<double>(labels.size())};
  return interp::run(m.forward, in, static_cast<int64_t>(labels.size()))["loss"].data[0];
}

const std::vector<double> kOut = {0.3, -1.2, 2.0, 0.5, 40.0, -35.0};

} // namespace

TEST(Loss, MseMaeHuberOnOneHot) {
  std::vector<double> labels = {2, 0};
  std::vector<double> t = {0, 0, 1, 1, 0, 0};
  double mse = 0, mae = 0, huber = 0;
  for (size_t i = 0; i < kOut.size(); ++i) {
    double d = kOut[i] - t[i], a = std::fabs(d);
    mse += d * d;
    mae += a;
    huber += a <= 1.5 ? 0.5 * d * d : 1.5 * (a - 0.75);
  }
  EXPECT_NEAR(lossOf("identity", "mse(one_hot(label, 3))", kOut, labels, 3), mse / 6, 1e-12);
  EXPECT_NEAR(lossOf("identity", "mae(one_hot(label, 3))", kOut, labels, 3), mae / 6, 1e-12);
  EXPECT_NEAR(lossOf("identity", "huber(one_hot(label, 3), delta: 1.5)", kOut, labels, 3), huber / 6, 1e-12);
}

TEST(Loss, CrossEntropyWithClassWeights) {
  std::vector<double> labels = {2, 0};
  std::vector<double> w = {0.5, 1, 3};
  double num = 0, den = 0, plain = 0;
  for (int r = 0; r < 2; ++r) {
    const double *z = &kOut[static_cast<size_t>(r) * 3];
    double mx = std::max({z[0], z[1], z[2]});
    double lse = mx + std::log(std::exp(z[0] - mx) + std::exp(z[1] - mx) + std::exp(z[2] - mx));
    int y = static_cast<int>(labels[static_cast<size_t>(r)]);
    double nll = lse - z[y];
    plain += nll / 2;
    num += w[static_cast<size_t>(y)] * nll;
    den += w[static_cast<size_t>(y)];
  }
  EXPECT_NEAR(lossOf("identity", "cross_entropy(label)", kOut, labels, 3), plain, 1e-12);
  EXPECT_NEAR(lossOf("softmax", "cross_entropy(label)", kOut, labels, 3), plain, 1e-12);
  EXPECT_NEAR(lossOf("identity", "cross_entropy(label, weight: [0.5, 1, 3])", kOut, labels, 3), num / den, 1e-12);
}

TEST(Loss, BinaryCrossEntropyIsStableForLargeLogits) {
  std::vector<double> z = {0.3, -2.0, 40.0, -35.0, 80.0};
  std::vector<double> labels = {1, 0, 0, 1, 1};
  double expected = 0;
  for (size_t i = 0; i < z.size(); ++i) { // log(1 + e^z) - z t, computed stably here too
    double softplus = z[i] > 0 ? z[i] + std::log1p(std::exp(-z[i])) : std::log1p(std::exp(z[i]));
    expected += (softplus - z[i] * labels[i]) / 5;
  }
  double fromSigmoid = lossOf("sigmoid", "binary_cross_entropy(label)", z, labels, 1);
  double fromLogits = lossOf("identity", "binary_cross_entropy(label)", z, labels, 1);
  EXPECT_TRUE(std::isfinite(fromSigmoid));
  EXPECT_NEAR(fromSigmoid, expected, 1e-12);
  EXPECT_NEAR(fromLogits, expected, 1e-12);
}

TEST(Loss, WeightedTermsOnSeveralOutputs) {
  // The main output is x itself (identity); `aux` is 2x. loss = ce(main) + 0.5 mse(aux).
  std::vector<double> labels = {2, 0};
  double main = lossOf("identity", "cross_entropy(label)", kOut, labels, 3);
  std::vector<double> twice;
  for (double v : kOut)
    twice.push_back(2 * v);
  double aux = lossOf("identity", "mse(one_hot(label, 3))", twice, labels, 3);
  std::string errs;
  std::optional<Program> p = test::tryCheckProgram(R"(model M { input x: f32[3]  aux = x * 2  y = identity(x) }
    train M { data train = csv("x") loss = cross_entropy(label) + 0.5 * mse(one_hot(label, 3), output: aux)
              optimizer = sgd(lr: 1) })",
                                                   errs);
  ASSERT_TRUE(p) << errs;
  ASSERT_EQ(p->train->losses.size(), 2u);
  LoweredModel m = lowerModel(*p);
  std::map<std::string, interp::Tensor> in;
  in[kInputX].data = kOut;
  in[kInputLabel].data = labels;
  in[kInputInvBatch].data = {0.5};
  EXPECT_NEAR(interp::run(m.forward, in, 2)["loss"].data[0], main + 0.5 * aux, 1e-12);
}
