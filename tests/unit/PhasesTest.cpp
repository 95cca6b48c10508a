// Strided convolutions the target has no kernel for run as stride-1 ones over the input's phases
// (transforms/Phases.h): in the reference evaluator all three forms (the convolution, its data
// and its filter gradient) compute exactly what the strided ops do, for kernels smaller than,
// equal to and larger than the stride, with and without padding and at image sizes the stride
// does not divide; and the JIT-compiled code agrees, both ways.
#include "transforms/Phases.h"
#include "../common/JitHarness.h"
#include "codegen/Jit.h"

#include <fmt/format.h>
#include <iterator>
#include <set>

#include <cmath>
#include <gtest/gtest.h>

using namespace soma;

namespace {

struct ConvShape {
  int64_t c, h, w, f, k, stride, padding, kw = 0, groups = 1; // kw: the filter's width when not k
};

std::vector<double> values(size_t n, double salt) {
  std::vector<double> v(n);
  for (size_t i = 0; i < n; ++i)
    v[i] = std::sin(static_cast<double>(i) * 0.37 + salt);
  return v;
}

const ConvShape kShapes[] = {{3, 32, 32, 8, 3, 2, 1},
                             {2, 9, 7, 3, 3, 2, 0},
                             {4, 8, 8, 5, 1, 2, 0},
                             {3, 11, 11, 4, 7, 2, 3},
                             {2, 10, 13, 3, 2, 2, 1},
                             {3, 12, 12, 2, 3, 3, 1},
                             {2, 15, 15, 3, 5, 4, 2},
                             {1, 5, 5, 2, 5, 3, 0},
                             {2, 6, 6, 3, 2, 3, 2},
                             // Whole vectors of filters (or of channels, for the data gradient),
                             // narrow rows: the strided kernels' own shapes.
                             {3, 9, 9, 16, 3, 2, 1},
                             {5, 11, 10, 16, 3, 2, 0},
                             {4, 13, 13, 32, 5, 3, 2},
                             {16, 8, 8, 16, 1, 2, 0},
                             {8, 7, 7, 16, 2, 2, 1},
                             {2, 12, 12, 16, 3, 3, 1},
                             {16, 9, 9, 16, 3, 2, 1},
                             {16, 10, 7, 32, 4, 2, 1},
                             {16, 15, 15, 16, 5, 3, 2},
                             {32, 8, 8, 16, 3, 2, 1},
                             {16, 6, 6, 16, 3, 2, 0},
                             {16, 16, 16, 8, 3, 2, 1},
                             // wide rows: 15 outputs of a vector's 16 (AVX2: 2 vectors, in blocks
                             // of columns), and rows of 30 and 60 in blocks of columns
                             {8, 32, 30, 16, 3, 2, 1},
                             {16, 64, 60, 16, 3, 2, 1},
                             // the data gradient of 256 filters: 144 KB of packed weights
                             {16, 9, 9, 256, 3, 2, 1},
                             // rectangular filters: 1x3, 3x2 and 5x1
                             {3, 9, 11, 4, 1, 2, 0, 3},
                             {2, 10, 9, 16, 3, 2, 1, 2},
                             {16, 9, 12, 16, 5, 3, 2, 1},
                             // groups: of several channels (over phases, which keep each group's
                             // channels together), and depthwise (its own kernels, at any stride)
                             {4, 9, 9, 6, 3, 2, 1, 0, 2},
                             {6, 11, 10, 9, 3, 3, 1, 2, 3},
                             {4, 9, 9, 8, 3, 2, 1, 0, 4},
                             {5, 12, 37, 5, 5, 2, 2, 3, 5},
                             {3, 10, 11, 6, 2, 3, 0, 0, 3}};

// The three forms of one strided convolution, each directly and over phases.
struct Forms {
  ir::Function f;
  int direct, dataDirect, filterDirect;
};

Forms build(const ConvShape &s) {
  Forms out;
  ir::Function &f = out.f;
  f.name = "conv";
  ir::Builder b(f);
  int x = b.input("x", ir::InputRole::Data, {ir::kBatch, s.c, s.h, s.w});
  int w = b.input("w", ir::InputRole::Param, {s.f, s.c / s.groups, s.k, s.kw ? s.kw : s.k});
  out.direct = b.conv2d(x, w, {s.stride, s.padding, {1, 1}, s.groups});
  int phased = transforms::phasedConv(b, x, w, {s.stride, s.padding, {1, 1}, s.groups});
  EXPECT_EQ(b.shape(out.direct), b.shape(phased));
  int dy = b.input("dy", ir::InputRole::Data, b.shape(out.direct));
  out.dataDirect = b.conv2dBackData(dy, w, b.shape(x), {s.stride, s.padding, {1, 1}, s.groups});
  int dataPhased = transforms::phasedConvBackData(b, dy, w, b.shape(x), {s.stride, s.padding, {1, 1}, s.groups});
  out.filterDirect = b.conv2dBackFilter(x, dy, b.shape(w), {s.stride, s.padding, {1, 1}, s.groups});
  int filterPhased = transforms::phasedConvBackFilter(b, x, dy, b.shape(w), {s.stride, s.padding, {1, 1}, s.groups});
  f.results = {{"direct", out.direct},
               {"out", phased},
               {"data.direct", out.dataDirect},
               {"data.phased", dataPhased},
               {"filter.direct", out.filterDirect},
               {"filter.phased", filterPhased}};
  return out;
}

// The plans of the direct strided ops on `target`: their own kernels where stridedKernel says so,
// else the direct loops.
std::set<transforms::Strategy> stridedPlans(const Forms &forms, const ConvShape &s, const char *target) {
  transforms::Machine m = codegen::machine(*codegen::namedTarget(target));
  transforms::Schedule schedule = transforms::schedule(forms.f);
  std::vector<transforms::KernelPlan> plans = transforms::planKernels(forms.f, schedule, m);
  std::set<transforms::Strategy> own;
  for (size_t k = 0; k < plans.size(); ++k) {
    int root = schedule.kernels[k].root;
    if (s.stride == 1 || (root != forms.direct && root != forms.dataDirect && root != forms.filterDirect))
      continue;
    bool has = transforms::stridedKernel(forms.f, root, m);
    EXPECT_EQ(plans[k].strategy == transforms::Strategy::ConvLoops, !has) << transforms::describe(plans[k]);
    if (has)
      own.insert(plans[k].strategy);
  }
  return own;
}

class ConvPhases : public ::testing::TestWithParam<size_t> {};

} // namespace

TEST_P(ConvPhases, ComputeTheStridedConvolution) {
  const ConvShape &s = kShapes[GetParam()];
  Forms forms = build(s);
  const ir::Function &f = forms.f;
  ASSERT_EQ(ir::verify(f), "");
  int64_t batch = 2;
  std::map<std::string, interp::Tensor> in;
  in["x"].data = values(static_cast<size_t>(batch * s.c * s.h * s.w), 0.1);
  in["w"].data = values(static_cast<size_t>(s.f * s.c / s.groups * s.k * (s.kw ? s.kw : s.k)), 2.3);
  in["dy"].data = values(static_cast<size_t>(ir::numElements(f.nodes[forms.direct].shape, batch)), 1.7);
  auto ref = interp::run(f, in, batch);
  for (const char *target : {"native", "x86-64-v3"}) {
    stridedPlans(forms, s, target);
    std::map<std::string, std::vector<float>> jit = test::JitFunction(f, target).run(in, batch);
    for (auto [directName, phasedName] :
         {std::pair{"direct", "out"}, {"data.direct", "data.phased"}, {"filter.direct", "filter.phased"}}) {
      SCOPED_TRACE(phasedName);
      const std::vector<double> &want = ref.at(directName).data, &got = ref.at(phasedName).data;
      ASSERT_EQ(want.size(), got.size());
      for (size_t i = 0; i < want.size(); ++i)
        ASSERT_NEAR(got[i], want[i], 1e-12) << "element " << i;
      // The JIT runs both: the strided ops by their own kernels (or the direct loops), the phases
      // by the stride-1 ones.
      for (const char *name : {directName, phasedName}) {
        const std::vector<float> &out = jit.at(name);
        ASSERT_EQ(out.size(), want.size());
        for (size_t i = 0; i < want.size(); ++i)
          ASSERT_NEAR(out[i], want[i], 1e-4 * (1 + std::fabs(want[i]))) << name << " element " << i << " on " << target;
      }
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Shapes, ConvPhases, ::testing::Range(size_t{0}, std::size(kShapes)),
                         [](const ::testing::TestParamInfo<size_t> &info) {
                           const ConvShape &s = kShapes[info.param];
                           return fmt::format("c{}_{}x{}_f{}_k{}x{}_s{}_p{}_g{}", s.c, s.h, s.w, s.f, s.k,
                                              s.kw ? s.kw : s.k, s.stride, s.padding, s.groups);
                         });

// Each strided kernel runs in some case above, on both widths.
TEST(ConvPhases, EveryStridedKernelIsReached) {
  for (const char *target : {"native", "x86-64-v3"}) {
    std::set<transforms::Strategy> reached;
    for (const ConvShape &s : kShapes) {
      std::set<transforms::Strategy> own = stridedPlans(build(s), s, target);
      reached.insert(own.begin(), own.end());
    }
    EXPECT_EQ(reached, (std::set<transforms::Strategy>{
                           transforms::Strategy::ConvChannelLanes, transforms::Strategy::ConvDataChannelLanes,
                           transforms::Strategy::ConvFilterLanes, transforms::Strategy::ConvDepthwise,
                           transforms::Strategy::ConvDataDepthwise, transforms::Strategy::ConvFilterDepthwise}))
        << target;
  }
}
