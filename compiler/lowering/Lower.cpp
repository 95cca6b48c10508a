// Each layer becomes a few primitive ops:
//   dense(n):  x @ w + broadcast(b)        (w is [in, n], b is [n])
//   flatten:   reshape to [B, prod(dims)]
//   conv2d:    conv2d(x, w) + broadcast(b)      (w is [filters, channels, k, k], b is [filters])
//   maxpool2d(k): reshape [B, C, H, W] to [B, C, H/k, k, W/k, k], max over the two k axes
//   avgpool2d(k): the same with a sum, times 1/k^2;   global_avgpool: sum over H, W times 1/(HW)
//   softmax:   e = exp(x - max(x)); e / sum(e)      log_softmax: (x - max) - log(sum(e))
//   leaky_relu(a): relu(x) - a relu(-x)            elu(a): relu(x) + a (exp(-relu(-x)) - 1)
//   gelu:      x (1 + erf(x / sqrt 2)) / 2          silu: x sigmoid(x)
//   softplus:  relu(x) + log(1 + exp(-|x|))        (stable for large |x|)
// Losses (means over the batch B and the k outputs; t the target, d = y - t):
//   mse: d^2     mae: |d|     huber(delta): 0.5 d^2 where |d| <= delta, else delta (|d| - delta / 2)
//   cross_entropy:        -sum(t * log_softmax(z)) / B, z the logits before a final softmax or
//                         log_softmax; with class weights w: -sum(w[y] log p[y]) / sum(w[y])
//   binary_cross_entropy: max(z, 0) - z t + log(1 + e^-|z|), z the logits before a final sigmoid
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

  // Returns {output, the input of the last layer}.
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
      case LayerKind::Conv2D: {
        int w = params[next++], bias = params[next++];
        int y = b.conv2d(cur, w, l.stride, l.padding);
        cur = b.binary(Op::Add, y, b.broadcast(bias, b.shape(y), 0b1101));
        break;
      }
      case LayerKind::MaxPool2D:
      case LayerKind::AvgPool2D: {
        int64_t k = l.kernel;
        int tiles = b.reshape(cur, {kBatch, l.in[0], l.out[1], k, l.out[2], k});
        bool isMax = l.kind == LayerKind::MaxPool2D;
        cur = b.reduce(isMax ? Op::ReduceMax : Op::ReduceSum, tiles, 0b101000);
        if (!isMax)
          cur = b.binary(Op::Mul, cur, b.fill(1.0 / static_cast<double>(k * k), {}));
        break;
      }
      case LayerKind::GlobalAvgPool:
        cur = b.binary(Op::Mul, b.reduce(Op::ReduceSum, cur, 0b1100),
                       b.fill(1.0 / static_cast<double>(l.in[1] * l.in[2]), {}));
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
      case LayerKind::LeakyRelu:
        cur = b.binary(Op::Sub, b.unary(Op::Relu, cur),
                       b.binary(Op::Mul, b.fill(l.alpha, {}), b.unary(Op::Relu, b.unary(Op::Neg, cur))));
        break;
      case LayerKind::Elu: {
        int negPart = b.unary(Op::Exp, b.unary(Op::Neg, b.unary(Op::Relu, b.unary(Op::Neg, cur))));
        cur = b.binary(Op::Add, b.unary(Op::Relu, cur),
                       b.binary(Op::Mul, b.fill(l.alpha, {}), b.binary(Op::Sub, negPart, b.fill(1.0, {}))));
        break;
      }
      case LayerKind::Gelu: {
        int e = b.unary(Op::Erf, b.binary(Op::Mul, cur, b.fill(0.7071067811865476, {})));
        cur = b.binary(Op::Mul, b.binary(Op::Mul, cur, b.fill(0.5, {})), b.binary(Op::Add, e, b.fill(1.0, {})));
        break;
      }
      case LayerKind::Silu:
        cur = b.binary(Op::Mul, cur, b.unary(Op::Sigmoid, cur));
        break;
      case LayerKind::Softplus: {
        int abs = b.binary(Op::Add, b.unary(Op::Relu, cur), b.unary(Op::Relu, b.unary(Op::Neg, cur)));
        int tail = b.unary(Op::Log, b.binary(Op::Add, b.fill(1.0, {}), b.unary(Op::Exp, b.unary(Op::Neg, abs))));
        cur = b.binary(Op::Add, b.unary(Op::Relu, cur), tail);
        break;
      }
      case LayerKind::Softmax:
        cur = softmaxLog(cur, false);
        break;
      case LayerKind::LogSoftmax:
        cur = softmaxLog(cur, true);
        break;
      case LayerKind::Identity:
        break;
      }
    }
    return {cur, logits}; // logits: the input of the last layer
  }

  // The mean over the batch (and the outputs) of a per-element loss; see the list at the top.
  int loss(int y, int beforeLast, int label, int invBatch) {
    const TrainSpec &t = *program.train;
    int64_t k = program.model.outputDims()[0];
    LayerKind last = program.model.layers.back().kind;
    int target = t.oneHot || t.loss == LossKind::CrossEntropy ? b.oneHot(label, k) : b.reshape(label, {kBatch, 1});
    uint32_t all = (1u << 2) - 1;
    auto c = [&](double v) { return b.fill(v, {}); };
    auto mul = [&](int x, int z) { return b.binary(Op::Mul, x, z); };
    auto abs = [&](int x) { return b.binary(Op::Add, b.unary(Op::Relu, x), b.unary(Op::Relu, b.unary(Op::Neg, x))); };
    auto meanOverAll = [&](int perElement) {
      return mul(b.reduce(Op::ReduceSum, perElement, all), mul(invBatch, c(1.0 / static_cast<double>(k))));
    };
    switch (t.loss) {
    case LossKind::MSE: {
      int d = b.binary(Op::Sub, y, target);
      return meanOverAll(mul(d, d));
    }
    case LossKind::MAE:
      return meanOverAll(abs(b.binary(Op::Sub, y, target)));
    case LossKind::Huber: { // 0.5 q^2 + delta (a - q), a = |d|, q = min(a, delta)
      int a = abs(b.binary(Op::Sub, y, target));
      int q = b.binary(Op::Sub, a, b.unary(Op::Relu, b.binary(Op::Sub, a, c(t.huberDelta))));
      return meanOverAll(b.binary(Op::Add, mul(c(0.5), mul(q, q)), mul(c(t.huberDelta), b.binary(Op::Sub, a, q))));
    }
    case LossKind::BinaryCrossEntropy: { // from logits z: max(z, 0) - z t + log(1 + e^-|z|)
      int z = last == LayerKind::Sigmoid ? beforeLast : y;
      int tail = b.unary(Op::Log, b.binary(Op::Add, c(1.0), b.unary(Op::Exp, b.unary(Op::Neg, abs(z)))));
      return meanOverAll(b.binary(Op::Add, b.binary(Op::Sub, b.unary(Op::Relu, z), mul(z, target)), tail));
    }
    case LossKind::CrossEntropy: {
      bool fromLogits = last == LayerKind::Softmax || last == LayerKind::LogSoftmax;
      int logp = softmaxLog(fromLogits ? beforeLast : y, true);
      int perSample = b.reduce(Op::ReduceSum, mul(target, logp), 2); // log p of the target class
      if (t.classWeights.empty())
        return b.unary(Op::Neg, mul(b.reduce(Op::ReduceSum, perSample, 1), invBatch));
      // As PyTorch: sum_i w[y_i] log p_i / sum_i w[y_i].
      int w = b.broadcast(b.constant(t.classWeights, {k}), {kBatch, k}, 1);
      int wy = b.reduce(Op::ReduceSum, mul(target, w), 2);
      return b.unary(Op::Neg, b.binary(Op::Div, b.reduce(Op::ReduceSum, mul(wy, perSample), 1),
                                        b.reduce(Op::ReduceSum, wy, 1)));
    }
    }
    return -1;
  }

  void run() {
    f.name = "forward";
    const ModelSpec &m = program.model;
    int x = b.input(kInputX, InputRole::Data, batched(m.inputDims));
    int label = b.input(kInputLabel, InputRole::Label, {kBatch});
    bool fresh = out.params.empty();
    for (const Layer &l : m.layers)
      if (fresh && !l.weightDims().empty()) {
        out.params.push_back({l.name + ".w", l.weightDims(), l.fanIn(), l.lrMult});
        out.params.push_back({l.name + ".b", {l.units}, l.fanIn(), l.lrMult});
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

namespace {

// The optimizer's update of one parameter `w` with gradient `g`, with PyTorch's formulas:
//   weight decay (L2):  g += wd * w                           (adamw instead: w -= lr * wd * w)
//   sgd:       buf = mu * buf + g;  w -= lr * (nesterov ? g + mu * buf : buf)   (plain: w -= lr * g)
//   adam:      m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g^2;
//              w -= lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)
//   rmsprop:   v = a v + (1 - a) g^2;  d = g / (sqrt(v) + eps);  buf = mu buf + d;  w -= lr * buf
//   adagrad:   s += g^2;  w -= lr * g / (sqrt(s) + eps)
// State buffers are inputs updated in place (results with `updates`), zero before the first step.
struct UpdateLowerer {
  LoweredModel &m;
  Function &f;
  const OptimizerSpec &o;
  Builder b;
  int lr, stepSize = -1, invSqrtBias2 = -1;

  UpdateLowerer(LoweredModel &model, Function &fn, const OptimizerSpec &opt)
      : m(model), f(fn), o(opt), b(fn), lr(b.input(kInputLr, InputRole::Scalar, {})) {}

  int c(double v) { return b.fill(v, {}); }
  int mul(int a, int x) { return b.binary(Op::Mul, a, x); }
  int add(int a, int x) { return b.binary(Op::Add, a, x); }
  int sub(int a, int x) { return b.binary(Op::Sub, a, x); }
  int div(int a, int x) { return b.binary(Op::Div, a, x); }

  // A state buffer shaped like parameter `p`, and the result that overwrites it with `value`.
  int state(const ParamInfo &p, const char *what) {
    ParamInfo s{p.name + "." + what, p.shape, p.fanIn, p.lrMult};
    m.state.push_back(s);
    return b.input(s.name, InputRole::State, s.shape);
  }
  int keep(int stateInput, int value) {
    f.results.push_back({f.nodes[stateInput].attrs.name, value, stateInput});
    return value;
  }
  // beta * s + (1 - beta) * x
  int average(int s, double beta, int x) { return add(mul(c(beta), s), mul(c(1 - beta), x)); }

  int update(const ParamInfo &p, int w, int g) {
    int lr = p.lrMult == 1 ? this->lr : mul(this->lr, c(p.lrMult)); // per-layer multiplier (Caffe's lr_mult)
    if (o.weightDecay > 0 && o.kind != OptimizerKind::AdamW)
      g = add(g, mul(c(o.weightDecay), w));
    switch (o.kind) {
    case OptimizerKind::Sgd: {
      if (o.momentum == 0)
        return sub(w, mul(lr, g));
      int buf = state(p, "momentum");
      int nb = keep(buf, add(mul(c(o.momentum), buf), g));
      return sub(w, mul(lr, o.nesterov ? add(g, mul(c(o.momentum), nb)) : nb));
    }
    case OptimizerKind::Adam:
    case OptimizerKind::AdamW: {
      int m1 = state(p, "exp_avg"), m2 = state(p, "exp_avg_sq");
      int nm1 = keep(m1, average(m1, o.beta1, g));
      int nm2 = keep(m2, average(m2, o.beta2, mul(g, g)));
      if (stepSize < 0) {
        stepSize = b.input(kInputAdamStepSize, InputRole::Scalar, {});
        invSqrtBias2 = b.input(kInputAdamInvSqrtBias2, InputRole::Scalar, {});
      }
      int denom = add(mul(b.unary(Op::Sqrt, nm2), invSqrtBias2), c(o.eps));
      if (o.kind == OptimizerKind::AdamW && o.weightDecay > 0)
        w = sub(w, mul(mul(lr, c(o.weightDecay)), w));
      int step = p.lrMult == 1 ? stepSize : mul(stepSize, c(p.lrMult));
      return sub(w, mul(step, div(nm1, denom)));
    }
    case OptimizerKind::RmsProp: {
      int sq = state(p, "square_avg");
      int nsq = keep(sq, average(sq, o.alpha, mul(g, g)));
      int d = div(g, add(b.unary(Op::Sqrt, nsq), c(o.eps)));
      if (o.momentum > 0) {
        int buf = state(p, "momentum");
        d = keep(buf, add(mul(c(o.momentum), buf), d));
      }
      return sub(w, mul(lr, d));
    }
    case OptimizerKind::Adagrad: {
      int sum = state(p, "sum");
      int nsum = keep(sum, add(sum, mul(g, g)));
      return sub(w, mul(lr, div(g, add(b.unary(Op::Sqrt, nsum), c(o.eps)))));
    }
    }
    return w;
  }
};

// clip_value c: each element clamped to [-c, c], as g - relu(g - c) + relu(-g - c).
// clip_norm c: all gradients scaled by min(1, c / (||g|| + 1e-6)), ||g|| the norm of all of them
// together (PyTorch's clip_grad_norm_), the min as 1 - relu(1 - x).
void clipGradients(Function &f, std::vector<int> &grads, const TrainSpec &t) {
  Builder b(f);
  if (t.clipValue > 0)
    for (int &g : grads) {
      int c = b.fill(t.clipValue, {});
      int over = b.unary(Op::Relu, b.binary(Op::Sub, g, c));
      int under = b.unary(Op::Relu, b.binary(Op::Sub, b.unary(Op::Neg, g), c));
      g = b.binary(Op::Add, b.binary(Op::Sub, g, over), under);
    }
  if (t.clipNorm > 0 && !grads.empty()) {
    int total = -1;
    for (int g : grads) {
      Shape s = b.shape(g);
      int sq = b.binary(Op::Mul, g, g);
      int sum = s.empty() ? sq : b.reduce(Op::ReduceSum, sq, (1u << s.size()) - 1);
      total = total < 0 ? sum : b.binary(Op::Add, total, sum);
    }
    int norm = b.binary(Op::Add, b.unary(Op::Sqrt, total), b.fill(1e-6, {}));
    int ratio = b.binary(Op::Div, b.fill(t.clipNorm, {}), norm);
    int scale = b.binary(Op::Sub, b.fill(1.0, {}), b.unary(Op::Relu, b.binary(Op::Sub, b.fill(1.0, {}), ratio)));
    for (int &g : grads)
      g = b.binary(Op::Mul, g, scale);
  }
}

} // namespace

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
  f.results.push_back({"loss", loss});
  clipGradients(f, grads, *program.train);
  m.state.clear();
  UpdateLowerer u(m, f, program.train->optimizer);
  for (size_t i = 0; i < params.size(); ++i) {
    int updated = u.update(m.params[i], params[i], grads[i]);
    f.results.push_back({m.params[i].name, updated, params[i]});
  }
}

} // namespace soma
