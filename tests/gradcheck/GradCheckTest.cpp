// Finite-difference check of every op in Ops.def: for loss = sum(op(inputs) * r) with a random
// r, the derived gradient of each input equals the central difference, computed in double
// precision by the reference evaluator. Piecewise-constant ops (step, eq, one_hot) must derive
// a zero gradient, which is what the differences give away from their jumps.
#include "../common/OpCases.h"
#include "autodiff/Autodiff.h"
#include "soma/Data.h"

#include <cmath>
#include <gtest/gtest.h>

using namespace soma;

class GradCheck : public ::testing::TestWithParam<int> {};

TEST_P(GradCheck, DerivedGradientMatchesFiniteDifferences) {
  ir::Op op = static_cast<ir::Op>(GetParam());
  std::vector<test::OpCase> cases = test::casesFor(op);
  ASSERT_FALSE(cases.empty()) << "op " << ir::opName(op) << " has no test case";
  for (test::OpCase c : cases) {
    if (!c.gradcheck)
      continue;
    SCOPED_TRACE(c.label);
    ir::Function &f = c.f;
    ir::Builder b(f);
    int out = f.results[0].value;
    const ir::Shape os = f.nodes[out].shape; // a copy: adding nodes reallocates
    int r = b.input("r", ir::InputRole::Data, os);
    soma::rt::Rng rng(9);
    interp::Tensor rt;
    for (int64_t i = 0; i < ir::numElements(os, c.batch); ++i)
      rt.data.push_back(rng.uniform() * 2 - 1);
    c.inputs["r"] = rt;
    int prod = b.binary(ir::Op::Mul, out, r);
    int loss = os.empty() ? prod : b.reduce(ir::Op::ReduceSum, prod, (1u << os.size()) - 1);
    std::vector<int> wrt;
    std::vector<std::string> names;
    for (int in : f.inputs())
      if (f.nodes[in].attrs.role == ir::InputRole::Param) {
        wrt.push_back(in);
        names.push_back(f.nodes[in].attrs.name);
      }
    if (wrt.empty()) { // a constant: nothing to differentiate
      EXPECT_EQ(ir::opArity(op), 0);
      continue;
    }
    std::vector<int> grads = autodiff::appendGradients(f, loss, wrt);
    ASSERT_EQ(ir::verify(f), "");
    f.results = {{"loss", loss}};
    for (size_t i = 0; i < grads.size(); ++i)
      f.results.push_back({"d" + names[i], grads[i]});
    auto derived = interp::run(f, c.inputs, c.batch);
    for (const std::string &name : names) {
      interp::Tensor &x = c.inputs[name];
      for (size_t j = 0; j < x.data.size(); ++j) {
        double saved = x.data[j], h = 1e-6;
        x.data[j] = saved + h;
        double up = interp::run(f, c.inputs, c.batch)["loss"].data[0];
        x.data[j] = saved - h;
        double down = interp::run(f, c.inputs, c.batch)["loss"].data[0];
        x.data[j] = saved;
        double numeric = (up - down) / (2 * h), analytic = derived["d" + name].data[j];
        EXPECT_NEAR(analytic, numeric, 1e-6 + 1e-5 * std::fabs(numeric)) << name << "[" << j << "]";
      }
    }
  }
}

INSTANTIATE_TEST_SUITE_P(EveryOp, GradCheck, ::testing::Range(0, ir::kNumOps),
                         [](const ::testing::TestParamInfo<int> &info) {
                           return std::string(ir::opName(static_cast<ir::Op>(info.param)));
                         });

// Tied maxima share the gradient: max over four copies of p has slope 1 in p, not 4 (this is
// what a bias under max-pooling of a constant image region sees).
TEST(GradCheckTies, TiedMaximaShareTheGradient) {
  ir::Function f;
  ir::Builder b(f);
  int p = b.input("p", ir::InputRole::Param, {});
  int copies = b.broadcast(p, {2, 2}, 0b11);
  int loss = b.reduce(ir::Op::ReduceMax, copies, 0b11);
  int dp = autodiff::appendGradients(f, loss, {p})[0];
  f.results = {{"dp", dp}};
  ASSERT_EQ(ir::verify(f), "");
  interp::Tensor pv;
  pv.data = {0.5};
  EXPECT_DOUBLE_EQ(interp::run(f, {{"p", pv}}, 1)["dp"].data[0], 1.0);
}
