// The optimizers against their textbook (PyTorch) formulas: a hand-written double-precision
// update, fed the gradients AD derives, must give the parameters and state that the lowered
// training step gives in the reference evaluator, over several steps.
#include "../common/JitHarness.h"
#include "../common/Programs.h"
#include "ast/Sema.h"
#include "autodiff/Autodiff.h"
#include "frontend/Parser.h"
#include "interp/Interp.h"
#include "lowering/Lower.h"
#include "soma/Data.h"
#include "soma/Session.h"

#include <cmath>
#include <gtest/gtest.h>
#include <sstream>

using namespace soma;

namespace {

Program check(const std::string &text) { return test::checkProgram(text); }

using Vec = std::vector<double>;

// The textbook update of one parameter; `st` holds its state buffers by name.
void reference(const OptimizerSpec &o, double lr, int64_t t, Vec &w, Vec g, std::map<std::string, Vec> &st) {
  size_t n = w.size();
  auto buf = [&](const char *name) -> Vec & {
    Vec &v = st[name];
    v.resize(n, 0.0);
    return v;
  };
  if (o.kind != OptimizerKind::AdamW)
    for (size_t i = 0; i < n; ++i)
      g[i] += o.weightDecay * w[i];
  for (size_t i = 0; i < n; ++i) {
    switch (o.kind) {
    case OptimizerKind::Sgd:
      if (o.momentum > 0) {
        Vec &b = buf("momentum");
        b[i] = o.momentum * b[i] + g[i];
        w[i] -= lr * (o.nesterov ? g[i] + o.momentum * b[i] : b[i]);
      } else {
        w[i] -= lr * g[i];
      }
      break;
    case OptimizerKind::Adam:
    case OptimizerKind::AdamW: {
      Vec &m = buf("exp_avg"), &v = buf("exp_avg_sq");
      if (o.kind == OptimizerKind::AdamW)
        w[i] *= 1 - lr * o.weightDecay;
      m[i] = o.beta1 * m[i] + (1 - o.beta1) * g[i];
      v[i] = o.beta2 * v[i] + (1 - o.beta2) * g[i] * g[i];
      double bc1 = 1 - std::pow(o.beta1, static_cast<double>(t)), bc2 = 1 - std::pow(o.beta2, static_cast<double>(t));
      w[i] -= lr / bc1 * m[i] / (std::sqrt(v[i]) / std::sqrt(bc2) + o.eps);
      break;
    }
    case OptimizerKind::RmsProp: {
      Vec &v = buf("square_avg");
      v[i] = o.alpha * v[i] + (1 - o.alpha) * g[i] * g[i];
      double d = g[i] / (std::sqrt(v[i]) + o.eps);
      if (o.momentum > 0) {
        Vec &b = buf("momentum");
        b[i] = o.momentum * b[i] + d;
        d = b[i];
      }
      w[i] -= lr * d;
      break;
    }
    case OptimizerKind::Adagrad: {
      Vec &s = buf("sum");
      s[i] += g[i] * g[i];
      w[i] -= lr * g[i] / (std::sqrt(s[i]) + o.eps);
      break;
    }
    }
  }
}

void expectTextbookUpdates(const std::string &optimizer) {
  SCOPED_TRACE(optimizer);
  Program p = check(R"(model M { input x: f32[4] dense(5) -> tanh dense(3) }
                       train M { data train = csv("x") loss = cross_entropy(label) optimizer = )" +
                    optimizer + " }");
  LoweredModel m = lowerModel(p);
  lowerTraining(m, p);
  ASSERT_EQ(ir::verify(m.train), "");
  const OptimizerSpec &o = p.train->optimizer;
  double lr = p.train->lr;

  // The gradients alone, from the forward function.
  ir::Function grad = m.forward;
  int loss = grad.results.back().value;
  std::vector<int> wrt;
  for (const ParamInfo &pi : m.params)
    wrt.push_back(grad.findInput(pi.name));
  std::vector<int> g = autodiff::appendGradients(grad, loss, wrt);
  grad.results.clear();
  for (size_t i = 0; i < g.size(); ++i)
    grad.results.push_back({m.params[i].name, g[i]});

  int64_t batch = 6;
  rt::Rng rng(5);
  std::map<std::string, interp::Tensor> in;
  for (int64_t i = 0; i < batch * 4; ++i)
    in[kInputX].data.push_back(rng.uniform() * 2 - 1);
  for (int64_t i = 0; i < batch; ++i)
    in[kInputLabel].data.push_back(static_cast<double>(rng.below(3)));
  in[kInputInvBatch].data = {1.0 / static_cast<double>(batch)};
  in[kInputLr].data = {lr};
  auto init = test::initialParams(m, 2);
  for (size_t i = 0; i < m.params.size(); ++i)
    in[m.params[i].name].data.assign(init[i].begin(), init[i].end());
  for (const ParamInfo &si : m.state)
    in[si.name].data.assign(static_cast<size_t>(ir::numElements(si.shape, 1)), 0.0);

  std::map<std::string, Vec> w;
  std::map<std::string, std::map<std::string, Vec>> state;
  for (const ParamInfo &pi : m.params)
    w[pi.name] = in[pi.name].data;
  for (int64_t t = 1; t <= 3; ++t) {
    // The textbook step, on the gradients at the current weights.
    auto grads = interp::run(grad, in, batch);
    for (const ParamInfo &pi : m.params)
      reference(o, lr, t, w[pi.name], grads[pi.name].data, state[pi.name]);
    // Soma's lowered step.
    double bt = static_cast<double>(t);
    in[kInputAdamStepSize].data = {lr / (1 - std::pow(o.beta1, bt))};
    in[kInputAdamInvSqrtBias2].data = {1 / std::sqrt(1 - std::pow(o.beta2, bt))};
    auto out = interp::run(m.train, in, batch);
    for (const ParamInfo &pi : m.params) {
      in[pi.name].data = out[pi.name].data;
      for (size_t i = 0; i < w[pi.name].size(); ++i)
        ASSERT_NEAR(in[pi.name].data[i], w[pi.name][i], 1e-12) << "step " << t << " " << pi.name << "[" << i << "]";
    }
    for (const ParamInfo &si : m.state) {
      in[si.name].data = out[si.name].data;
      std::string param = si.name.substr(0, si.name.rfind('.')), what = si.name.substr(si.name.rfind('.') + 1);
      ASSERT_TRUE(state[param].count(what)) << si.name << " is not a state buffer of the textbook update";
      for (size_t i = 0; i < in[si.name].data.size(); ++i)
        ASSERT_NEAR(in[si.name].data[i], state[param][what][i], 1e-12) << "step " << t << " " << si.name;
    }
  }
}

} // namespace

TEST(Optimizer, SgdMatchesTextbook) {
  expectTextbookUpdates("sgd(lr: 0.5)");
  expectTextbookUpdates("sgd(lr: 0.5, weight_decay: 0.1)");
}
TEST(Optimizer, SgdMomentumMatchesTextbook) {
  expectTextbookUpdates("sgd(lr: 0.1, momentum: 0.9)");
  expectTextbookUpdates("sgd(lr: 0.1, momentum: 0.9, nesterov: true)");
}
TEST(Optimizer, AdamMatchesTextbook) {
  expectTextbookUpdates("adam()");
  expectTextbookUpdates("adam(lr: 0.01, beta1: 0.8, beta2: 0.99, eps: 1e-6, weight_decay: 0.05)");
}
TEST(Optimizer, AdamWMatchesTextbook) { expectTextbookUpdates("adamw(lr: 0.01, weight_decay: 0.1)"); }
TEST(Optimizer, RmsPropMatchesTextbook) {
  expectTextbookUpdates("rmsprop(lr: 0.01)");
  expectTextbookUpdates("rmsprop(lr: 0.01, alpha: 0.9, momentum: 0.5, weight_decay: 0.01)");
}
TEST(Optimizer, AdagradMatchesTextbook) { expectTextbookUpdates("adagrad(lr: 0.1)"); }

TEST(Optimizer, StateBuffersArePerParameter) {
  Program p = check(R"(model M { input x: f32[4] dense(5) dense(3) }
                       train M { data train = csv("x") loss = cross_entropy(label) optimizer = adam() })");
  LoweredModel m = lowerModel(p);
  lowerTraining(m, p);
  ASSERT_EQ(m.state.size(), 8u);
  EXPECT_EQ(m.state[0].name, "dense_1.w.exp_avg");
  EXPECT_EQ(m.state[1].name, "dense_1.w.exp_avg_sq");
  EXPECT_EQ(m.state[0].shape, (ir::Shape{4, 5}));
}
