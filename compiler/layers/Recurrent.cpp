// Recurrent layers over a sequence [steps, features] (a sample's time axis first, as PyTorch's
// batch_first), with PyTorch's gate equations and parameters (each weight the transpose of
// PyTorch's, as dense's is: w_ih [features, gates * hidden] is weight_ih_l0 transposed):
//   rnn(hidden):   h' = tanh(x w_ih + b_ih + h w_hh + b_hh)            (relu with nonlinearity: "relu")
//   lstm(hidden):  i, f, g, o = x w_ih + b_ih + h w_hh + b_hh, in four blocks of `hidden`;
//                  c' = sigmoid(f) c + sigmoid(i) tanh(g); h' = sigmoid(o) tanh(c')
//   gru(hidden):   r, z, n blocks of x w_ih + b_ih (xr, xz, xn) and of h w_hh + b_hh (hr, hz, hn);
//                  r = sigmoid(xr + hr), z = sigmoid(xz + hz), n = tanh(xn + r hn);
//                  h' = (1 - z) n + z h
// from zero states. The value is the last h [hidden], or with return_sequences every step's h
// [steps, hidden]; bidirectional adds a second set of parameters (suffix _reverse) run from the
// last step down, its h after the forward one's ([2 hidden]: for the last state, the reverse
// direction's after the whole sequence, as PyTorch's h_n). Stacked layers are layers in a row.
// Each direction is one loop op whose body is one step (ir::Op::Loop): the compiled code loops,
// and backpropagation through time is derived from the step by autodiff.
#include "layers/Layer.h"

#include <cmath>

namespace soma::layers {

using ir::kBatch;
using ir::Op;

namespace {

int64_t gatesOf(LayerKind k) { return k == LayerKind::Lstm ? 4 : k == LayerKind::Gru ? 3 : 1; }
int64_t directions(const Layer &l) { return l.as<RecurrentAttrs>().bidirectional ? 2 : 1; }

bool checkRecurrent(Layer &l, const LayerCall &call) {
  RecurrentAttrs a;
  a.hidden = static_cast<int64_t>(call.number("hidden", 0));
  a.sequences = call.flag("return_sequences", false);
  a.bidirectional = call.flag("bidirectional", false);
  if (const ast::Expr *e = call.arg("nonlinearity")) {
    if (e->text != "tanh" && e->text != "relu") {
      call.diags.report(DiagKind::ArgumentType, e->range, "nonlinearity", call.spelling, "\"tanh\" or \"relu\"",
                        kindOf(*e));
      return false;
    }
    a.relu = e->text == "relu";
  }
  if (l.in.size() != 2)
    return call.wrongShape(l, "a sequence [steps, features]");
  l.attrs = a;
  int64_t width = a.hidden * (a.bidirectional ? 2 : 1);
  l.out = a.sequences ? Dims{l.in[0], width} : Dims{width};
  return true;
}

std::vector<LayerParam> recurrentParams(const Layer &l) {
  const RecurrentAttrs &a = l.as<RecurrentAttrs>();
  int64_t g = gatesOf(l.kind) * a.hidden;
  InitSpec init; // PyTorch's: every parameter uniform in +-1/sqrt(hidden)
  init.kind = InitSpec::Kind::Uniform;
  init.a = -1 / std::sqrt(static_cast<double>(a.hidden));
  init.b = -init.a;
  std::vector<LayerParam> out;
  for (int64_t d = 0; d < directions(l); ++d) {
    bool rev = d == 1; // LayerParam keeps a C string: the suffixes are literals
    out.push_back({rev ? "w_ih_reverse" : "w_ih", {l.in[1], g}, LayerParam::Role::Weight, init, false});
    out.push_back({rev ? "w_hh_reverse" : "w_hh", {a.hidden, g}, LayerParam::Role::Weight, init, false});
    out.push_back({rev ? "b_ih_reverse" : "b_ih", {g}, LayerParam::Role::Bias, init, false});
    out.push_back({rev ? "b_hh_reverse" : "b_hh", {g}, LayerParam::Role::Bias, init, false});
  }
  return out;
}

// One step of the layer's cell: inputs h (and c), the step's xg = x w_ih + b_ih (every step's
// computed before the loop, as one product of B*T rows: see lowerRecurrent), then w_hh, b_hh;
// results h' (and c').
ir::Function cellStep(const Layer &l) {
  const RecurrentAttrs &a = l.as<RecurrentAttrs>();
  int64_t H = a.hidden, G = gatesOf(l.kind) * H;
  ir::Function body;
  ir::Builder c(body);
  int h = c.input("h", ir::InputRole::Data, {kBatch, H});
  int cell = l.kind == LayerKind::Lstm ? c.input("c", ir::InputRole::Data, {kBatch, H}) : -1;
  int xg = c.input("xg", ir::InputRole::Data, {kBatch, G});
  int wh = c.input("w_hh", ir::InputRole::Param, {H, G}), bh = c.input("b_hh", ir::InputRole::Param, {G});
  int hmm = c.matmul(h, wh);
  int hg = c.binary(Op::Add, hmm, c.broadcast(bh, c.shape(hmm), 1));
  auto block = [&](int v, int64_t k) { return c.slice(v, 1, k * H, {kBatch, H}); };
  auto add = [&](int p, int q) { return c.binary(Op::Add, p, q); };
  auto mul = [&](int p, int q) { return c.binary(Op::Mul, p, q); };
  auto sigmoid = [&](int v) { return c.unary(Op::Sigmoid, v); };
  auto tanh = [&](int v) { return c.unary(Op::Tanh, v); };
  switch (l.kind) {
  case LayerKind::Lstm: {
    int g = add(xg, hg);
    int next = add(mul(sigmoid(block(g, 1)), cell), mul(sigmoid(block(g, 0)), tanh(block(g, 2))));
    body.results.push_back({"h", mul(sigmoid(block(g, 3)), tanh(next))});
    body.results.push_back({"c", next});
    break;
  }
  case LayerKind::Gru: {
    int r = sigmoid(add(block(xg, 0), block(hg, 0))), z = sigmoid(add(block(xg, 1), block(hg, 1)));
    int n = tanh(add(block(xg, 2), mul(r, block(hg, 2))));
    body.results.push_back({"h", add(n, mul(z, c.binary(Op::Sub, h, n)))}); // (1 - z) n + z h
    break;
  }
  default:
    body.results.push_back({"h", a.relu ? c.unary(Op::Relu, add(xg, hg)) : tanh(add(xg, hg))});
    break;
  }
  return body;
}

int lowerRecurrent(LayerLowering &cx, const Layer &l, int x) {
  const RecurrentAttrs &a = l.as<RecurrentAttrs>();
  int64_t H = a.hidden, T = l.in[0];
  auto direction = [&](bool reverse) {
    size_t p = reverse ? 4 : 0;
    std::vector<int> carries{cx.b.fill(0.0, {kBatch, H})};
    if (l.kind == LayerKind::Lstm)
      carries.push_back(cx.b.fill(0.0, {kBatch, H}));
    // The input's share of every step at once: [B, T, d] x [d, G] as B*T rows, outside the loop
    // (and so is its gradient: the loop hands back each step's dxg, stacked).
    int xw = cx.b.matmul(x, cx.param(l, p));
    int xg = cx.b.binary(Op::Add, xw, cx.b.broadcast(cx.param(l, p + 2), cx.b.shape(xw), 3));
    ir::Function step = cellStep(l);
    int results = static_cast<int>(step.results.size());
    int loop = cx.b.loop(std::move(step), carries, {xg}, {cx.param(l, p + 1), cx.param(l, p + 3)}, T, reverse);
    return cx.b.loopResult(loop, a.sequences ? results : 0); // every step's h, or the last
  };
  int forward = direction(false);
  if (!a.bidirectional)
    return forward;
  int backward = direction(true);
  ir::Shape both = cx.b.shape(forward);
  auto axis = static_cast<int64_t>(both.size() - 1);
  both.back() = 2 * H;
  return cx.b.binary(Op::Add, cx.b.pad(forward, axis, 0, both), cx.b.pad(backward, axis, H, both));
}

const std::vector<Param> kRecurrentParams{{"hidden", ArgType::PositiveInt, true},
                                          {"return_sequences", ArgType::Bool, false},
                                          {"bidirectional", ArgType::Bool, false},
                                          kLrMultParam,
                                          kInitParam,
                                          kBiasInitParam};

std::vector<Param> withNonlinearity() {
  std::vector<Param> p = kRecurrentParams;
  p.insert(p.begin() + 1, {"nonlinearity", ArgType::String, false});
  return p;
}

} // namespace

const LayerRecord Rnn{"rnn", withNonlinearity(), checkRecurrent, recurrentParams, lowerRecurrent};
const LayerRecord Lstm{"lstm", kRecurrentParams, checkRecurrent, recurrentParams, lowerRecurrent};
const LayerRecord Gru{"gru", kRecurrentParams, checkRecurrent, recurrentParams, lowerRecurrent};

} // namespace soma::layers
