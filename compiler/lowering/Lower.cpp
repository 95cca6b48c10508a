// Each layer becomes a few primitive ops:
//   dense(n):  x @ w + broadcast(b)        (w is [in, n], b is [n])
//   flatten:   reshape to [B, prod(dims)]
//   softmax:   e = exp(x - max(x)); e / sum(e)
// Losses:
//   mse:           sum((y - t)^2) / (B * k)
//   cross_entropy: -sum(t * log_softmax(z)) / B, z the logits before a final softmax
#include "lowering/Lower.h"

#include "autodiff/Autodiff.h"

namespace soma {

using namespace ir;

namespace {

Shape batched(const Dims &d) {
  Shape s{kBatch};
  s.insert(s.end(), d.begin(), d.end());
  return s;
}

struct Lowerer {
  const Program &program;
  LoweredModel &out;
  Function &f;
  Builder b;
  std::vector<int> params; // input node ids, in `out.params` order

  Lowerer(const Program &p, LoweredModel &m, Function &fn) : program(p), out(m), f(fn), b(fn) {}

  int softmaxLog(int z, bool logOnly) {
    Shape s = b.shape(z);
    int m = b.broadcast(b.reduce(Op::ReduceMax, z, 2), s, 2);
    int shifted = b.binary(Op::Sub, z, m);
    int e = b.unary(Op::Exp, shifted);
    int sum = b.reduce(Op::ReduceSum, e, 2);
    if (logOnly)
      return b.binary(Op::Sub, shifted, b.broadcast(b.unary(Op::Log, sum), s, 2));
    return b.binary(Op::Div, e, b.broadcast(sum, s, 2));
  }

  // Returns {output, logits}; logits is the input of a final softmax (or the output itself).
  std::pair<int, int> forward(int x) {
    int cur = x, logits = x;
    size_t next = 0;
    for (const Layer &l : program.model.layers) {
      logits = cur;
      switch (l.kind) {
      case LayerKind::Dense: {
        int w = params[next++], bias = params[next++];
        int mm = b.matmul(cur, w);
        cur = b.binary(Op::Add, mm, b.broadcast(bias, b.shape(mm), 1));
        break;
      }
      case LayerKind::Flatten:
        cur = b.reshape(cur, batched(l.out));
        break;
      case LayerKind::Sigmoid:
        cur = b.unary(Op::Sigmoid, cur);
        break;
      case LayerKind::Tanh:
        cur = b.unary(Op::Tanh, cur);
        break;
      case LayerKind::Relu:
        cur = b.unary(Op::Relu, cur);
        break;
      case LayerKind::Softmax:
        cur = softmaxLog(cur, false);
        break;
      }
    }
    if (program.model.layers.back().kind != LayerKind::Softmax)
      logits = cur;
    return {cur, logits};
  }

  int loss(int y, int logits, int label, int invBatch) {
    const TrainSpec &t = *program.train;
    int64_t k = program.model.outputDims()[0];
    int target = t.oneHot || t.loss == LossKind::CrossEntropy ? b.oneHot(label, k) : b.reshape(label, {kBatch, 1});
    int all = (1u << 2) - 1;
    if (t.loss == LossKind::MSE) {
      int d = b.binary(Op::Sub, y, target);
      int sum = b.reduce(Op::ReduceSum, b.binary(Op::Mul, d, d), all);
      return b.binary(Op::Mul, sum, b.binary(Op::Mul, invBatch, b.fill(1.0 / static_cast<double>(k), {})));
    }
    int logp = softmaxLog(logits, true);
    int sum = b.reduce(Op::ReduceSum, b.binary(Op::Mul, target, logp), all);
    return b.unary(Op::Neg, b.binary(Op::Mul, sum, invBatch));
  }

  void run() {
    f.name = "forward";
    const ModelSpec &m = program.model;
    int x = b.input(kInputX, InputRole::Data, batched(m.inputDims));
    int label = b.input(kInputLabel, InputRole::Label, {kBatch});
    bool fresh = out.params.empty();
    for (const Layer &l : m.layers)
      if (l.kind == LayerKind::Dense) {
        if (fresh) {
          out.params.push_back({l.name + ".w", {l.in[0], l.units}, l.in[0]});
          out.params.push_back({l.name + ".b", {l.units}, l.in[0]});
        }
      }
    for (const ParamInfo &p : out.params)
      params.push_back(b.input(p.name, InputRole::Param, p.shape));
    int invBatch = b.input(kInputInvBatch, InputRole::Scalar, {});
    auto [y, logits] = forward(x);
    f.results.push_back({"output", y});
    out.outputs = m.outputDims()[0];
    if (program.train)
      f.results.push_back({"loss", loss(y, logits, label, invBatch)});
  }
};

} // namespace

LoweredModel lowerModel(const Program &program) {
  LoweredModel m;
  Lowerer(program, m, m.forward).run();
  return m;
}

void lowerTraining(LoweredModel &m, const Program &program) {
  m.train = m.forward;
  m.train.name = "train_step";
  Function &f = m.train;
  int loss = f.results.back().value;
  f.results.clear();
  std::vector<int> params;
  for (const ParamInfo &p : m.params)
    params.push_back(f.findInput(p.name));
  std::vector<int> grads = autodiff::appendGradients(f, loss, params);
  Builder b(f);
  int lr = b.input(kInputLr, InputRole::Scalar, {});
  f.results.push_back({"loss", loss});
  // sgd: w <- w - lr * dw
  for (size_t i = 0; i < params.size(); ++i) {
    int updated = b.binary(Op::Sub, params[i], b.binary(Op::Mul, lr, grads[i]));
    f.results.push_back({m.params[i].name, updated, params[i]});
  }
  (void)program;
}

} // namespace soma
