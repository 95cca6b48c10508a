#include "ir/IR.h"
#include "autodiff/Autodiff.h"
#include "interp/Interp.h"
#include "transforms/Schedule.h"

#include <gtest/gtest.h>
#include <sstream>

using namespace soma;
using namespace soma::ir;

TEST(ShapeRules, MatMulChecksInnerDimensions) {
  Attrs a;
  EXPECT_EQ(inferShape(Op::MatMul, {{kBatch, 3}, {3, 5}}, a).shape, (Shape{kBatch, 5}));
  EXPECT_NE(inferShape(Op::MatMul, {{kBatch, 3}, {4, 5}}, a).error, "");
  a.transA = true;
  EXPECT_EQ(inferShape(Op::MatMul, {{3, kBatch}, {3, 5}}, a).shape, (Shape{kBatch, 5}));
}

TEST(ShapeRules, ElementwiseNeedsEqualShapesOrAScalar) {
  EXPECT_EQ(inferShape(Op::Add, {{2, 3}, {}}, {}).shape, (Shape{2, 3}));
  EXPECT_NE(inferShape(Op::Add, {{2, 3}, {3}}, {}).error, "");
}

TEST(Verifier, RejectsABadShapeAndAForwardReference) {
  Function f;
  Builder b(f);
  int x = b.input("x", InputRole::Data, {2});
  b.unary(Op::Neg, x);
  EXPECT_EQ(verify(f), "");
  f.nodes[1].shape = {3};
  EXPECT_NE(verify(f), "");
  f.nodes[1].shape = {2};
  f.nodes[1].operands = {1};
  EXPECT_NE(verify(f), "");
}

TEST(Printer, PrintsNodesAndResults) {
  Function f;
  f.name = "g";
  Builder b(f);
  int x = b.input("x", InputRole::Data, {kBatch, 2});
  f.results.push_back({"y", b.unary(Op::Exp, x)});
  std::ostringstream os;
  print(f, os);
  EXPECT_EQ(os.str(), "func @g {\n  %0 = input {name = \"x\", role = data} : f32[B, 2]\n  %1 = exp %0 : f32[B, 2]\n"
                      "  return y = %1\n}\n");
}

TEST(Autodiff, UnusedParameterGetsZeroGradient) {
  Function f;
  Builder b(f);
  int x = b.input("x", InputRole::Param, {2});
  int unused = b.input("u", InputRole::Param, {3});
  int loss = b.reduce(Op::ReduceSum, b.binary(Op::Mul, x, x), 1);
  std::vector<int> g = autodiff::appendGradients(f, loss, {x, unused});
  f.results = {{"dx", g[0]}, {"du", g[1]}};
  auto out = interp::run(f, {{"x", {{2}, {1.5, -2}}}, {"u", {{3}, {1, 1, 1}}}}, 1);
  EXPECT_EQ(out["dx"].data, (std::vector<double>{3, -4}));
  EXPECT_EQ(out["du"].data, (std::vector<double>{0, 0, 0}));
}

TEST(Schedule, FusesBiasAndActivationIntoTheMatMul) {
  Function f;
  Builder b(f);
  int x = b.input("x", InputRole::Data, {kBatch, 8});
  int w = b.input("w", InputRole::Param, {8, 4});
  int bias = b.input("b", InputRole::Param, {4});
  int mm = b.matmul(x, w);
  int y = b.unary(Op::Sigmoid, b.binary(Op::Add, mm, b.broadcast(bias, {kBatch, 4}, 1)));
  f.results.push_back({"y", y});
  transforms::Schedule s = transforms::schedule(f);
  ASSERT_EQ(s.kernels.size(), 1u);
  EXPECT_EQ(s.kernels[0].kind, transforms::Kernel::Kind::MatMul);
  EXPECT_EQ(s.kernels[0].product, mm);
  EXPECT_EQ(s.kernels[0].root, y);
  EXPECT_FALSE(s.materialized[mm]);
}

TEST(Schedule, BufferPlanReusesDeadBuffersButNeverLiveOnes) {
  Function f;
  Builder b(f);
  int x = b.input("x", InputRole::Data, {kBatch, 4});
  int a = b.reduce(Op::ReduceSum, b.unary(Op::Exp, x), 2);            // [B]
  int c = b.reduce(Op::ReduceMax, b.broadcast(a, {kBatch, 4}, 2), 2); // reads a
  int d = b.reduce(Op::ReduceSum, b.broadcast(c, {kBatch, 4}, 2), 2); // reads c; a is dead
  int e = b.reduce(Op::ReduceSum, b.broadcast(d, {kBatch, 4}, 2), 2);
  f.results.push_back({"e", e});
  transforms::Schedule s = transforms::schedule(f);
  transforms::BufferPlan p = transforms::planBuffers(f, s, 16);
  auto off = [&](int v) { return p.offset[s.slot[v]]; };
  EXPECT_NE(off(a), off(c)); // a is read while c is written
  EXPECT_NE(off(c), off(d));
  EXPECT_EQ(off(a), off(d)); // a is dead once c exists
  EXPECT_LE(p.arenaFloats, 3 * 16 + 48);
}
