// Each layer becomes a few primitive ops:
//   dense(n):  x @ w + broadcast(b)        (w is [in, n], b is [n])
//   flatten:   reshape to [B, prod(dims)]
//   conv2d:    conv2d(x, w) + broadcast(b)      (w is [filters, channels, k, k], b is [filters]), at
//              any stride (transforms/Phases.h runs those the target has no kernel for over phases)
//   maxpool2d(k): max_pool2d (one op, its own vector kernels forward and backward)
//   avgpool2d(k): reshape [B, C, H, W] to [B, C, H/k, k, W/k, k], sum over the two k axes, times 1/k^2
//   global_avgpool: sum over H, W times 1/(HW)
//   embedding(v, d): sum over v of one_hot(ids, v) * table   (table is [v, d]; ids outside give 0)
//   softmax:   e = exp(x - max(x)); e / sum(e)      log_softmax: (x - max) - log(sum(e))
//   leaky_relu(a): relu(x) + a min(x, 0)            elu(a): relu(x) + a expm1(min(x, 0))
//              (min(x, 0) = x - relu(x): the slope at 0 is PyTorch's, a)
//   gelu:      x erfc(-x / sqrt 2) / 2 (= x (1 + erf(x / sqrt 2)) / 2, without the cancellation
//              of 1 + erf for x < 0)                silu: x sigmoid(x)
//   softplus:  relu(x) + log1p(exp(-|x|))          (accurate for large |x| of either sign)
// Losses (means over the batch B and the k outputs; t the target, d = y - t):
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
  std::vector<int> params;  // input node ids, in `out.params` order
  std::vector<int> buffers; // in `out.buffers` order
  int invBatch = -1, dropoutSeed = -1;
  std::vector<Result> bufferUpdates; // training: batchnorm's running statistics

  Lowerer(const Program &p, LoweredModel &m, Function &fn, bool train)
      : program(p), out(m), f(fn), b(fn), training(train) {}

  // Normalization over `axes` of x (IR axes): (x - mean) / sqrt(var + eps), with the statistics
  // given or computed here over `count` elements (1/count given as the IR value invCount).
  struct Stats {
    int mean, var;
  };
  Stats statistics(int x, uint32_t axes, int invCount) {
    Shape s = b.shape(x);
    int mean = b.binary(Op::Mul, b.reduce(Op::ReduceSum, x, axes), invCount);
    int d = b.binary(Op::Sub, x, b.broadcast(mean, s, axes));
    int var = b.binary(Op::Mul, b.reduce(Op::ReduceSum, b.binary(Op::Mul, d, d), axes), invCount);
    return {mean, var};
  }
  int normalize(int x, int mean, int var, uint32_t axes, double eps) {
    Shape s = b.shape(x);
    int d = b.binary(Op::Sub, x, b.broadcast(mean, s, axes));
    int scale = b.unary(Op::Sqrt, b.binary(Op::Add, var, b.fill(eps, {})));
    return b.binary(Op::Div, d, b.broadcast(scale, s, axes));
  }
  // y * scale + shift, the parameters broadcast over `axes` of y.
  int affine(int y, const Layer &l, uint32_t axes) {
    Shape s = b.shape(y);
    int scaled = b.binary(Op::Mul, y, b.broadcast(params[static_cast<size_t>(l.weight)], s, axes));
    return b.binary(Op::Add, scaled, b.broadcast(params[static_cast<size_t>(l.bias)], s, axes));
  }

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

  // The IR shape of a graph value: a batched value gets the batch axis in front.
  static Shape irShape(const GraphNode &n) { return n.batched ? batched(n.dims) : Shape(n.dims); }

  // `v` (of graph node `from`) broadcast to the shape of graph node `to`, NumPy-style over the
  // per-sample axes (see ast/Graph.cpp): size-1 axes are reshaped away, then the missing axes
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

  // Elements 0, t, 2t, ... (`count` of them) of v along `axis` (an image axis of [B, C, H, W]):
  // v padded to count * t there, the axis split into [count, t], the first of each t kept. A
  // convolution whose strides differ between the axes runs at the stride they share (their
  // gcd) and keeps every t-th output along the other: t times the work of that axis, on the
  // stride-1 kernels rather than the direct loops.
  int everyNth(int v, size_t axis, int64_t t, int64_t count) {
    Shape s = b.shape(v);
    if (s[axis] < count * t) {
      s[axis] = count * t;
      v = b.pad(v, static_cast<int64_t>(axis), 0, s);
    } else if (s[axis] > count * t) {
      s[axis] = count * t;
      v = b.slice(v, static_cast<int64_t>(axis), 0, s);
    }
    Shape split = s;
    split[axis] = count;
    split.insert(split.begin() + static_cast<std::ptrdiff_t>(axis) + 1, t);
    Shape first = split;
    first[axis + 1] = 1;
    Shape out = s;
    out[axis] = count;
    return b.reshape(b.slice(b.reshape(v, split), static_cast<int64_t>(axis) + 1, 0, first), out);
  }

  static ir::Pool2D pool(const Layer &l) {
    ir::Pool2D p;
    p.kernel = l.window;
    p.stride = l.windowStride;
    p.padding = l.windowPadding;
    p.out = {l.out[1], l.out[2]};
    p.includePad = l.countIncludePad;
    return p;
  }

  // PyTorch's adaptive windows, [floor(i n / o), ceil((i + 1) n / o)) along each axis. Where
  // they are one window at one stride (o divides n, or n = 7, o = 3) an avg pooling; along an
  // axis where they are not, each output row is the mean of its slice, the rows then stacked.
  int adaptiveAvgPool(const Layer &l, int cur) {
    ir::Pool2D p;
    std::array<bool, 2> uniform{};
    for (size_t a = 0; a < 2; ++a) {
      int64_t n = l.in[a + 1], o = l.out[a + 1], k = (n + o - 1) / o, s = o > 1 ? (n - k) / (o - 1) : 1;
      uniform[a] = o == 1 || s >= 1; // an output larger than the input shares windows: slices
      for (int64_t i = 0; i < o; ++i)
        uniform[a] = uniform[a] && i * n / o == i * s && ((i + 1) * n + o - 1) / o == i * s + k;
      p.kernel[a] = uniform[a] ? k : 1;
      p.stride[a] = uniform[a] ? std::max<int64_t>(s, 1) : 1;
      p.out[a] = uniform[a] ? o : n;
    }
    if (uniform[0] && uniform[1])
      return b.avgPool2d(cur, p);
    Shape shape = b.shape(cur);
    for (int axis = 2; axis < 4; ++axis) {
      auto a = static_cast<size_t>(axis - 2);
      if (uniform[a])
        continue;
      int64_t n = shape[static_cast<size_t>(axis)], o = l.out[a + 1];
      Shape out = shape, part = shape;
      out[static_cast<size_t>(axis)] = o;
      int sum = -1;
      for (int64_t i = 0; i < o; ++i) {
        int64_t begin = i * n / o, end = ((i + 1) * n + o - 1) / o;
        part[static_cast<size_t>(axis)] = end - begin;
        int mean = b.binary(Op::Mul, b.reduce(Op::ReduceSum, b.slice(cur, axis, begin, part), 1u << axis),
                            b.fill(1.0 / static_cast<double>(end - begin), {}));
        Shape one = out;
        one[static_cast<size_t>(axis)] = 1;
        int row = b.pad(b.reshape(mean, one), axis, i, out);
        sum = sum < 0 ? row : b.binary(Op::Add, sum, row);
      }
      cur = sum;
      shape = out;
    }
    if (!uniform[0] && !uniform[1])
      return cur;
    p.out = {l.out[1], l.out[2]}; // the uniform axis pooled, the other (already o) by windows of 1
    return b.avgPool2d(cur, p);
  }

  int layer(const Layer &l, int cur) {
    switch (l.kind) {
    case LayerKind::Dense: {
      int mm = b.matmul(cur, params[static_cast<size_t>(l.weight)]);
      return b.binary(Op::Add, mm, b.broadcast(params[static_cast<size_t>(l.bias)], b.shape(mm), 1));
    }
    case LayerKind::Flatten:
      return b.reshape(cur, batched(l.out));
    case LayerKind::Conv2D: {
      // Padding that differs between the axes or sides: the conv's own padding is the least of
      // them, the rest explicit zeros around x.
      int64_t p = std::min({l.windowPadding[0], l.windowPadding[1], l.windowPadEnd[0], l.windowPadEnd[1]});
      for (size_t a = 0; a < 2; ++a)
        if (l.windowPadding[a] > p || l.windowPadEnd[a] > p) {
          Shape padded = b.shape(cur);
          padded[a + 2] += l.windowPadding[a] + l.windowPadEnd[a] - 2 * p;
          cur = b.pad(cur, static_cast<int64_t>(a) + 2, l.windowPadding[a] - p, padded);
        }
      // A dilated one with a stride (not depthwise, whose kernels take both) runs at stride 1
      // along rows, keeping every stride-th output: more work than the direct loops would do,
      // at several times their speed (they are its only way at a stride; phases do not split
      // dilated taps).
      bool depthwise = l.groups > 1 && l.in[0] == l.groups;
      int64_t stride = l.dilation != std::array<int64_t, 2>{1, 1} && !depthwise ? 1 : l.stride;
      int y = b.conv2d(cur, params[static_cast<size_t>(l.weight)], {stride, p, l.dilation, l.groups});
      for (size_t a = 0; a < 2; ++a) // a stride of its own along this axis: every t-th of the outputs
        if (int64_t t = l.windowStride[a] / stride; t > 1)
          y = everyNth(y, a + 2, t, l.out[a + 1]);
      return b.binary(Op::Add, y, b.broadcast(params[static_cast<size_t>(l.bias)], b.shape(y), 0b1101));
    }
    case LayerKind::MaxPool2D:
      return b.maxPool2d(cur, pool(l));
    case LayerKind::AvgPool2D: {
      ir::Pool2D p = pool(l);
      if (!ir::poolTiles(p, l.in[1], l.in[2])) // else each window a tile: a reshape and a sum
        return b.avgPool2d(cur, p);
      int tiles = b.reshape(cur, {kBatch, l.in[0], l.out[1], p.kernel[0], l.out[2], p.kernel[1]});
      int pooled = b.reduce(Op::ReduceSum, tiles, 0b101000);
      return b.binary(Op::Mul, pooled, b.fill(1.0 / static_cast<double>(p.kernel[0] * p.kernel[1]), {}));
    }
    case LayerKind::AdaptiveAvgPool2D:
      return adaptiveAvgPool(l, cur);
    case LayerKind::GlobalAvgPool:
      return b.binary(Op::Mul, b.reduce(Op::ReduceSum, cur, 0b1100),
                      b.fill(1.0 / static_cast<double>(l.in[1] * l.in[2]), {}));
    case LayerKind::Sigmoid:
      return b.unary(Op::Sigmoid, cur);
    case LayerKind::Tanh:
      return b.unary(Op::Tanh, cur);
    case LayerKind::Relu:
      return b.unary(Op::Relu, cur);
    case LayerKind::LeakyRelu: // relu(x) + a min(x, 0): slope a at 0, as PyTorch
      return b.binary(Op::Add, b.unary(Op::Relu, cur), b.binary(Op::Mul, b.fill(l.alpha, {}), negativePart(cur)));
    case LayerKind::Elu: {
      int negPart = b.unary(Op::Expm1, negativePart(cur)); // slope a at 0, as PyTorch
      return b.binary(Op::Add, b.unary(Op::Relu, cur), b.binary(Op::Mul, b.fill(l.alpha, {}), negPart));
    }
    case LayerKind::Gelu: {
      int e = b.unary(Op::Erfc, b.binary(Op::Mul, cur, b.fill(-0.7071067811865476, {})));
      return b.binary(Op::Mul, b.binary(Op::Mul, cur, b.fill(0.5, {})), e);
    }
    case LayerKind::Silu:
      return b.binary(Op::Mul, cur, b.unary(Op::Sigmoid, cur));
    case LayerKind::Softplus: {
      int tail = b.unary(Op::Log1p, b.unary(Op::Exp, b.unary(Op::Neg, absSloped(cur))));
      return b.binary(Op::Add, b.unary(Op::Relu, cur), tail);
    }
    case LayerKind::Softmax:
      return softmaxLog(cur, false);
    case LayerKind::LogSoftmax:
      return softmaxLog(cur, true);
    case LayerKind::Identity:
      return cur;
    case LayerKind::Dropout: { // training: x * [u > p] / (1 - p), u uniform per element and step
      if (!training || l.alpha == 0)
        return cur;
      if (dropoutSeed < 0)
        dropoutSeed = b.input(kInputDropoutSeed, InputRole::Scalar, {});
      int u = b.random(dropoutSeed, b.shape(cur), l.salt);
      int keep = b.unary(Op::Step, b.binary(Op::Sub, u, b.fill(l.alpha, {})));
      return b.binary(Op::Mul, cur, b.binary(Op::Mul, keep, b.fill(1.0 / (1.0 - l.alpha), {})));
    }
    case LayerKind::Embedding: { // sum over the vocabulary of one_hot(ids) * table: a row per id
      Shape ids = b.shape(cur), full = ids;
      size_t rank = ids.size();
      full.push_back(l.kernel);
      full.push_back(l.units);
      int hot = b.broadcast(b.oneHot(cur, l.kernel), full, 1u << (rank + 1));
      int table = b.broadcast(params[static_cast<size_t>(l.weight)], full, (1u << rank) - 1);
      return b.reduce(Op::ReduceSum, b.binary(Op::Mul, hot, table), 1u << rank);
    }
    case LayerKind::LayerNorm: { // over every axis of the sample
      Shape s = b.shape(cur);
      uint32_t axes = ((1u << s.size()) - 1) & ~1u;
      int64_t count = 1;
      for (size_t i = 1; i < s.size(); ++i)
        count *= s[i];
      Stats st = statistics(cur, axes, b.fill(1.0 / static_cast<double>(count), {}));
      return affine(normalize(cur, st.mean, st.var, axes, l.eps), l, 1);
    }
    case LayerKind::BatchNorm: { // per channel (axis 1), over the batch and the image's pixels
      Shape s = b.shape(cur);
      uint32_t axes = s.size() == 2 ? 0b1 : 0b1101;
      int rm = buffers[static_cast<size_t>(l.runningMean)], rv = buffers[static_cast<size_t>(l.runningVar)];
      if (!training)
        return affine(normalize(cur, rm, rv, axes, l.eps), l, axes);
      int64_t pixels = s.size() == 2 ? 1 : s[2] * s[3];
      int invCount = b.binary(Op::Mul, invBatch, b.fill(1.0 / static_cast<double>(pixels), {}));
      Stats st = statistics(cur, axes, invCount);
      // PyTorch: running = (1 - m) running + m stat, with the unbiased variance (n / (n - 1)).
      auto average = [&](int running, int stat) {
        return b.binary(Op::Add, b.binary(Op::Mul, b.fill(1 - l.momentum, {}), running),
                        b.binary(Op::Mul, b.fill(l.momentum, {}), stat));
      };
      int unbiased = b.binary(Op::Div, st.var, b.binary(Op::Sub, b.fill(1.0, {}), invCount));
      bufferUpdates.push_back({f.nodes[static_cast<size_t>(rm)].attrs.name, average(rm, st.mean), rm});
      bufferUpdates.push_back({f.nodes[static_cast<size_t>(rv)].attrs.name, average(rv, unbiased), rv});
      return affine(normalize(cur, st.mean, st.var, axes, l.eps), l, axes);
    }
    }
    return cur;
  }

  int abs(int x) { return b.binary(Op::Add, b.unary(Op::Relu, x), b.unary(Op::Relu, b.unary(Op::Neg, x))); }
  // The pieces of piecewise activations, with the derivative the formula's smooth side has at 0
  // (relu's derivative is 0 there, so relu(x) - a relu(-x) would have slope 0 at 0: for elu and
  // softplus, neither one-sided slope): min(x, 0) = x - relu(x), slope 1 at 0; and |x| as
  // 2 relu(x) - x, slope -1 at 0, for softplus and binary cross-entropy, whose |x| terms
  // complete the other terms' slope to the true one there (abs() keeps slope 0 for mae).
  int negativePart(int x) { return b.binary(Op::Sub, x, b.unary(Op::Relu, x)); }
  int absSloped(int x) { return b.binary(Op::Sub, b.binary(Op::Mul, b.fill(2.0, {}), b.unary(Op::Relu, x)), x); }

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
      return params[static_cast<size_t>(n.param)];
    case GraphNode::Kind::Number:
      return b.fill(n.number, {});
    case GraphNode::Kind::Layer:
      return layer(n.layer, arg(0));
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
      return b.matmul(arg(0), arg(1));
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
    int64_t k = out.dims[0];
    LayerKind last = out.kind == GraphNode::Kind::Layer ? out.layer.kind : LayerKind::Identity;
    int target = t.oneHot || t.kind == LossKind::CrossEntropy ? b.oneHot(label, k) : b.reshape(label, {kBatch, 1});
    uint32_t all = (1u << 2) - 1;
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
      int tail = b.unary(Op::Log1p, b.unary(Op::Exp, b.unary(Op::Neg, absSloped(z))));
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
    int label = b.input(kInputLabel, InputRole::Label, {kBatch});
    bool fresh = out.params.empty();
    for (const ParamSpec &p : m.params)
      if (fresh)
        out.params.push_back({p.name, p.dims, p.fanIn, p.lrMult, p.fanOut, p.init});
    if (fresh)
      for (const ParamSpec &p : m.buffers)
        out.buffers.push_back({p.name, p.dims, p.fanIn, p.lrMult, p.fanOut, p.init});
    for (const ParamInfo &p : out.params)
      params.push_back(b.input(p.name, InputRole::Param, p.shape));
    for (const ParamInfo &p : out.buffers)
      buffers.push_back(b.input(p.name, InputRole::State, p.shape));
    invBatch = b.input(kInputInvBatch, InputRole::Scalar, {});
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
        int term = loss(t, t.output >= 0 ? t.output : m.output, ir, label, invBatch);
        if (t.weight != 1)
          term = b.binary(Op::Mul, term, b.fill(t.weight, {}));
        total = total < 0 ? term : b.binary(Op::Add, total, term);
      }
      f.results.push_back({"loss", total});
    }
    for (const Result &r : bufferUpdates)
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
