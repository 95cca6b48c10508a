// Whole training steps: the JIT-compiled step (fused kernels, in-place updates) gives the
// loss and updated parameters of the reference evaluator.
#include "../common/JitHarness.h"
#include "../common/Programs.h"
#include "ast/Sema.h"
#include "codegen/Jit.h"
#include "frontend/Parser.h"
#include "lowering/Lower.h"
#include "soma/Data.h"
#include "soma/Session.h"
#include "transforms/CSE.h"
#include "transforms/Phases.h"

#include <cmath>
#include <gtest/gtest.h>
#include <sstream>
#include <stdexcept>

using namespace soma;

namespace {
Program check(const std::string &text) { return test::checkProgram(text); }

void expectSameStep(const LoweredModel &m, const ir::Function &step,
                    const std::map<std::string, interp::Tensor> &inputs,
                    std::map<std::string, interp::Tensor> &expected, int64_t batch);

void expectStepMatches(const std::string &text, int64_t batch) {
  Program p = check(text);
  LoweredModel m = lowerModel(p);
  lowerTraining(m, p);
  ASSERT_EQ(ir::verify(m.train), "");
  std::map<std::string, interp::Tensor> inputs;
  int64_t sample = 1;
  for (int64_t d : p.model.inputDims)
    sample *= d;
  rt::Rng rng(3);
  for (int64_t i = 0; i < batch * sample; ++i)
    inputs[kInputX].data.push_back(rng.uniform());
  // One class a sample, or several labels a sample, each 0 or 1.
  int64_t labelSize = p.train && p.train->labelSize > 1 ? p.train->labelSize : 1;
  int64_t classes = labelSize == 1 && p.model.outputDims()[0] > 1 ? p.model.outputDims()[0] : 2;
  for (int64_t i = 0; i < batch * labelSize; ++i)
    inputs[kInputLabel].data.push_back(static_cast<double>(rng.below(static_cast<uint64_t>(classes))));
  inputs[kInputLr].data = {0.5};
  inputs[kInputInvBatch].data = {1.0 / static_cast<double>(batch)};
  auto init = test::initialParams(m, 1);
  for (size_t i = 0; i < m.params.size(); ++i)
    inputs[m.params[i].name].data.assign(init[i].begin(), init[i].end());
  inputs[kInputAdamStepSize].data = {0.01};
  inputs[kInputDropoutSeed].data = {77};
  for (const ParamInfo &bi : m.buffers) // running statistics: a variance must be positive
    for (int64_t i = 0; i < ir::numElements(bi.shape, 1); ++i)
      inputs[bi.name].data.push_back(0.5 + rng.uniform());
  inputs[kInputAdamInvSqrtBias2].data = {1.5};
  for (const ParamInfo &si : m.state) // non-negative, as squared-gradient averages are
    for (int64_t i = 0; i < ir::numElements(si.shape, 1); ++i)
      inputs[si.name].data.push_back(rng.uniform());
  // The reference evaluator must see the float-rounded inputs the JIT sees.
  for (auto &[name, t] : inputs)
    for (double &v : t.data)
      v = static_cast<float>(v);
  auto expected = interp::run(m.train, inputs, batch);
  // The step as built, and, where strided convolutions run over phases on this machine, as the
  // pipeline runs it (transforms/Phases.h).
  std::vector<ir::Function> steps{m.train};
  ir::Function split = transforms::splitStrides(m.train, codegen::machine(codegen::hostTarget()));
  if (split.nodes.size() != m.train.nodes.size())
    steps.push_back(std::move(split));
  steps.push_back(transforms::eliminateCommonSubexpressions(steps.back())); // as the pipeline runs it
  for (const ir::Function &step : steps)
    expectSameStep(m, step, inputs, expected, batch);
}

void expectSameStep(const LoweredModel &m, const ir::Function &step,
                    const std::map<std::string, interp::Tensor> &inputs,
                    std::map<std::string, interp::Tensor> &expected, int64_t batch) {
  test::JitFunction jit(step);
  auto actual = jit.run(inputs, batch);
  EXPECT_NEAR(actual["loss"][0], expected["loss"].data[0], 1e-5 * std::fabs(expected["loss"].data[0]) + 1e-6);
  // Updated parameters are written in place: read them from the bound inputs' results.
  std::vector<ParamInfo> updated = m.params;
  updated.insert(updated.end(), m.state.begin(), m.state.end());
  updated.insert(updated.end(), m.buffers.begin(), m.buffers.end());
  for (const ParamInfo &pi : updated) {
    ASSERT_TRUE(actual.count(pi.name));
    const auto &e = expected[pi.name].data;
    const auto &a = actual[pi.name];
    for (size_t i = 0; i < e.size(); ++i)
      ASSERT_NEAR(a[i], e[i], 1e-5 + 1e-4 * std::fabs(e[i])) << pi.name << "[" << i << "]";
  }
}
} // namespace

TEST(ModelJit, SigmoidMseStepMatchesReference) {
  expectStepMatches(R"(model M { input x: f32[6, 5] flatten dense(7) -> sigmoid dense(3) -> sigmoid }
                      train M { data train = csv("x") loss = mse(one_hot(label, 3)) optimizer = sgd(lr: 1) })",
                    5);
}

// Targets that are values of the model: an autoencoder's input (mse and binary cross-entropy
// over every element of an image), and a distribution per sample for cross-entropy.
TEST(ModelJit, ValueTargetStepsMatchReference) {
  expectStepMatches(R"(model M { input x: f32[2, 3, 3] h = x -> flatten -> dense(4) -> relu
                                 h -> dense(18) -> sigmoid reshape([2, 3, 3]) }
                      train M { data train = csv("x") loss = mse(x) + 0.5 * binary_cross_entropy(x)
                                optimizer = adam(lr: 0.01) })",
                    5);
  expectStepMatches(R"(model M { input x: f32[4] p = softmax(x) x -> dense(6) -> tanh dense(4) }
                      train M { data train = csv("x") loss = cross_entropy(p) optimizer = sgd(lr: 1) })",
                    7);
}

// Several labels a sample: multi-output regression (of a vector, and of a matrix with an
// auxiliary output reading the same labels) and multi-label classification.
TEST(ModelJit, SeveralLabelsStepsMatchReference) {
  expectStepMatches(R"(model M { input x: f32[4] dense(8) -> tanh dense(3) }
                      train M { data train = csv("x", label: [0, 1, 2]) loss = mse(label) optimizer = adam(lr: 0.01) })",
                    5);
  expectStepMatches(R"(model M { input x: f32[6] aux = x -> dense(4) reshape([2, 2])
                                  x -> dense(5) -> relu dense(4) reshape([2, 2]) }
                      train M { data train = csv("x") loss = huber(label, delta: 0.5) + 0.3 * mae(label, output: aux)
                                optimizer = sgd(lr: 0.5) })",
                    3);
  expectStepMatches(R"(model M { input x: f32[7] dense(6) -> relu dense(5) -> sigmoid }
                      train M { data train = csv("x") loss = binary_cross_entropy(label) optimizer = sgd(lr: 1) })",
                    6);
}

// Products between values of a sample (self-attention: q @ transpose(k), softmax along the keys,
// then @ v), a sample's matrix times parameters, softmax along the first axis, and static
// products with leading axes.
TEST(ModelJit, AttentionStepMatchesReference) {
  expectStepMatches(R"(layer Attention(x, d) {
                         param wq: [d, d] = glorot_uniform
                         param wk: [d, d] = glorot_uniform
                         param wv: [d, d] = glorot_uniform
                         q = x @ wq
                         k = x @ wk
                         scores = q @ transpose(k) / 2
                         return softmax(scores) @ (x @ wv)
                       }
                       model M { input x: f32[5, 4] a = Attention(x, 4) h = x + a
                                 c = h -> softmax(axis: 0) h2 = transpose(c) @ h
                                 h2 -> flatten -> dense(3) }
                       train M { data train = csv("x") loss = cross_entropy(label) optimizer = adam(lr: 0.01) })",
                    3);
  expectStepMatches(R"(layer Heads(x) {
                         param w: [2, 3, 4] = glorot_uniform
                         param u: [4, 2] = glorot_uniform
                         q = reshape(x, [2, 3, 3]) @ reshape(x, [2, 3, 3])
                         return (q @ (w @ u)) -> flatten
                       }
                       model M { input x: f32[18] Heads(x) -> dense(2) -> log_softmax }
                       train M { data train = csv("x") loss = cross_entropy(label) optimizer = sgd(lr: 0.1) })",
                    4);
}

// Sequences [channels, length]: conv1d ("same", strided, grouped, dilated) and the 1-d pools.
TEST(ModelJit, SequenceStepMatchesReference) {
  expectStepMatches(R"(model M { input x: f32[3, 13] conv1d(4, 3, padding: "same") -> relu maxpool1d(2)
                                  conv1d(4, 3, stride: 2, groups: 2) -> tanh conv1d(6, 2, dilation: 2, padding: 1)
                                  avgpool1d(2, ceil_mode: true) flatten dense(3) }
                      train M { data train = csv("x") loss = cross_entropy(label) optimizer = adam(lr: 0.01) })",
                    4);
}

// Sequences [steps, features]: recurrent layers stacked, both directions, every step's state or
// the last, over a batch that fills no whole tile; a loop op each, its backward pass a loop too.
TEST(ModelJit, RecurrentStepMatchesReference) {
  expectStepMatches(R"(model M { input x: f32[9, 5] lstm(6, return_sequences: true, bidirectional: true)
                                  gru(5, return_sequences: true) rnn(4, nonlinearity: "relu") dense(3) }
                      train M { data train = csv("x") loss = cross_entropy(label) optimizer = adam(lr: 0.01) })",
                    7);
  expectStepMatches(R"(model M { input x: f32[6, 3] gru(4, bidirectional: true) -> tanh dense(2) }
                      train M { data train = csv("x") loss = cross_entropy(label) optimizer = sgd(lr: 0.5) })",
                    1);
}

TEST(ModelJit, ReluSoftmaxCrossEntropyStepMatchesReference) {
  expectStepMatches(R"(model M { input x: f32[9] dense(16) -> relu dense(4) -> tanh dense(4) -> softmax }
                      train M { data train = csv("x") loss = cross_entropy(label) optimizer = sgd(lr: 1) })",
                    33);
}

TEST(ModelJit, SingleOutputRegressionStepMatchesReference) {
  expectStepMatches(R"(model M { input x: f32[2] dense(4) -> sigmoid dense(1) -> sigmoid }
                      train M { data train = csv("x") loss = mse(label) optimizer = sgd(lr: 1) })",
                    4);
}

// Every optimizer's update (state buffers in place, scalars, weight decay) compiles to the
// reference's numbers.
TEST(ModelJit, EveryOptimizerStepMatchesReference) {
  for (const char *opt :
       {"sgd(lr: 0.1, momentum: 0.9)", "sgd(lr: 0.1, momentum: 0.9, nesterov: true, weight_decay: 0.01)",
        "adam(lr: 0.01)", "adam(weight_decay: 0.1)", "adamw(lr: 0.01, weight_decay: 0.1)", "rmsprop(lr: 0.01)",
        "rmsprop(lr: 0.01, momentum: 0.5)", "adagrad(lr: 0.1, weight_decay: 0.2)"}) {
    SCOPED_TRACE(opt);
    expectStepMatches(std::string(R"(model M { input x: f32[5] dense(6) -> relu dense(3) }
                      train M { data train = csv("x") loss = cross_entropy(label) optimizer = )") +
                          opt + " }",
                      7);
  }
}

TEST(ModelJit, EveryActivationStepMatchesReference) {
  expectStepMatches(R"(model M { input x: f32[5] dense(8) -> leaky_relu(alpha: 0.1) dense(8) -> elu dense(8) -> gelu
                                  dense(8) -> silu dense(8) -> softplus dense(8) -> identity dense(4) -> log_softmax }
                      train M { data train = csv("x") loss = cross_entropy(label) optimizer = sgd(lr: 0.1) })",
                    9);
}

TEST(ModelJit, ConvolutionalStepMatchesReference) {
  expectStepMatches(R"(model M { input x: f32[2, 9, 10] conv2d(3, 3, stride: 2, padding: 1) -> relu
                                  conv2d(4, 2, padding: 1) -> tanh maxpool2d(2) avgpool2d(1) conv2d(5, 1) global_avgpool
                                  dense(3) }
                      train M { data train = csv("x") loss = cross_entropy(label) optimizer = sgd(lr: 0.1, momentum: 0.5) })",
                    5);
  // Strided convolutions in kernels of their own (whole vectors of filters or channels: the second
  // and third ones, but the second's data gradient) and over phases (the first, of 12 filters).
  expectStepMatches(R"(model M { input x: f32[3, 11, 9] conv2d(12, 3, stride: 2, padding: 1) -> relu
                                  conv2d(16, 3, stride: 2, padding: 1) batchnorm relu conv2d(32, 2, stride: 2)
                                  global_avgpool dense(3) }
                      train M { data train = csv("x") loss = cross_entropy(label) optimizer = adam(lr: 0.01) })",
                    4);
  expectStepMatches(R"(model M { input x: f32[1, 8, 8] conv2d(2, 3) -> relu avgpool2d(2) flatten dense(3) -> softmax }
                      train M { data train = csv("x") loss = cross_entropy(label) optimizer = adam(lr: 0.01) })",
                    3);
}

// Pooling with PyTorch's parameters: ResNet's stem (3x3, stride 2, padding 1), ceil_mode's
// partial windows, padding left out of the divisor, rectangular windows and strides, a floor
// that drops an edge, and adaptive windows both uniform (7 to 3) and not (5 to 3, 9 to 4), and
// outputs larger than their input (1 to 3 rows, 3 to 7 columns: windows that share elements).
TEST(ModelJit, PoolingStepMatchesReference) {
  expectStepMatches(R"(model M { input x: f32[2, 11, 13] conv2d(4, 3, padding: 1) -> relu
                                  maxpool2d(3, stride: 2, padding: 1) conv2d(6, 1)
                                  avgpool2d(3, stride: 2, padding: 1, ceil_mode: true, count_include_pad: false)
                                  maxpool2d([2, 1], stride: [1, 2], ceil_mode: true) flatten dense(3) }
                      train M { data train = csv("x") loss = cross_entropy(label) optimizer = sgd(lr: 0.1) })",
                    5);
  expectStepMatches(R"(model M { input x: f32[3, 7, 9] conv2d(4, 3, padding: 1) -> tanh avgpool2d(2)
                                  adaptive_avgpool2d([3, 3]) flatten dense(3) }
                      train M { data train = csv("x") loss = cross_entropy(label) optimizer = adam(lr: 0.01) })",
                    4);
  expectStepMatches(R"(model M { input x: f32[2, 5, 9] conv2d(3, 1) -> relu adaptive_avgpool2d([3, 4]) flatten
                                  dense(3) }
                      train M { data train = csv("x") loss = cross_entropy(label) optimizer = sgd(lr: 0.1) })",
                    3);
  expectStepMatches(R"(model M { input x: f32[2, 1, 3] conv2d(3, 1) -> relu adaptive_avgpool2d([3, 7]) flatten
                                  dense(3) }
                      train M { data train = csv("x") loss = cross_entropy(label) optimizer = sgd(lr: 0.1) })",
                    3);
}

// Convolutions with a kernel and padding per axis: factorized 1x7 and 7x1 filters (the padding
// that differs between the axes explicit), "same" over an even kernel (one more after), a
// rectangular strided filter.
TEST(ModelJit, RectangularConvolutionStepMatchesReference) {
  expectStepMatches(R"(model M { input x: f32[3, 9, 11] conv2d(4, [1, 7], padding: [0, 3]) -> relu
                                  conv2d(4, [7, 1], padding: [3, 0]) -> relu conv2d(5, 4, padding: "same") -> tanh
                                  conv2d(3, [2, 3], stride: 2, padding: "valid") flatten dense(3) }
                      train M { data train = csv("x") loss = cross_entropy(label) optimizer = adam(lr: 0.01) })",
                    4);
}

// Grouped convolutions: depthwise with two filters a channel, a strided depthwise one (its own
// kernels at stride 2), a pointwise 1x1 after it, and groups of two channels over a rectangular
// filter with padding per axis.
TEST(ModelJit, GroupedConvolutionStepMatchesReference) {
  expectStepMatches(R"(model M { input x: f32[4, 15, 14] conv2d(8, 3, padding: 1, groups: 4) -> batchnorm -> relu
                                  conv2d(8, 3, stride: 2, padding: 1, groups: 8) -> relu conv2d(16, 1) -> relu
                                  conv2d(16, [3, 5], padding: [1, 2], groups: 8) global_avgpool dense(3) }
                      train M { data train = csv("x") loss = cross_entropy(label) optimizer = adam(lr: 0.01) })",
                    3);
}

// Dilated convolutions: along rows at stride 1 ("same" padding over the dilated span), by the
// direct loops at stride 2, depthwise with a dilation.
TEST(ModelJit, DilatedConvolutionStepMatchesReference) {
  expectStepMatches(R"(model M { input x: f32[3, 13, 12] conv2d(4, 3, dilation: 2, padding: "same") -> relu
                                  conv2d(4, 3, dilation: [2, 2], padding: 1, groups: 4) -> tanh
                                  conv2d(6, [3, 2], stride: 2, dilation: 3, padding: 2) flatten dense(3) }
                      train M { data train = csv("x") loss = cross_entropy(label) optimizer = adam(lr: 0.01) })",
                    3); // A dilation per axis: [1, 2] along rows with "same" padding (2 columns each side, 1 row),
  // [2, 1] depthwise at stride 2, [3, 2] grouped, and [2, 3] at a stride pair.
  expectStepMatches(R"(model M { input x: f32[4, 14, 13] conv2d(4, 3, dilation: [1, 2], padding: "same") -> relu
                                  conv2d(4, 3, stride: 2, dilation: [2, 1], padding: 1, groups: 4) -> tanh
                                  conv2d(6, 2, dilation: [3, 2], padding: [1, 0], groups: 2) -> relu
                                  conv2d(3, [2, 3], stride: [1, 2], dilation: [2, 3], padding: 2) flatten dense(3) }
                      train M { data train = csv("x") loss = cross_entropy(label) optimizer = adam(lr: 0.01) })",
                    3);
}

// Strides that differ between the axes: [2, 1], [1, 2] and [2, 3] (run at their shared stride,
// every t-th output kept along the other axis), with padding per axis.
TEST(ModelJit, StridePerAxisStepMatchesReference) {
  expectStepMatches(R"(model M { input x: f32[3, 13, 12] conv2d(4, 3, stride: [2, 1], padding: 1) -> relu
                                  conv2d(5, [3, 2], stride: [1, 2]) -> tanh
                                  conv2d(4, 3, stride: [2, 3], padding: [1, 0]) flatten dense(3) }
                      train M { data train = csv("x") loss = cross_entropy(label) optimizer = adam(lr: 0.01) })",
                    3);
  // Their neighbours: strides sharing 2 ([2, 4]: over phases, every second column kept), and a
  // stride pair on a dilated depthwise and a dilated grouped convolution.
  expectStepMatches(R"(model M { input x: f32[4, 17, 19] conv2d(8, 3, stride: [2, 4], padding: 1) -> relu
                                  conv2d(8, 3, stride: [1, 2], dilation: 2, padding: 2, groups: 8) -> tanh
                                  conv2d(4, 2, stride: [2, 1], dilation: 2, groups: 2) flatten dense(3) }
                      train M { data train = csv("x") loss = cross_entropy(label) optimizer = adam(lr: 0.01) })",
                    3);
}

TEST(ModelJit, EveryLossStepMatchesReference) {
  for (const char *loss : {"mae(one_hot(label, 3))", "huber(one_hot(label, 3), delta: 0.2)",
                           "cross_entropy(label, weight: [1, 0.5, 2])", "binary_cross_entropy(one_hot(label, 3))"}) {
    SCOPED_TRACE(loss);
    expectStepMatches(std::string(R"(model M { input x: f32[4] dense(5) -> tanh dense(3) -> sigmoid }
                      train M { data train = csv("x") loss = )") +
                          loss + " optimizer = sgd(lr: 0.5) }",
                      6);
  }
  expectStepMatches(R"(model M { input x: f32[4] dense(5) -> relu dense(1) }
                      train M { data train = csv("x") loss = binary_cross_entropy(label) optimizer = sgd(lr: 0.5) })",
                    6);
}

TEST(ModelJit, ClippedStepsMatchReference) {
  expectStepMatches(R"(model M { input x: f32[5] dense(6, lr_mult: 0.5) -> relu dense(3) }
                      train M { data train = csv("x") loss = cross_entropy(label) optimizer = adam(lr: 0.01)
                                clip_norm = 0.05 clip_value = 0.01 })",
                    7);
}

TEST(ModelJit, GraphWithUserLayersStepMatchesReference) {
  expectStepMatches(R"(layer Highway(x, gate_bias: -1) {
                         n = dim(x)
                         param wt: [n, n] = glorot_uniform
                         param bt: [n] = constant(gate_bias)
                         param wh: [n, n] = glorot_uniform
                         param bh: [n] = zeros
                         t = sigmoid(x @ wt + bt)
                         return t * relu(x @ wh + bh) + (1 - t) * x
                       }
                       model M { input x: f32[2, 3]
                         f = flatten(x)
                         h = dense(f, 6) -> tanh
                         h = relu(dense(h, 6) + h) -> Highway
                         c = concat(h, f, exp(-abs(f)))
                         m = reshape(c, [3, 6]) -> transpose
                         s = mean(m, axis: 1) + max(m, axis: 1) * sum(m)
                         y = dense(concat(s, maximum(h, 0.5)), 4) }
                       train M { data train = csv("x") loss = cross_entropy(label) optimizer = adam(lr: 0.01) })",
                    5);
}

TEST(ModelJit, NormalizationAndDropoutStepMatchesReference) {
  expectStepMatches(R"(model M { input x: f32[2, 6, 6]
                         conv2d(3, 3, padding: 1) -> batchnorm(momentum: 0.2) -> relu
                         flatten dense(8) -> layernorm -> dropout(0.4) dense(8) -> batchnorm -> tanh dense(3) }
                       train M { data train = csv("x") loss = cross_entropy(label) optimizer = sgd(lr: 0.1, momentum: 0.9) })",
                    6);
}

TEST(ModelJit, EmbeddingStepMatchesReference) {
  // Integer ids in [0, 5) as the input: the harness draws uniforms in [0, 1), scaled here.
  expectStepMatches(R"(model M { input x: f32[3]
                         ids = reshape(x, [3]) * 0
                         e = embedding(ids + 2, 5, 4) -> flatten
                         y = dense(e, 3) }
                       train M { data train = csv("x") loss = cross_entropy(label) optimizer = adam(lr: 0.1) })",
                    4);
}

TEST(ModelJit, SeveralInputsStepMatchesReference) {
  expectStepMatches(R"(model M { input img: f32[1, 4, 4]  input extra: f32[3]
                         f = conv2d(img, 2, 3) -> relu -> flatten
                         y = dense(concat(f, dense(extra, 4) -> tanh), 3) }
                       train M { data train = csv("x") loss = cross_entropy(label) optimizer = sgd(lr: 0.5) })",
                    5);
}

TEST(ModelJit, AuxiliaryLossStepMatchesReference) {
  expectStepMatches(R"(model M { input x: f32[5]
                         h = dense(x, 6) -> relu
                         aux = dense(h, 3)
                         y = dense(h, 3) -> softmax }
                       train M { data train = csv("x") loss = cross_entropy(label) + 0.3 * cross_entropy(label, output: aux)
                                 optimizer = sgd(lr: 0.5) })",
                    4);
}
