// The layer table: every record has its own spelling, and every built-in layer, in a small model
// that trains through it, has derived gradients (for its parameters and its input) that match
// finite differences in the reference evaluator. `example` is a switch with no default: a layer
// added to layers/Layers.def without an example here does not compile.
#include "../common/JitHarness.h"
#include "../common/Programs.h"
#include "autodiff/Autodiff.h"
#include "interp/Interp.h"
#include "lowering/Lower.h"
#include "soma/Data.h"

#include <cmath>
#include <gtest/gtest.h>
#include <set>

using namespace soma;

namespace {

enum class Input { Vector, Image, Sequence, Steps, Ids };
struct Example {
  const char *call; // the layer as a model file applies it
  Input input;
};

Example example(LayerKind k) {
  switch (k) {
  case LayerKind::Dense:
    return {"dense(5)", Input::Vector};
  case LayerKind::Flatten:
    return {"flatten", Input::Image};
  case LayerKind::Conv2D:
    return {"conv2d(3, [3, 2], stride: [2, 1], padding: 1, groups: 1)", Input::Image};
  case LayerKind::MaxPool2D:
    return {"maxpool2d(2, stride: 1)", Input::Image};
  case LayerKind::AvgPool2D:
    return {"avgpool2d(3, stride: 2, padding: 1, count_include_pad: false)", Input::Image};
  case LayerKind::AdaptiveAvgPool2D:
    return {"adaptive_avgpool2d([4, 3])", Input::Image};
  case LayerKind::Conv1D:
    return {"conv1d(4, 3, stride: 2, padding: 2, dilation: 2)", Input::Sequence};
  case LayerKind::MaxPool1D:
    return {"maxpool1d(3, stride: 2, padding: 1)", Input::Sequence};
  case LayerKind::AvgPool1D:
    return {"avgpool1d(2, ceil_mode: true, count_include_pad: false)", Input::Sequence};
  case LayerKind::GlobalAvgPool:
    return {"global_avgpool", Input::Image};
  case LayerKind::Rnn:
    return {"rnn(3, nonlinearity: \"relu\", return_sequences: true)", Input::Steps};
  case LayerKind::Lstm:
    return {"lstm(3, return_sequences: true, bidirectional: true)", Input::Steps};
  case LayerKind::Gru:
    return {"gru(3, bidirectional: true)", Input::Steps};
  case LayerKind::Dropout:
    return {"dropout(0.3)", Input::Vector};
  case LayerKind::BatchNorm:
    return {"batchnorm", Input::Image};
  case LayerKind::LayerNorm: // each [6, 5] plane of [2, 6, 5]
    return {"layernorm(axes: 2)", Input::Image};
  case LayerKind::Embedding:
    return {"embedding(7, 3)", Input::Ids};
  case LayerKind::Sigmoid:
    return {"sigmoid", Input::Vector};
  case LayerKind::Tanh:
    return {"tanh", Input::Vector};
  case LayerKind::Relu:
    return {"relu", Input::Vector};
  case LayerKind::LeakyRelu:
    return {"leaky_relu(alpha: 0.2)", Input::Vector};
  case LayerKind::Elu:
    return {"elu", Input::Vector};
  case LayerKind::Gelu:
    return {"gelu", Input::Vector};
  case LayerKind::Silu:
    return {"silu", Input::Vector};
  case LayerKind::Softplus:
    return {"softplus", Input::Vector};
  case LayerKind::Softmax: // along the middle axis of [2, 6, 5]
    return {"softmax(axis: -2)", Input::Image};
  case LayerKind::LogSoftmax:
    return {"log_softmax", Input::Vector};
  case LayerKind::Identity:
    return {"identity", Input::Vector};
  }
  return {"", Input::Vector};
}

std::string modelText(const Example &e) {
  std::string body;
  switch (e.input) {
  case Input::Vector:
    body = "input x: f32[6] dense(6) -> " + std::string(e.call);
    break;
  case Input::Image:
    body = "input x: f32[2, 6, 5] conv2d(2, 1) -> " + std::string(e.call);
    break;
  case Input::Sequence:
    body = "input x: f32[3, 11] conv1d(2, 1) -> " + std::string(e.call);
    break;
  case Input::Steps: // [steps, features], a recurrent layer's
    body = "input x: f32[4, 3] " + std::string(e.call);
    break;
  case Input::Ids:
    body = "input x: f32[4] " + std::string(e.call);
    break;
  }
  return "model M { " + body +
         " flatten dense(3) }\n"
         "train M { data train = csv(\"x\") loss = cross_entropy(label) optimizer = sgd(lr: 1) }";
}

constexpr LayerKind kKinds[] = {
#define LAYER(Kind) LayerKind::Kind,
#include "layers/Layers.def"
};
constexpr int kLayerCount = static_cast<int>(std::size(kKinds));

class LayerTable : public ::testing::TestWithParam<int> {};

TEST(LayerTableNames, EachRecordHasItsOwnSpelling) {
  std::set<std::string> seen;
  for (int i = 0; i < kLayerCount; ++i) {
    auto k = static_cast<LayerKind>(i);
    EXPECT_TRUE(seen.insert(layerSpelling(k)).second) << layerSpelling(k);
    EXPECT_EQ(layerNamed(layerSpelling(k)), k);
  }
  EXPECT_EQ(layerSpellings().size(), static_cast<size_t>(kLayerCount));
  EXPECT_EQ(layerNamed("dense2"), std::nullopt);
}

TEST_P(LayerTable, GradientsMatchFiniteDifferences) {
  auto kind = static_cast<LayerKind>(GetParam());
  Example e = example(kind);
  Program p = test::checkProgram(modelText(e));
  bool found = false;
  for (const GraphNode &n : p.model.nodes)
    found |= n.kind == GraphNode::Kind::Layer && n.layer.kind == kind &&
             n.layer.name == std::string(layerSpelling(kind)) + "_1";
  ASSERT_TRUE(found) << "no " << layerSpelling(kind) << "_1 in the graph";

  LoweredModel m = lowerModel(p);
  ir::Function f = lowerTrainingForward(m, p);
  int loss = -1;
  for (const ir::Result &r : f.results)
    if (r.name == "loss")
      loss = r.value;
  ASSERT_GE(loss, 0);
  std::vector<std::string> names;
  std::vector<int> wrt;
  for (const ParamInfo &pi : m.params) {
    names.push_back(pi.name);
    wrt.push_back(f.findInput(pi.name));
  }
  if (e.input != Input::Ids) { // the input's gradient: what flows back through the layer
    names.push_back(kInputX);
    wrt.push_back(f.findInput(kInputX));
  }
  std::vector<int> grads = autodiff::appendGradients(f, loss, wrt);
  ASSERT_EQ(ir::verify(f), "");
  f.results = {{"loss", loss}};
  for (size_t i = 0; i < grads.size(); ++i)
    f.results.push_back({names[i], grads[i]});
  ir::Function lossOnly = f;
  lossOnly.results = {{"loss", loss}};

  const int64_t batch = 3;
  int64_t sample = 1;
  for (int64_t d : p.model.inputDims)
    sample *= d;
  rt::Rng rng(11);
  std::map<std::string, interp::Tensor> inputs;
  for (int64_t i = 0; i < batch * sample; ++i)
    inputs[kInputX].data.push_back(e.input == Input::Ids ? static_cast<double>(rng.below(7)) : 2 * rng.uniform() - 1);
  for (int64_t i = 0; i < batch; ++i)
    inputs[kInputLabel].data.push_back(static_cast<double>(rng.below(3)));
  inputs[kInputInvBatch].data = {1.0 / static_cast<double>(batch)};
  inputs[kInputDropoutSeed].data = {12345};
  auto init = test::initialParams(m, 5);
  for (size_t i = 0; i < m.params.size(); ++i)
    inputs[m.params[i].name].data.assign(init[i].begin(), init[i].end());
  for (const ParamInfo &b : m.buffers)
    inputs[b.name].data.assign(static_cast<size_t>(ir::numElements(b.shape, 1)), 1.0);
  std::map<std::string, interp::Tensor> derived = interp::run(f, inputs, batch);

  for (const std::string &name : names) {
    const interp::Tensor &w = inputs[name];
    for (size_t j = 0; j < w.data.size(); j += 1 + w.data.size() / 40) {
      double numeric = interp::centralDifference(lossOnly, inputs, batch, name, j), analytic = derived[name].data[j];
      EXPECT_NEAR(analytic, numeric, 1e-5 * std::max(1e-2, std::fabs(numeric) + std::fabs(analytic)))
          << layerSpelling(kind) << ": d loss / d " << name << "[" << j << "]";
    }
  }
}

INSTANTIATE_TEST_SUITE_P(EveryLayer, LayerTable, ::testing::Range(0, kLayerCount),
                         [](const ::testing::TestParamInfo<int> &info) {
                           return std::string(layerSpelling(static_cast<LayerKind>(info.param)));
                         });

} // namespace
