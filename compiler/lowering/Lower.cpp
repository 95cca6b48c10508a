// The model graph becomes IR: each built-in layer by its record's lower() (layers/Layer.h, where
// each family's file lists its decompositions), the math of expressions op by op, and the losses.
// Losses (means over the batch B and the k outputs of a sample; t the target: the label, one_hot(label, k)
// or a value of the model of the output's shape; d = y - t):
//   mse: d^2     mae: |d|     huber(delta): 0.5 d^2 where |d| <= delta, else delta (|d| - delta / 2)
//   cross_entropy:        sum(softmax_xent(z, t)) / B (the fused op: -sum t log_softmax(z) per
//                         sample), z the logits before a final softmax or log_softmax; with class
//                         weights w: -sum(w[y] log p[y]) / sum(w[y])
//   binary_cross_entropy: max(z, 0) - z t + log1p(e^-|z|), z the logits before a final sigmoid
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
  bool training;
  LayerLowering cx; // the parameters' and buffers' IR values, in `out.params` and `out.buffers` order

  Lowerer(const Program &p, LoweredModel &m, Function &fn, bool train)
      : program(p), out(m), f(fn), b(fn), training(train), cx{b, train, {}, {}, -1, {}, -1} {}

  // The IR shape of a graph value: a batched value gets the batch axis in front.
  static Shape irShape(const GraphNode &n) { return n.batched ? batched(n.dims) : Shape(n.dims); }

  // `v` (of graph node `from`) broadcast to the shape of graph node `to`, NumPy-style over the
  // per-sample axes (see ast/Expressions.cpp): size-1 axes are reshaped away, then the missing axes
  // (and the batch axis, for a static value) are inserted.
  int broadcastTo(int v, const GraphNode &from, const GraphNode &to) {
    if (irShape(from) == irShape(to) || (from.dims.empty() && !from.batched))
      return v; // the same, or a scalar: binary ops take those as they are
    size_t lead = to.batched ? 1 : 0, offset = to.dims.size() - from.dims.size();
    Shape kept;
    uint32_t newAxes = to.batched && !from.batched ? 1u : 0u;
    if (from.batched)
      kept.push_back(kBatch);
    for (size_t j = 0; j < to.dims.size(); ++j) {
      bool present = j >= offset && from.dims[j - offset] == to.dims[j];
      if (present)
        kept.push_back(to.dims[j]);
      else
        newAxes |= 1u << (lead + j);
    }
    if (kept != irShape(from))
      v = b.reshape(v, kept);
    return newAxes ? b.broadcast(v, irShape(to), newAxes) : v;
  }

  // |x| with slope 0 at 0 (mae; absSloped in layers/Layer.h has the one softplus needs).
  int abs(int x) { return b.binary(Op::Add, b.unary(Op::Relu, x), b.unary(Op::Relu, b.unary(Op::Neg, x))); }

  // x @ w (Expressions.cpp has the cases). The IR's product takes matrices, and rows of more
  // axes against a matrix: anything times a static matrix is one ([B, k] x [k, n], a sample's
  // matrix [B, t, k] x [k, n] as B*t rows), and static values fold their leading axes into rows.
  // Products of the samples' own matrices (attention's q @ transpose(k)) are a broadcast product
  // summed over k: [.., m, k, 1] * [.., 1, k, n] -> [.., m, n], elementwise and reduce ops that fuse.
  int matmul(const GraphNode &n, int x, const GraphNode &xn, int w, const GraphNode &wn) {
    Shape xs = b.shape(x), out = irShape(n);
    if (!wn.batched && wn.dims.size() == 2) {
      int64_t rows = 1;
      for (size_t i = 0; i + 1 < xs.size(); ++i)
        rows *= xs[i];
      if (xn.batched || xs.size() == 2)
        return b.matmul(x, w);
      return b.reshape(b.matmul(b.reshape(x, {rows, xs.back()}), w), out);
    }
    size_t r = out.size() + 1; // [.., m, k, n]
    Shape full(out.begin(), out.end() - 1);
    full.push_back(xs.back());
    full.push_back(out.back());
    uint32_t batch = n.batched ? 1u : 0u; // the batch axis, new to an operand that has none
    int xb = b.broadcast(x, full, 1u << (r - 1) | (xn.batched ? 0u : batch));
    int wb = !wn.batched && wn.dims.size() == 2 ? b.broadcast(w, full, (1u << (r - 2)) - 1) // every row
                                                : b.broadcast(w, full, 1u << (r - 3) | (wn.batched ? 0u : batch));
    return b.reduce(Op::ReduceSum, b.binary(Op::Mul, xb, wb), 1u << (r - 2));
  }

  // One graph node, its operands already lowered (in `ir`).
  int node(const GraphNode &n, const std::vector<int> &ir) {
    const std::vector<GraphNode> &g = program.model.nodes;
    auto arg = [&](size_t i) { return ir[static_cast<size_t>(n.args[i])]; };
    auto argNode = [&](size_t i) -> const GraphNode & { return g[static_cast<size_t>(n.args[i])]; };
    switch (n.kind) {
    case GraphNode::Kind::Input:
      return -1;                       // bound by the caller
    case GraphNode::Kind::InputPart: { // its window of the features, in its own shape
      int64_t size = 1;
      for (int64_t d : n.dims)
        size *= d;
      return b.reshape(b.slice(arg(0), 1, n.axis, {kBatch, size}), irShape(n));
    }
    case GraphNode::Kind::Param:
      return cx.params[static_cast<size_t>(n.param)];
    case GraphNode::Kind::Number:
      return b.fill(n.number, {});
    case GraphNode::Kind::Layer:
      return layerRecord(n.layer.kind).lower(cx, n.layer, arg(0));
    case GraphNode::Kind::Unary:
      switch (n.op) {
      case MathOp::Neg:
        return b.unary(Op::Neg, arg(0));
      case MathOp::Exp:
        return b.unary(Op::Exp, arg(0));
      case MathOp::Log:
        return b.unary(Op::Log, arg(0));
      case MathOp::Sqrt:
        return b.unary(Op::Sqrt, arg(0));
      case MathOp::Erf:
        return b.unary(Op::Erf, arg(0));
      case MathOp::Abs:
        return abs(arg(0));
      default:
        break;
      }
      break;
    case GraphNode::Kind::Binary: {
      int x = broadcastTo(arg(0), argNode(0), n), y = broadcastTo(arg(1), argNode(1), n);
      switch (n.op) {
      case MathOp::Add:
        return b.binary(Op::Add, x, y);
      case MathOp::Sub:
        return b.binary(Op::Sub, x, y);
      case MathOp::Mul:
        return b.binary(Op::Mul, x, y);
      case MathOp::Div:
        return b.binary(Op::Div, x, y);
      case MathOp::Maximum: // x + relu(y - x)
        return b.binary(Op::Add, x, b.unary(Op::Relu, b.binary(Op::Sub, y, x)));
      case MathOp::Minimum: // x - relu(x - y)
        return b.binary(Op::Sub, x, b.unary(Op::Relu, b.binary(Op::Sub, x, y)));
      default:
        break;
      }
      break;
    }
    case GraphNode::Kind::MatMul:
      return matmul(n, arg(0), argNode(0), arg(1), argNode(1));
    case GraphNode::Kind::Reduce: {
      uint32_t axes = argNode(0).batched ? n.axes << 1 : n.axes;
      int r = b.reduce(n.reduce == ReduceKind::Max ? Op::ReduceMax : Op::ReduceSum, arg(0), axes);
      if (n.reduce != ReduceKind::Mean)
        return r;
      int64_t count = 1;
      for (size_t i = 0; i < argNode(0).dims.size(); ++i)
        if (n.axes >> i & 1)
          count *= argNode(0).dims[i];
      return b.binary(Op::Mul, r, b.fill(1.0 / static_cast<double>(count), {}));
    }
    case GraphNode::Kind::Reshape:
      return irShape(n) == b.shape(arg(0)) ? arg(0) : b.reshape(arg(0), irShape(n));
    case GraphNode::Kind::Transpose: {
      Shape perm;
      if (n.batched)
        perm.push_back(0);
      for (int64_t p : n.perm)
        perm.push_back(p + (n.batched ? 1 : 0));
      return b.transpose(arg(0), perm);
    }
    case GraphNode::Kind::Concat: { // the operands padded to the whole, then added
      int64_t axis = n.axis + (n.batched ? 1 : 0), offset = 0;
      int sum = -1;
      for (size_t i = 0; i < n.args.size(); ++i) {
        int padded = b.pad(arg(i), axis, offset, irShape(n));
        offset += argNode(i).dims[static_cast<size_t>(n.axis)];
        sum = sum < 0 ? padded : b.binary(Op::Add, sum, padded);
      }
      return sum;
    }
    }
    return -1;
  }

  // The mean over the batch (and the outputs) of a per-element loss; see the list at the top.
  // One term of the loss on graph node `node` (its value in `ir`).
  int loss(const LossTerm &t, int node, const std::vector<int> &ir, int label, int invBatch) {
    const GraphNode &out = program.model.nodes[static_cast<size_t>(node)];
    int y = ir[static_cast<size_t>(node)];
    int beforeLast = out.kind == GraphNode::Kind::Layer ? ir[static_cast<size_t>(out.args[0])] : y;
    int64_t k = 1; // the outputs of a sample
    for (int64_t d : out.dims)
      k *= d;
    LayerKind last = out.kind == GraphNode::Kind::Layer ? out.layer.kind : LayerKind::Identity;
    int target = t.target >= 0                                  ? ir[static_cast<size_t>(t.target)]
                 : t.oneHot || t.kind == LossKind::CrossEntropy ? b.oneHot(label, k)
                                                                : b.reshape(label, irShape(out));
    uint32_t all = (1u << (out.dims.size() + 1)) - 1;
    auto c = [&](double v) { return b.fill(v, {}); };
    auto mul = [&](int x, int z) { return b.binary(Op::Mul, x, z); };
    auto meanOverAll = [&](int perElement) {
      return mul(b.reduce(Op::ReduceSum, perElement, all), mul(invBatch, c(1.0 / static_cast<double>(k))));
    };
    switch (t.kind) {
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
      int tail = b.unary(Op::Log1p, b.unary(Op::Exp, b.unary(Op::Neg, absSloped(b, z))));
      return meanOverAll(b.binary(Op::Add, b.binary(Op::Sub, b.unary(Op::Relu, z), mul(z, target)), tail));
    }
    case LossKind::CrossEntropy: {
      bool fromLogits = last == LayerKind::Softmax || last == LayerKind::LogSoftmax;
      // -log p of the target class, by the fused op (its gradient is softmax - target, one kernel)
      int perSample = b.add(Op::SoftmaxXent, {fromLogits ? beforeLast : y, target}, {});
      if (t.classWeights.empty())
        return mul(b.reduce(Op::ReduceSum, perSample, 1), invBatch);
      // As PyTorch: -sum_i w[y_i] log p_i / sum_i w[y_i].
      int w = b.broadcast(b.constant(t.classWeights, {k}), {kBatch, k}, 1);
      int wy = b.reduce(Op::ReduceSum, mul(target, w), 2);
      return b.binary(Op::Div, b.reduce(Op::ReduceSum, mul(wy, perSample), 1), b.reduce(Op::ReduceSum, wy, 1));
    }
    }
    return -1;
  }

  void run() {
    f.name = "forward";
    const ModelSpec &m = program.model;
    int x = b.input(kInputX, InputRole::Data, batched(m.inputDims));
    int64_t labelSize = program.train ? program.train->labelSize : 1; // [batch], or [batch, k] with several
    int label = b.input(kInputLabel, InputRole::Label, labelSize > 1 ? Shape{kBatch, labelSize} : Shape{kBatch});
    bool fresh = out.params.empty();
    for (const ParamSpec &p : m.params)
      if (fresh)
        out.params.push_back({p.name, p.dims, p.fanIn, p.lrMult, p.fanOut, p.init});
    if (fresh)
      for (const ParamSpec &p : m.buffers)
        out.buffers.push_back({p.name, p.dims, p.fanIn, p.lrMult, p.fanOut, p.init});
    for (const ParamInfo &p : out.params)
      cx.params.push_back(b.input(p.name, InputRole::Param, p.shape));
    for (const ParamInfo &p : out.buffers)
      cx.buffers.push_back(b.input(p.name, InputRole::State, p.shape));
    cx.invBatch = b.input(kInputInvBatch, InputRole::Scalar, {});
    std::vector<int> ir(m.nodes.size(), -1);
    ir[0] = x;
    for (size_t i = 1; i < m.nodes.size(); ++i)
      ir[i] = node(m.nodes[i], ir);
    int y = ir[static_cast<size_t>(m.output)];
    f.results.push_back({"output", y});
    this->out.outputs = 1;
    for (int64_t d : m.outputDims())
      this->out.outputs *= d;
    if (program.train) { // the weighted sum of the terms
      int total = -1;
      for (const LossTerm &t : program.train->losses) {
        int term = loss(t, t.output >= 0 ? t.output : m.output, ir, label, cx.invBatch);
        if (t.weight != 1)
          term = b.binary(Op::Mul, term, b.fill(t.weight, {}));
        total = total < 0 ? term : b.binary(Op::Add, total, term);
      }
      f.results.push_back({"loss", total});
    }
    for (const Result &r : cx.bufferUpdates)
      f.results.push_back(r);
  }
};

} // namespace

LoweredModel lowerModel(const Program &program) {
  LoweredModel m;
  Lowerer(program, m, m.forward, false).run();
  return m;
}

Function lowerTrainingForward(LoweredModel &m, const Program &program) {
  Function f;
  Lowerer(program, m, f, true).run();
  f.name = "train_step";
  return f;
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
    ParamInfo s = p; // its shape and learning-rate multiplier
    s.name = p.name + "." + what;
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
  m.train = lowerTrainingForward(m, program);
  Function &f = m.train;
  int loss = -1;
  std::vector<Result> keep; // the running statistics' updates
  for (const Result &r : f.results)
    if (r.name == "loss")
      loss = r.value;
    else if (r.updates >= 0)
      keep.push_back(r);
  f.results = keep;
  std::vector<int> params;
  for (const ParamInfo &p : m.params)
    params.push_back(f.findInput(p.name));
  std::vector<int> grads = autodiff::appendGradients(f, loss, params);
  f.results.insert(f.results.begin(), {"loss", loss});
  clipGradients(f, grads, *program.train);
  m.state.clear();
  UpdateLowerer u(m, f, program.train->optimizer);
  for (size_t i = 0; i < params.size(); ++i) {
    int updated = u.update(m.params[i], params[i], grads[i]);
    f.results.push_back({m.params[i].name, updated, params[i]});
  }
}

} // namespace soma
