// The generated code's transcendental ops and activations against double precision, over the
// whole float range (every binade of both signs, zero and subnormals): the error relative to the
// true value, in units of float's epsilon, for this machine's vectors and AVX2's. PyTorch's
// vectorized CPU functions are within about 1-4 ulp; so must Soma's be, including where naive
// formulas lose everything (tanh near 0, softplus far below 0, gelu for x < 0, elu near 0).
#include "../common/JitHarness.h"
#include "../common/Programs.h"

#include <cfloat>
#include <cmath>
#include <functional>
#include <gtest/gtest.h>

using namespace soma;

namespace {

// Floats from every binade, both signs, zero and a few subnormals.
std::vector<double> floatRange() {
  std::vector<double> xs;
  for (float sub : {0.0f, 1e-45f, 1e-40f, -1e-42f})
    xs.push_back(sub);
  for (int e = -126; e <= 127; ++e)
    for (double m : {1.0, 1.1, 1.3711, 1.5, 1.75, 1.99})
      for (double sign : {1.0, -1.0})
        xs.push_back(static_cast<double>(static_cast<float>(sign * std::ldexp(m, e))));
  return xs;
}

struct Worst {
  double ulps = 0;
  double at = 0, got = 0, want = 0;
};

// The largest error of `actual` against `exact` (computed in double at the float inputs), in
// float epsilons relative to the exact value, beyond what `allowed` grants at that x. Exact
// values below float's smallest normal may come out anywhere within FLT_MIN of it (flushed to
// zero, say); beyond float's largest, an infinity of the right sign is exact.
Worst worstError(const std::vector<double> &xs, const std::vector<float> &actual,
                 const std::function<double(double)> &exact, const std::function<double(double)> &allowed) {
  Worst w;
  for (size_t i = 0; i < xs.size(); ++i) {
    double want = exact(xs[i]), got = actual[i], err;
    if (std::isnan(want))
      continue;
    if (std::fabs(want) > FLT_MAX)
      err = std::isinf(got) && (got > 0) == (want > 0) ? 0 : INFINITY;
    else if (std::fabs(want) < FLT_MIN)
      err = std::fabs(got - want) <= FLT_MIN ? 0 : INFINITY;
    else
      err = std::fabs(got - want) / std::fabs(want) / FLT_EPSILON;
    err = std::max(0.0, err - allowed(xs[i]));
    if (!(err <= w.ulps) || std::isnan(got)) {
      w = {std::isnan(got) ? INFINITY : err, xs[i], got, want};
      if (std::isnan(got))
        break;
    }
  }
  return w;
}

// x within [lo, hi] (the function's domain).
std::vector<double> domain(double lo, double hi) {
  std::vector<double> xs;
  for (double x : floatRange())
    if (x >= lo && x <= hi)
      xs.push_back(x);
  return xs;
}

// At most maxUlps, besides what `conditioning` grants at x: the error that rounding an
// intermediate argument to float implies for a well-implemented formula.
void expectAccurate(
    const char *what, const ir::Function &f, const std::vector<double> &xs, const std::function<double(double)> &exact,
    double maxUlps, const std::function<double(double)> &conditioning = [](double) { return 0.0; }) {
  std::map<std::string, interp::Tensor> inputs;
  inputs[kInputX].data = xs;
  inputs[kInputLabel].data.assign(xs.size(), 0.0);
  inputs[kInputInvBatch].data = {1.0};
  int64_t batch = static_cast<int64_t>(xs.size());
  for (const char *target : {"native", "x86-64-v3"}) {
    std::map<std::string, interp::Tensor> used;
    for (const ir::Node &n : f.nodes)
      if (n.op == ir::Op::Input)
        used[n.attrs.name] = inputs.at(n.attrs.name);
    std::vector<float> out = test::JitFunction(f, target).run(used, batch).at("out");
    ASSERT_EQ(out.size(), xs.size());
    Worst w = worstError(xs, out, exact, conditioning);
    EXPECT_LE(w.ulps, maxUlps) << what << " on " << target << ": " << w.ulps << " ulp at x = " << w.at << " (got "
                               << w.got << ", exact " << w.want << ")";
  }
}

// One op of the IR on a batch of scalars.
void expectOp(ir::Op op, double lo, double hi, const std::function<double(double)> &exact, double maxUlps = 4) {
  ir::Function f;
  f.name = "math";
  ir::Builder b(f);
  int x = b.input(kInputX, ir::InputRole::Data, {ir::kBatch});
  f.results = {{"out", b.unary(op, x)}};
  expectAccurate(ir::opName(op), f, domain(lo, hi), exact, maxUlps);
}

// An activation layer as the lowering writes it, on a batch of scalars.
void expectLayer(
    const std::string &layer, const std::function<double(double)> &exact, double maxUlps = 4,
    const std::function<double(double)> &conditioning = [](double) { return 0.0; }) {
  LoweredModel m = lowerModel(test::checkProgram("model M { input x: f32[1] " + layer + " }"));
  ir::Function f = m.forward;
  f.results = {{"out", f.results[0].value}};
  expectAccurate(layer.c_str(), f, floatRange(), exact, maxUlps, conditioning);
}

double sigmoid(double x) { return 1 / (1 + std::exp(-x)); }

} // namespace

TEST(MathAccuracy, Ops) {
  expectOp(ir::Op::Exp, -INFINITY, INFINITY, [](double x) { return std::exp(x); });
  expectOp(ir::Op::Expm1, -INFINITY, INFINITY, [](double x) { return std::expm1(x); });
  expectOp(ir::Op::Log, 0, INFINITY, [](double x) { return std::log(x); });
  expectOp(ir::Op::Log1p, -0.99999994, INFINITY, [](double x) { return std::log1p(x); });
  expectOp(
      ir::Op::Sqrt, 0, INFINITY, [](double x) { return std::sqrt(x); }, 1);
  expectOp(ir::Op::Erf, -INFINITY, INFINITY, [](double x) { return std::erf(x); });
  expectOp(ir::Op::Erfc, -INFINITY, INFINITY, [](double x) { return std::erfc(x); });
  expectOp(ir::Op::Tanh, -INFINITY, INFINITY, [](double x) { return std::tanh(x); });
  expectOp(ir::Op::Sigmoid, -INFINITY, INFINITY, sigmoid);
}

TEST(MathAccuracy, Activations) {
  expectLayer("tanh", [](double x) { return std::tanh(x); });
  expectLayer("sigmoid", sigmoid);
  expectLayer("softplus", [](double x) { return std::max(x, 0.0) + std::log1p(std::exp(-std::fabs(x))); });
  // gelu rounds z = -x / sqrt 2 to float (half an ulp), and erfc's relative condition number is
  // 2 z^2 for z >> 1: for x < 0 the exact value moves by up to x^2 / 2 ulp (PyTorch rounds alike).
  expectLayer(
      "gelu", [](double x) { return 0.5 * x * std::erfc(-x / std::sqrt(2.0)); }, 4,
      [](double x) { return x < 0 ? x * x / 2 + 1 : 0; });
  expectLayer("silu", [](double x) { return x * sigmoid(x); });
  expectLayer("elu", [](double x) { return x > 0 ? x : std::expm1(x); });
}
