// Strided convolutions are lowered to stride-1 ones over the input's phases (lowering's
// `convolution`): in the reference evaluator they compute exactly what the strided conv2d op
// does, for kernels smaller than, equal to and larger than the stride, with and without padding
// and at image sizes the stride does not divide; and the JIT-compiled code agrees, both ways.
#include "../common/JitHarness.h"
#include "lowering/Lower.h"

#include <cmath>
#include <gtest/gtest.h>

using namespace soma;

namespace {

struct ConvShape {
  int64_t c, h, w, f, k, stride, padding;
};

std::vector<double> values(size_t n, double salt) {
  std::vector<double> v(n);
  for (size_t i = 0; i < n; ++i)
    v[i] = std::sin(static_cast<double>(i) * 0.37 + salt);
  return v;
}

} // namespace

TEST(ConvLowering, PhasesComputeTheStridedConvolution) {
  const ConvShape shapes[] = {{3, 32, 32, 8, 3, 2, 1}, {2, 9, 7, 3, 3, 2, 0},   {4, 8, 8, 5, 1, 2, 0},
                              {3, 11, 11, 4, 7, 2, 3}, {2, 10, 13, 3, 2, 2, 1}, {3, 12, 12, 2, 3, 3, 1},
                              {2, 15, 15, 3, 5, 4, 2}, {1, 5, 5, 2, 5, 3, 0},   {2, 6, 6, 3, 2, 3, 2}};
  for (const ConvShape &s : shapes) {
    SCOPED_TRACE(::testing::Message() << "C " << s.c << " " << s.h << "x" << s.w << " F " << s.f << " k " << s.k
                                      << " stride " << s.stride << " padding " << s.padding);
    ir::Function f;
    f.name = "conv";
    ir::Builder b(f);
    int x = b.input("x", ir::InputRole::Data, {ir::kBatch, s.c, s.h, s.w});
    int w = b.input("w", ir::InputRole::Param, {s.f, s.c, s.k, s.k});
    int direct = b.conv2d(x, w, s.stride, s.padding);
    int phased = convolution(b, x, w, s.stride, s.padding);
    ASSERT_EQ(b.shape(direct), b.shape(phased));
    f.results = {{"direct", direct}, {"out", phased}};
    ASSERT_EQ(ir::verify(f), "");
    int64_t batch = 2;
    std::map<std::string, interp::Tensor> in;
    in["x"].data = values(static_cast<size_t>(batch * s.c * s.h * s.w), 0.1);
    in["w"].data = values(static_cast<size_t>(s.f * s.c * s.k * s.k), 2.3);
    auto ref = interp::run(f, in, batch);
    const std::vector<double> &want = ref.at("direct").data, &got = ref.at("out").data;
    ASSERT_EQ(want.size(), got.size());
    for (size_t i = 0; i < want.size(); ++i)
      ASSERT_NEAR(got[i], want[i], 1e-12) << "element " << i;
    for (const char *target : {"native", "x86-64-v3"}) {
      std::vector<float> jit = test::JitFunction(f, target).run(in, batch).at("out");
      ASSERT_EQ(jit.size(), want.size());
      for (size_t i = 0; i < want.size(); ++i)
        ASSERT_NEAR(jit[i], want[i], 1e-4 * (1 + std::fabs(want[i]))) << "element " << i << " on " << target;
    }
  }
}
