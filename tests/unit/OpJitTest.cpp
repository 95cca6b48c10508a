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
    // Inputs at the case's batch, at 1 and at 17 (the case's values repeated), and the results
    // the reference evaluator gives.
    struct Run {
      int64_t batch;
      std::map<std::string, interp::Tensor> inputs;
      interp::Tensor expected;
    };
    std::vector<Run> runs;
    for (int64_t batch : {c.batch, int64_t{1}, int64_t{17}}) {
      Run r{batch, {}, {}};
      for (const auto &[name, t] : c.inputs) {
        interp::Tensor u;
        int64_t n = ir::numElements(c.f.nodes[c.f.findInput(name)].shape, batch);
        for (int64_t i = 0; i < n; ++i)
          u.data.push_back(t.data[i % t.data.size()]);
        r.inputs[name] = u;
      }
      r.expected = interp::run(c.f, r.inputs, batch).at("out");
      runs.push_back(std::move(r));
    }
    // This machine's vectors, and AVX2's 8 lanes (other tile, block and lane choices), each
    // compiled once.
    for (const char *target : {"native", "x86-64-v3"}) {
      test::JitFunction jit(c.f, target);
      for (const Run &r : runs) {
        auto actual = jit.run(r.inputs, r.batch).at("out");
        ASSERT_EQ(actual.size(), r.expected.data.size());
        for (size_t i = 0; i < actual.size(); ++i)
          EXPECT_NEAR(actual[i], r.expected.data[i], c.tolerance * (1 + std::fabs(r.expected.data[i])))
              << "element " << i << " at batch " << r.batch << ", target " << target;
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
