// Layers that behave differently in training, and the normalizations:
//   dropout(p):      training: x * [u > p] / (1 - p), u uniform per element and step; else x
//   batchnorm(momentum, eps): per channel (axis 0 of the sample, [n] or [c, h, w]) over the
//                    batch and the pixels: (x - mean) / sqrt(var + eps) * scale + shift; training
//                    on the batch's statistics (updating the running ones as PyTorch does), else
//                    on the running ones
//   layernorm(eps, axes): over the last `axes` axes of the sample (all by default; 1 for each
//                    token of a [T, d] sequence, as PyTorch's LayerNorm(d)), scale and shift of
//                    their shape
#include "layers/Layer.h"

namespace soma::layers {

using ir::Op;
using ir::Shape;

namespace {

InitSpec constant(InitSpec::Kind kind) {
  InitSpec i;
  i.kind = kind;
  return i;
}

bool checkDropout(Layer &l, const LayerCall &call) {
  l.attrs = DropoutAttrs{call.number("p", 0), call.salt};
  l.out = l.in;
  return true;
}

int lowerDropout(LayerLowering &cx, const Layer &l, int x) {
  const DropoutAttrs &a = l.as<DropoutAttrs>();
  if (!cx.training || a.p == 0)
    return x;
  ir::Builder &b = cx.b;
  int u = b.random(cx.seed(), b.shape(x), a.salt);
  int keep = b.unary(Op::Step, b.binary(Op::Sub, u, b.fill(a.p, {})));
  return b.binary(Op::Mul, x, b.binary(Op::Mul, keep, b.fill(1.0 / (1.0 - a.p), {})));
}

bool checkBatchNorm(Layer &l, const LayerCall &call) {
  if (l.in.size() != 1 && l.in.size() != 3)
    return call.wrongShape(l, "a vector [n] or an image [c, h, w]");
  l.attrs = NormAttrs{call.number("momentum", 0.1), call.number("eps", 1e-5)};
  l.out = l.in;
  return true;
}

bool checkLayerNorm(Layer &l, const LayerCall &call) {
  if (l.in.empty())
    return call.wrongShape(l, "a value with axes");
  int64_t rank = static_cast<int64_t>(l.in.size()), axes = static_cast<int64_t>(call.number("axes", 0));
  if (axes > rank)
    return call.wrongShape(l, "at least " + std::to_string(axes) + " axes to normalize over");
  l.attrs = NormAttrs{0.1, call.number("eps", 1e-5), axes > 0 ? axes : rank};
  l.out = l.in;
  return true;
}

// A scale (ones) and a shift (zeros) per channel or per element; batchnorm's running mean and
// variance besides.
std::vector<LayerParam> normParams(const Layer &l) {
  bool batch = l.kind == LayerKind::BatchNorm;
  Dims shape = batch ? Dims{l.in[0]} : Dims(l.in.end() - l.as<NormAttrs>().axes, l.in.end());
  InitSpec ones = constant(InitSpec::Kind::Ones), zeros = constant(InitSpec::Kind::Zeros);
  std::vector<LayerParam> p = {{"scale", shape, LayerParam::Role::Fixed, ones, false},
                               {"shift", shape, LayerParam::Role::Fixed, zeros, false}};
  if (batch) {
    p.push_back({"running_mean", shape, LayerParam::Role::Fixed, zeros, true});
    p.push_back({"running_var", shape, LayerParam::Role::Fixed, ones, true});
  }
  return p;
}

// The mean and variance of x over `axes` (IR axes), 1/count given as the IR value invCount.
struct Stats {
  int mean, var;
};
Stats statistics(ir::Builder &b, int x, uint32_t axes, int invCount) {
  Shape s = b.shape(x);
  int mean = b.binary(Op::Mul, b.reduce(Op::ReduceSum, x, axes), invCount);
  int d = b.binary(Op::Sub, x, b.broadcast(mean, s, axes));
  int var = b.binary(Op::Mul, b.reduce(Op::ReduceSum, b.binary(Op::Mul, d, d), axes), invCount);
  return {mean, var};
}

// (x - mean) / sqrt(var + eps) * scale + shift, the statistics and parameters broadcast over
// `axes` of x (the parameters over `paramAxes`).
int normalize(LayerLowering &cx, const Layer &l, int x, Stats st, uint32_t axes, uint32_t paramAxes) {
  ir::Builder &b = cx.b;
  Shape s = b.shape(x);
  int d = b.binary(Op::Sub, x, b.broadcast(st.mean, s, axes));
  int scale = b.unary(Op::Sqrt, b.binary(Op::Add, st.var, b.fill(l.as<NormAttrs>().eps, {})));
  int y = b.binary(Op::Div, d, b.broadcast(scale, s, axes));
  int scaled = b.binary(Op::Mul, y, b.broadcast(cx.param(l, 0), s, paramAxes));
  return b.binary(Op::Add, scaled, b.broadcast(cx.param(l, 1), s, paramAxes));
}

int lowerLayerNorm(LayerLowering &cx, const Layer &l, int x) {
  ir::Builder &b = cx.b;
  Shape s = b.shape(x);
  size_t first = s.size() - static_cast<size_t>(l.as<NormAttrs>().axes); // the first normalized IR axis
  uint32_t leading = (1u << first) - 1, axes = ((1u << s.size()) - 1) & ~leading;
  int64_t count = 1;
  for (size_t i = first; i < s.size(); ++i)
    count *= s[i];
  Stats st = statistics(b, x, axes, b.fill(1.0 / static_cast<double>(count), {}));
  return normalize(cx, l, x, st, axes, leading);
}

int lowerBatchNorm(LayerLowering &cx, const Layer &l, int x) {
  ir::Builder &b = cx.b;
  Shape s = b.shape(x);
  uint32_t axes = s.size() == 2 ? 0b1 : 0b1101;
  int rm = cx.buffer(l, 0), rv = cx.buffer(l, 1);
  if (!cx.training)
    return normalize(cx, l, x, {rm, rv}, axes, axes);
  int64_t pixels = s.size() == 2 ? 1 : s[2] * s[3];
  int invCount = b.binary(Op::Mul, cx.invBatch, b.fill(1.0 / static_cast<double>(pixels), {}));
  Stats st = statistics(b, x, axes, invCount);
  // PyTorch: running = (1 - m) running + m stat, with the unbiased variance (n / (n - 1)).
  double m = l.as<NormAttrs>().momentum;
  auto average = [&](int running, int stat) {
    return b.binary(Op::Add, b.binary(Op::Mul, b.fill(1 - m, {}), running), b.binary(Op::Mul, b.fill(m, {}), stat));
  };
  int unbiased = b.binary(Op::Div, st.var, b.binary(Op::Sub, b.fill(1.0, {}), invCount));
  const std::vector<ir::Node> &nodes = b.function().nodes;
  cx.bufferUpdates.push_back({nodes[static_cast<size_t>(rm)].attrs.name, average(rm, st.mean), rm});
  cx.bufferUpdates.push_back({nodes[static_cast<size_t>(rv)].attrs.name, average(rv, unbiased), rv});
  return normalize(cx, l, x, st, axes, axes);
}

} // namespace

const LayerRecord Dropout{"dropout", {{"p", ArgType::UnitInterval, true}}, checkDropout, none, lowerDropout};
const LayerRecord BatchNorm{"batchnorm",
                            {{"momentum", ArgType::UnitInterval, false}, {"eps", ArgType::PositiveNumber, false}},
                            checkBatchNorm,
                            normParams,
                            lowerBatchNorm};
const LayerRecord LayerNorm{"layernorm",
                            {{"eps", ArgType::PositiveNumber, false}, {"axes", ArgType::PositiveInt, false}},
                            checkLayerNorm,
                            normParams,
                            lowerLayerNorm};

} // namespace soma::layers
