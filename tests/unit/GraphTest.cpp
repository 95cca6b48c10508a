// The model language's graphs: named values, broadcasting, tensor functions and user-defined
// layers compute what they say (forward values in the reference evaluator against hand-computed
// ones), and initializers draw from the stated distributions.
#include "../common/JitHarness.h"
#include "../common/Programs.h"
#include "ast/Sema.h"
#include "frontend/Parser.h"
#include "interp/Interp.h"
#include "lowering/Lower.h"
#include "soma/Session.h"

#include <cmath>
#include <gtest/gtest.h>
#include <sstream>

using namespace soma;

namespace {

std::optional<Program> check(const std::string &text, std::string *errors = nullptr) {
  std::string errs;
  std::optional<Program> p = test::tryCheckProgram(text, errs);
  if (errors)
    *errors = errs;
  else
    EXPECT_TRUE(p) << errs;
  return p;
}

// The model's output for one sample `x`, with parameters set by name (others at their init).
std::vector<double> forward(const std::string &text, const std::vector<double> &x,
                            const std::map<std::string, std::vector<double>> &params = {}) {
  std::optional<Program> p = check(text);
  if (!p)
    return {};
  LoweredModel m = lowerModel(*p);
  EXPECT_EQ(ir::verify(m.forward), "");
  std::map<std::string, interp::Tensor> in;
  in[kInputX].data = x;
  in[kInputLabel].data = {0};
  in[kInputInvBatch].data = {1};
  auto init = test::initialParams(m, 1);
  for (size_t i = 0; i < m.params.size(); ++i) {
    auto it = params.find(m.params[i].name);
    in[m.params[i].name].data = it != params.end() ? it->second : std::vector<double>(init[i].begin(), init[i].end());
  }
  return interp::run(m.forward, in, 1)["output"].data;
}

void expectValues(const std::vector<double> &actual, const std::vector<double> &expected) {
  ASSERT_EQ(actual.size(), expected.size());
  for (size_t i = 0; i < actual.size(); ++i)
    EXPECT_NEAR(actual[i], expected[i], 1e-12) << "element " << i;
}

} // namespace

TEST(Graph, ArithmeticAndBroadcasting) {
  // x is [2, 3]; a parameter [3] broadcasts over rows, a sum over axis 1 is [2], reshaped to
  // [2, 1] it broadcasts over columns.
  const char *text = R"(layer Affine(x) {
                          param s: [3] = ones
                          return x * s + 1
                        }
                        model M { input x: f32[2, 3]
                          a = Affine(x)
                          r = reshape(sum(x, axis: 1), [2, 1])
                          y = a - r / 2 }
  )";
  std::vector<double> x = {1, 2, 3, 4, 5, 6};
  std::vector<double> s = {1, 10, 100};
  std::vector<double> expected;
  for (int i = 0; i < 2; ++i) {
    double row = x[3 * i] + x[3 * i + 1] + x[3 * i + 2];
    for (int j = 0; j < 3; ++j)
      expected.push_back(x[3 * i + j] * s[j] + 1 - row / 2);
  }
  expectValues(forward(text, x, {{"affine_1.s", s}}), expected);
}

TEST(Graph, ReductionsTransposeConcat) {
  std::vector<double> x = {1, -2, 3, 4, 5, -6};
  // transpose [2, 3] -> [3, 2]; mean over axis 1 -> [3]; max over everything -> []; concat.
  expectValues(forward("model M { input x: f32[2, 3]  t = transpose(x)  y = flatten(t) }", x), {1, 4, -2, 5, 3, -6});
  expectValues(forward("model M { input x: f32[2, 3]  y = mean(x, axis: 0) }", x), {2.5, 1.5, -1.5});
  expectValues(forward("model M { input x: f32[2, 3]  y = reshape(max(x), [1]) }", x), {5});
  expectValues(forward("model M { input x: f32[2, 3]  y = concat(x, abs(x), axis: 0) -> flatten }", x),
               {1, -2, 3, 4, 5, -6, 1, 2, 3, 4, 5, 6});
  expectValues(forward("model M { input x: f32[2, 3]  y = concat(x, -x) -> flatten }", x),
               {1, -2, 3, -1, 2, -3, 4, 5, -6, -4, -5, 6});
  expectValues(forward("model M { input x: f32[2, 3]  y = maximum(x, 0) - minimum(x, 0) -> flatten }", x),
               {1, 2, 3, 4, 5, 6});
}

TEST(Graph, ResidualAndUserLayerWithHyperParameters) {
  // h = x @ w (w identity * k) + x: with k a formal of the layer.
  const char *text = R"(layer Scaled(x, k: 2) {
                          n = dim(x)
                          param w: [n, n] = zeros
                          return x @ w + k * x
                        }
                        model M { input x: f32[3]
                          h = Scaled(x, k: 3)
                          y = h + x }
  )";
  std::vector<double> w = {1, 0, 0, 0, 1, 0, 0, 0, 1};
  expectValues(forward(text, {1, 2, 3}, {{"scaled_1.w", w}}), {5, 10, 15});
  // The chain form, with the default hyper-parameter, twice: two instances, two parameters.
  std::optional<Program> p = check(R"(layer Scaled(x, k: 2) { param w: [dim(x), dim(x)] = zeros  return x @ w + k * x }
                                      model M { input x: f32[3]  Scaled -> Scaled })");
  ASSERT_TRUE(p);
  ASSERT_EQ(p->model.params.size(), 2u);
  EXPECT_EQ(p->model.params[1].name, "scaled_2.w");
  expectValues(forward(R"(layer Scaled(x, k: 2) { param w: [dim(x), dim(x)] = zeros  return x @ w + k * x }
                          model M { input x: f32[3]  Scaled -> Scaled })",
                       {1, 2, 3}),
               {4, 8, 12});
}

TEST(Graph, ErrorsNameWhatIsWrong) {
  std::string errors;
  EXPECT_FALSE(check("model M { input x: f32[3]  y = x @ x }", &errors));
  EXPECT_NE(errors.find("'@'"), std::string::npos) << errors;
  EXPECT_FALSE(check("model M { input x: f32[3]  y = concat(x, reshape(x, [3, 1])) }", &errors));
  EXPECT_NE(errors.find("[OperandShapes]"), std::string::npos) << errors;
  EXPECT_FALSE(check("model M { input x: f32[3]  y = transpose(x, [1, 0]) }", &errors));
  EXPECT_NE(errors.find("permutation"), std::string::npos) << errors;
  EXPECT_FALSE(check("model M { input x: f32[3]  y = sum(x, axis: 2) }", &errors));
  EXPECT_NE(errors.find("axis"), std::string::npos) << errors;
  EXPECT_FALSE(check("layer L(x) { param w: [dim(x), 0] return x }  model M { input x: f32[3]  L }", &errors));
  EXPECT_NE(errors.find("positive integer"), std::string::npos) << errors;
  EXPECT_FALSE(check("layer L(x, k) { return x * k }  model M { input x: f32[3]  y = L(x) }", &errors));
  EXPECT_NE(errors.find("'L' needs argument 'k' [MissingArgument]"), std::string::npos) << errors;
  EXPECT_FALSE(check("layer L(x, k: 1) { return x * k }  model M { input x: f32[3]  y = L(x, q: 2) }", &errors));
  EXPECT_NE(errors.find("'L' has no argument named 'q'; valid arguments: x, k"), std::string::npos) << errors;
  EXPECT_FALSE(check("model M { input x: f32[3]  y = dense(x, 4, init: he_nromal) }", &errors));
  EXPECT_NE(errors.find("did you mean 'he_normal'"), std::string::npos) << errors;
}

TEST(Initializers, DrawFromTheirDistributions) {
  std::optional<Program> p = check(R"(layer L(x) {
      param a: [400, 100] = he_normal
      param b: [400, 100] = glorot_uniform
      param c: [400, 100] = normal(1, 0.5)
      param d: [100] = constant(0.25)
      param e: [100]
      param f: [400, 100] = uniform(-3, -1)
      return x
    }
    model M { input x: f32[3]  L -> dense(2, init: zeros, bias_init: ones) })");
  ASSERT_TRUE(p);
  LoweredModel m = lowerModel(*p);
  auto init = test::initialParams(m, 7);
  auto stats = [&](size_t i) {
    double sum = 0, sq = 0, lo = 1e9, hi = -1e9;
    for (float v : init[i]) {
      sum += v;
      sq += double(v) * v;
      lo = std::min(lo, double(v));
      hi = std::max(hi, double(v));
    }
    double n = static_cast<double>(init[i].size()), mean = sum / n;
    return std::array<double, 4>{mean, std::sqrt(sq / n - mean * mean), lo, hi};
  };
  auto he = stats(0); // N(0, sqrt(2 / 400))
  EXPECT_NEAR(he[0], 0, 0.005);
  EXPECT_NEAR(he[1], std::sqrt(2.0 / 400), 0.003);
  auto glorot = stats(1); // U(+-sqrt(6 / 500))
  EXPECT_NEAR(glorot[1], std::sqrt(6.0 / 500) / std::sqrt(3.0), 0.003);
  EXPECT_LE(glorot[3], std::sqrt(6.0 / 500));
  auto normal = stats(2);
  EXPECT_NEAR(normal[0], 1, 0.01);
  EXPECT_NEAR(normal[1], 0.5, 0.01);
  EXPECT_EQ(stats(3)[2], 0.25f);
  EXPECT_EQ(stats(3)[3], 0.25f);
  EXPECT_EQ(stats(4)[3], 0); // a vector's default: zeros
  auto u = stats(5);
  EXPECT_GE(u[2], -3);
  EXPECT_LE(u[3], -1);
  EXPECT_NEAR(u[0], -2, 0.01);
  EXPECT_EQ(stats(6)[3], 0); // dense_1.w: zeros
  EXPECT_EQ(stats(7)[2], 1); // dense_1.b: ones
}

TEST(Graph, HyperParametersMayBeExpressions) {
  std::optional<Program> p = check(R"(layer Block(x, hidden: 8) {
                                        h = dense(x, hidden * 2 - 1) -> relu
                                        return x + dense(h, dim(x))
                                      }
                                      model M { input x: f32[5]  Block(hidden: 3) })");
  ASSERT_TRUE(p);
  ASSERT_EQ(p->model.params.size(), 4u);
  EXPECT_EQ(p->model.params[0].name, "block_1.dense_1.w");
  EXPECT_EQ(p->model.params[0].dims, (Dims{5, 5}));
  EXPECT_EQ(p->model.params[2].dims, (Dims{5, 5}));
}

TEST(Graph, SeveralInputsSplitTheFeatures) {
  // Each sample's 2 + 4 features: the first two are `a`, the next four the 2x2 `b`.
  const char *text = R"(model M { input a: f32[2]  input b: f32[2, 2]
                          y = concat(a * 10, sum(b, axis: 1)) })";
  std::optional<Program> p = check(text);
  ASSERT_TRUE(p);
  EXPECT_EQ(p->model.inputDims, (Dims{6}));
  expectValues(forward(text, {1, 2, 3, 4, 5, 6}), {10, 20, 7, 11});
  std::string errors;
  EXPECT_FALSE(check("model M { input a: f32[2]  input a: f32[1]  y = a }", &errors));
  EXPECT_NE(errors.find("[DuplicateInput]"), std::string::npos) << errors;
}

TEST(Graph, AChainStatementMayNameItsInput) {
  // `dense(h, 2)` on its own line reads h, not the previous statement's value.
  std::optional<Program> p = check(R"(model M { input x: f32[3]
                                        h = dense(x, 4)
                                        g = dense(x, 5)
                                        dense(h, 2) -> relu })");
  ASSERT_TRUE(p);
  const GraphNode &out = p->model.nodes[static_cast<size_t>(p->model.output)];
  const GraphNode &dense = p->model.nodes[static_cast<size_t>(out.args[0])];
  EXPECT_EQ(dense.layer.in, (Dims{4}));
}
