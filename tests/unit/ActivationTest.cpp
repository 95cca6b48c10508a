// Each activation layer, lowered to primitive ops, computes its textbook (PyTorch) formula, also
// far from zero where a naive formula overflows; and its AD-derived slope is the formula's.
#include "../common/Programs.h"
#include "ast/Sema.h"
#include "autodiff/Autodiff.h"
#include "frontend/Parser.h"
#include "interp/Interp.h"
#include "lowering/Lower.h"

#include <cmath>
#include <functional>
#include <gtest/gtest.h>
#include <sstream>

using namespace soma;

namespace {

const std::vector<double> kPoints = {-60, -3, -1, -0.25, 0.3, 1, 2.5, 60};

// Values and slopes of `layer` at `points` (kPoints), from the lowered IR in the reference evaluator.
std::pair<std::vector<double>, std::vector<double>> lowered(const std::string &layer,
                                                            const std::vector<double> &points = kPoints) {
  Program p = test::checkProgram("model M { input x: f32[" + std::to_string(points.size()) + "] " + layer + " }");
  LoweredModel m = lowerModel(p);
  ir::Function f = m.forward;
  ir::Builder b(f);
  int x = f.findInput(kInputX);
  int y = f.results[0].value;
  int loss = b.reduce(ir::Op::ReduceSum, y, 3);
  // Differentiate with respect to the input: treat it as a parameter for AD.
  int dx = autodiff::appendGradients(f, loss, {x})[0];
  f.results = {{"y", y}, {"dx", dx}};
  std::map<std::string, interp::Tensor> in;
  in[kInputX].data = points;
  in[kInputInvBatch].data = {1};
  in[kInputLabel].data = {0};
  auto out = interp::run(f, in, 1);
  return {out["y"].data, out["dx"].data};
}

void expectActivation(const std::string &layer, const std::function<double(double)> &fn) {
  SCOPED_TRACE(layer);
  auto [y, dy] = lowered(layer);
  ASSERT_EQ(y.size(), kPoints.size());
  for (size_t i = 0; i < kPoints.size(); ++i) {
    double x = kPoints[i], h = 1e-6;
    EXPECT_NEAR(y[i], fn(x), 1e-12 * std::max(1.0, std::fabs(fn(x)))) << "at " << x;
    EXPECT_NEAR(dy[i], (fn(x + h) - fn(x - h)) / (2 * h), 1e-6) << "slope at " << x;
  }
}

double sigmoid(double x) { return 1 / (1 + std::exp(-x)); }

} // namespace

TEST(Activation, LeakyRelu) {
  expectActivation("leaky_relu", [](double x) { return x > 0 ? x : 0.01 * x; });
  expectActivation("leaky_relu(alpha: 0.2)", [](double x) { return x > 0 ? x : 0.2 * x; });
}
TEST(Activation, Elu) {
  expectActivation("elu", [](double x) { return x > 0 ? x : std::exp(x) - 1; });
  expectActivation("elu(0.5)", [](double x) { return x > 0 ? x : 0.5 * (std::exp(x) - 1); });
}
TEST(Activation, Gelu) {
  expectActivation("gelu", [](double x) { return 0.5 * x * (1 + std::erf(x / std::sqrt(2.0))); });
}
TEST(Activation, Silu) {
  expectActivation("silu", [](double x) { return x * sigmoid(x); });
}
TEST(Activation, SoftplusIsStableFarFromZero) {
  expectActivation("softplus",
                   [](double x) { return x > 30 ? x + std::log1p(std::exp(-x)) : std::log1p(std::exp(x)); });
}
TEST(Activation, Identity) {
  expectActivation("identity", [](double x) { return x; });
}
TEST(Activation, ClassicOnes) {
  expectActivation("sigmoid", sigmoid);
  expectActivation("tanh", [](double x) { return std::tanh(x); });
  expectActivation("relu", [](double x) { return x > 0 ? x : 0; });
}
TEST(Activation, LogSoftmaxIsLogOfSoftmax) {
  auto [ls, dls] = lowered("log_softmax");
  auto [s, ds] = lowered("softmax");
  double sum = 0;
  for (size_t i = 0; i < ls.size(); ++i) {
    EXPECT_NEAR(ls[i], std::log(s[i] == 0 ? 1e-300 : s[i]), s[i] < 1e-200 ? 1e-3 * std::fabs(ls[i]) : 1e-12);
    EXPECT_TRUE(std::isfinite(ls[i])) << "log_softmax must not overflow at " << kPoints[i];
    sum += std::exp(ls[i]);
  }
  EXPECT_NEAR(sum, 1.0, 1e-12);
}

// At exactly 0 (where batchnorm's shift starts, and a constant input puts it), each activation's
// slope is PyTorch's: the smooth side's for elu and softplus, a for leaky_relu, 0 for relu.
TEST(Activation, SlopeAtZeroIsPyTorchs) {
  const std::pair<const char *, double> slopes[] = {{"leaky_relu", 0.01}, {"leaky_relu(alpha: 0.2)", 0.2},
                                                    {"elu", 1.0},         {"elu(0.5)", 0.5},
                                                    {"softplus", 0.5},    {"relu", 0.0},
                                                    {"gelu", 0.5},        {"silu", 0.5},
                                                    {"tanh", 1.0},        {"sigmoid", 0.25}};
  for (auto [layer, slope] : slopes) {
    auto [y, dy] = lowered(layer, {0.0});
    EXPECT_NEAR(dy[0], slope, 1e-12) << layer;
  }
}
