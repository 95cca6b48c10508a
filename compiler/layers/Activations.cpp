// Activations: elementwise, of any shape; softmax and log_softmax along one axis (the last by
// default: `softmax(axis: 0)` normalizes each column of a matrix).
//   sigmoid, tanh, relu: one op each              identity: x
//   leaky_relu(alpha = 0.01): relu(x) + a min(x, 0)
//   elu(alpha = 1):  relu(x) + a expm1(min(x, 0))   (both with slope a at 0, as PyTorch)
//   gelu:      x erfc(-x / sqrt 2) / 2 (= x (1 + erf(x / sqrt 2)) / 2, without the cancellation
//              of 1 + erf for x < 0)                silu: x sigmoid(x)
//   softplus:  relu(x) + log1p(exp(-|x|))          (accurate for large |x| of either sign)
//   softmax:   e = exp(x - max(x)); e / sum(e)      log_softmax: (x - max) - log(sum(e))
#include "layers/Layer.h"

namespace soma::layers {

using ir::Op;

namespace {

bool same(Layer &l, const LayerCall &) {
  l.out = l.in;
  return true;
}

bool alongAxis(Layer &l, const LayerCall &call) {
  int64_t rank = static_cast<int64_t>(l.in.size()), axis = static_cast<int64_t>(call.number("axis", -1));
  if (rank == 0)
    return call.wrongShape(l, "a value with an axis to normalize along");
  if (axis < -rank || axis >= rank)
    return call.wrongShape(l, "an axis " + std::to_string(axis) + " (from " + std::to_string(-rank) + " to " +
                                  std::to_string(rank - 1) + ")");
  l.attrs = AxisAttrs{axis < 0 ? axis + rank : axis};
  l.out = l.in;
  return true;
}

template <double Default> bool slope(Layer &l, const LayerCall &call) { // PyTorch's defaults
  l.attrs = SlopeAttrs{call.number("alpha", Default)};
  l.out = l.in;
  return true;
}

template <Op O> int unary(LayerLowering &cx, const Layer &, int x) { return cx.b.unary(O, x); }

int leakyRelu(LayerLowering &cx, const Layer &l, int x) {
  ir::Builder &b = cx.b;
  return b.binary(Op::Add, b.unary(Op::Relu, x),
                  b.binary(Op::Mul, b.fill(l.as<SlopeAttrs>().alpha, {}), negativePart(b, x)));
}

int elu(LayerLowering &cx, const Layer &l, int x) {
  ir::Builder &b = cx.b;
  int negPart = b.unary(Op::Expm1, negativePart(b, x));
  return b.binary(Op::Add, b.unary(Op::Relu, x), b.binary(Op::Mul, b.fill(l.as<SlopeAttrs>().alpha, {}), negPart));
}

int gelu(LayerLowering &cx, const Layer &, int x) {
  ir::Builder &b = cx.b;
  int e = b.unary(Op::Erfc, b.binary(Op::Mul, x, b.fill(-0.7071067811865476, {})));
  return b.binary(Op::Mul, b.binary(Op::Mul, x, b.fill(0.5, {})), e);
}

int silu(LayerLowering &cx, const Layer &, int x) { return cx.b.binary(Op::Mul, x, cx.b.unary(Op::Sigmoid, x)); }

int softplus(LayerLowering &cx, const Layer &, int x) {
  ir::Builder &b = cx.b;
  int tail = b.unary(Op::Log1p, b.unary(Op::Exp, b.unary(Op::Neg, absSloped(b, x))));
  return b.binary(Op::Add, b.unary(Op::Relu, x), tail);
}

template <bool Log> int softmaxLayer(LayerLowering &cx, const Layer &l, int x) {
  return softmax(cx.b, x, Log, l.as<AxisAttrs>().axis + 1); // after the batch axis
}

int identity(LayerLowering &, const Layer &, int x) { return x; }

const std::vector<Param> kAlpha = {{"alpha", ArgType::NonNegativeNumber, false}};
const std::vector<Param> kAxis = {{"axis", ArgType::Int, false}};

} // namespace

const LayerRecord Sigmoid{"sigmoid", {}, same, none, unary<Op::Sigmoid>};
const LayerRecord Tanh{"tanh", {}, same, none, unary<Op::Tanh>};
const LayerRecord Relu{"relu", {}, same, none, unary<Op::Relu>};
const LayerRecord LeakyRelu{"leaky_relu", kAlpha, slope<0.01>, none, leakyRelu};
const LayerRecord Elu{"elu", kAlpha, slope<1.0>, none, elu};
const LayerRecord Gelu{"gelu", {}, same, none, gelu};
const LayerRecord Silu{"silu", {}, same, none, silu};
const LayerRecord Softplus{"softplus", {}, same, none, softplus};
const LayerRecord Softmax{"softmax", kAxis, alongAxis, none, softmaxLayer<false>};
const LayerRecord LogSoftmax{"log_softmax", kAxis, alongAxis, none, softmaxLayer<true>};
const LayerRecord Identity{"identity", {}, same, none, identity};

} // namespace soma::layers
