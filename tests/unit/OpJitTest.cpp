// For every op of Ops.def: the JIT-compiled code computes what the reference evaluator does.
#include "../common/JitHarness.h"
#include "../common/OpCases.h"
#include "codegen/Jit.h"
#include "transforms/Plan.h"

#include <cmath>
#include <gtest/gtest.h>
#include <set>

using namespace soma;

class OpJitTest : public ::testing::TestWithParam<int> {};

TEST_P(OpJitTest, MatchesReferenceEvaluator) {
  ir::Op op = static_cast<ir::Op>(GetParam());
  std::vector<test::OpCase> cases = test::casesFor(op);
  ASSERT_FALSE(cases.empty()) << "op " << ir::opName(op) << " has no test case";
  for (const test::OpCase &c : cases) {
    SCOPED_TRACE(c.label);
    ASSERT_EQ(ir::verify(c.f), "");
    for (int64_t batch : {c.batch, int64_t{1}, int64_t{17}}) {
      // Inputs for other batch sizes: repeat the case's values.
      std::map<std::string, interp::Tensor> inputs;
      for (const auto &[name, t] : c.inputs) {
        int node = c.f.findInput(name);
        interp::Tensor u;
        int64_t n = ir::numElements(c.f.nodes[node].shape, batch);
        for (int64_t i = 0; i < n; ++i)
          u.data.push_back(t.data[i % t.data.size()]);
        inputs[name] = u;
      }
      auto expected = interp::run(c.f, inputs, batch).at("out");
      // This machine's vectors, and AVX2's 8 lanes (other tile, block and lane choices).
      for (const char *target : {"native", "x86-64-v3"}) {
        auto actual = test::JitFunction(c.f, target).run(inputs, batch).at("out");
        ASSERT_EQ(actual.size(), expected.data.size());
        for (size_t i = 0; i < actual.size(); ++i)
          EXPECT_NEAR(actual[i], expected.data[i], c.tolerance * (1 + std::fabs(expected.data[i])))
              << "element " << i << " at batch " << batch << ", target " << target;
      }
    }
  }
}

INSTANTIATE_TEST_SUITE_P(EveryOp, OpJitTest, ::testing::Range(0, ir::kNumOps),
                         [](const ::testing::TestParamInfo<int> &info) {
                           std::string name = ir::opName(static_cast<ir::Op>(info.param));
                           return name;
                         });

// Every strategy of Strategies.def is taken by some case above, on AVX-512's or AVX2's vectors, so
// that each is checked against the reference evaluator.
TEST(OpJit, EveryStrategyIsChecked) {
  std::set<transforms::Strategy> seen;
  for (int op = 0; op < ir::kNumOps; ++op)
    for (const test::OpCase &c : test::casesFor(static_cast<ir::Op>(op)))
      for (const char *target : {"x86-64-v4", "x86-64-v3"}) {
        transforms::Schedule s = transforms::schedule(c.f);
        for (const transforms::KernelPlan &p :
             transforms::planKernels(c.f, s, codegen::machine(*codegen::namedTarget(target))))
          seen.insert(p.strategy);
      }
  std::string missing;
#define STRATEGY(Id, Name, Kind, Summary)                                                                              \
  if (!seen.count(transforms::Strategy::Id))                                                                           \
    missing += std::string(" ") + (Name);
#include "transforms/Strategies.def"
  EXPECT_EQ(missing, "") << "strategies no case reaches";
}
