// Inputs are drawn from a fixed-seed generator and kept away from kinks (|x| >= 0.1) so that
// finite differences are meaningful; Log and Div get positive operands.
#include "OpCases.h"

#include "autodiff/Autodiff.h"
#include "soma/Data.h"

#include <array>
#include <cmath>
#include <fmt/format.h>
#include <tuple>
#include <utility>

namespace soma::test {

using namespace ir;

namespace {

struct CaseBuilder {
  OpCase c;
  Builder b{c.f};
  rt::Rng rng{42};

  CaseBuilder(std::string label) {
    c.label = std::move(label);
    c.f.name = "op_case";
  }

  // An input of `shape` (B = c.batch) filled with values in [lo, hi] away from zero.
  int input(const std::string &name, const Shape &shape, double lo = -2, double hi = 2,
            InputRole role = InputRole::Param) {
    int id = b.input(name, role, shape);
    interp::Tensor t;
    int64_t n = numElements(shape, c.batch);
    for (int64_t i = 0; i < n; ++i) {
      double v = lo + (hi - lo) * rng.uniform();
      if (std::fabs(v) < 0.1)
        v = v < 0 ? -0.1 - v : 0.1 + v;
      t.data.push_back(v);
    }
    c.inputs[name] = t;
    return id;
  }

  OpCase done(int out) {
    c.f.results.push_back({"out", out});
    return c;
  }
};

OpCase unaryCase(Op op, double lo = -2, double hi = 2) {
  CaseBuilder cb(opName(op));
  int x = cb.input("x", {kBatch, 5}, lo, hi);
  return cb.done(cb.b.unary(op, x));
}

// a op b, b a scalar or of a's shape: [B, 4], or images [B, 2, 3, 5] (one loop a row).
OpCase binaryCase(Op op, bool scalarB, double lo = -2, double hi = 2, const Shape &shape = {kBatch, 4}) {
  CaseBuilder cb(std::string(opName(op)) + (scalarB ? " scalar" : "") + (shape.size() > 2 ? " images" : ""));
  int a = cb.input("a", shape);
  int b = cb.input("b", scalarB ? Shape{} : shape, lo, hi);
  return cb.done(cb.b.binary(op, a, b));
}

// op(a) is [m, k], op(b) is [k, n], m the batch unless given.
OpCase matmulCase(bool ta, bool tb, int64_t k, int64_t n, int64_t m = kBatch) {
  auto size = [](int64_t d) { return d == kBatch ? std::string("B") : std::to_string(d); };
  CaseBuilder cb(
      fmt::format("matmul{}{} {}x{}x{}", ta ? " transpose_a" : "", tb ? " transpose_b" : "", size(m), size(k), n));
  int a = cb.input("a", ta ? Shape{k, m} : Shape{m, k});
  int b = cb.input("b", tb ? Shape{n, k} : Shape{k, n});
  return cb.done(cb.b.matmul(a, b, ta, tb));
}

// Rows of more axes: [B, t, k] x op(b) ([k, n], or transposed [n, k]) -> [B, t, n] as B*t rows, or
// the rows transposed against the same rows, [B, t, k]^T x [B, t, n] -> [k, n] (a weight's
// gradient summed over the batch and the steps); with `bias`, a bias added after (an elementwise
// kernel: such a product takes no epilogue). `batch` 0 keeps the tests' own batches.
OpCase rowsCase(bool ta, bool tb, int64_t t, int64_t k, int64_t n, bool bias = false, int64_t batch = 0) {
  CaseBuilder cb(fmt::format("matmul rows{}{} Bx{}x{}x{}{}", ta ? " transpose_a" : "", tb ? " transpose_b" : "", t, k,
                             n, bias ? " then a bias" : ""));
  if (batch) {
    cb.c.batch = batch;
    cb.c.tolerance = 1e-4;
    cb.c.gradcheck = false;
  }
  int a = cb.input("a", {kBatch, t, k}, -1, 1);
  int b = cb.input("b", ta ? Shape{kBatch, t, n} : tb ? Shape{n, k} : Shape{k, n}, -1, 1);
  int r = cb.b.matmul(a, b, ta, tb);
  if (bias)
    r = cb.b.binary(Op::Add, r, cb.b.broadcast(cb.input("bias", {n}), cb.b.shape(r), 0b011));
  return cb.done(r);
}

// Products whose op(B) is packed (matmul.packed: K x N floats beyond an L2 of 1 MB), at a batch of
// `batch` (and the test's 1 and 17): chunks of rows whole and partial, a last tile of a few rows
// and of one, a last panel of columns ending inside a vector, blocks of k whole and partial on
// both vector widths, B^T's squares and edges; then on vectors, a bias and sigmoid, or from a
// buffer, a product with a transposed tensor.
enum class Epilogue { None, OnVectors, FromBuffer };
OpCase packedCase(bool ta, bool tb, int64_t k, int64_t n, int64_t m, int64_t batch, Epilogue e = Epilogue::None) {
  OpCase c = matmulCase(ta, tb, k, n, m);
  CaseBuilder cb(c.label + (e == Epilogue::OnVectors    ? " with an epilogue on vectors"
                            : e == Epilogue::FromBuffer ? " with an epilogue from a buffer"
                                                        : ""));
  cb.c.batch = batch;
  cb.c.tolerance = 1e-4;  // sums of hundreds of products
  cb.c.gradcheck = false; // the small products' gradients are checked
  int a = cb.input("a", ta ? Shape{k, m} : Shape{m, k}, -1, 1);
  int b = cb.input("b", tb ? Shape{n, k} : Shape{k, n}, -1, 1);
  int r = cb.b.matmul(a, b, ta, tb);
  Shape rs = cb.b.shape(r);
  if (e == Epilogue::OnVectors)
    r = cb.b.unary(Op::Sigmoid, cb.b.binary(Op::Add, r, cb.b.broadcast(cb.input("bias", {n}), rs, 0b01)));
  else if (e == Epilogue::FromBuffer)
    r = cb.b.binary(Op::Mul, r, cb.b.transpose(cb.input("t", {rs[1], rs[0]}), {1, 0}));
  return cb.done(r);
}

// An op of x (`make`) with an elementwise consumer its kernel runs as an epilogue: bias and
// sigmoid (on vectors), or a product with a transposed tensor (an index map: from a buffer).
template <typename Make> OpCase epilogueCase(const char *op, bool onVectors, const Shape &xShape, Make make) {
  CaseBuilder cb(fmt::format("{} with an epilogue {}", op, onVectors ? "on vectors" : "from a buffer"));
  int r = make(cb.b, cb.input("x", xShape), cb);
  Shape rs = cb.b.shape(r);
  if (onVectors) {
    int bias = cb.b.broadcast(cb.input("bias", {rs[1]}), rs, 0b1101);
    return cb.done(cb.b.unary(Op::Sigmoid, cb.b.binary(Op::Add, r, bias)));
  }
  int t = cb.b.transpose(cb.input("t", {rs[0], rs[1], rs[3], rs[2]}), {0, 1, 3, 2});
  return cb.done(cb.b.binary(Op::Mul, r, t));
}

// A recurrent loop over x [B, 5, 3]: h' = tanh(x_t w + h u) from h0 (an Elman network), each
// step's output y = h' h; with `sum`, a second carry without a batch axis adds up the batch's
// h' (as a gradient does). The case's result is loop result `k` (Ops.def's numbering).
OpCase loopCase(const std::string &label, bool reverse, bool sum, int k) {
  CaseBuilder cb(label);
  Function body;
  Builder bb(body);
  int h = bb.input("h", InputRole::Data, {kBatch, 4});
  int acc = sum ? bb.input("acc", InputRole::Data, {4}) : -1;
  int x = bb.input("x", InputRole::Data, {kBatch, 3});
  int w = bb.input("w", InputRole::Param, {3, 4}), u = bb.input("u", InputRole::Param, {4, 4});
  int next = bb.unary(Op::Tanh, bb.binary(Op::Add, bb.matmul(x, w), bb.matmul(h, u)));
  body.results.push_back({"h", next});
  if (sum)
    body.results.push_back({"acc", bb.binary(Op::Add, acc, bb.reduce(Op::ReduceSum, next, 1))});
  body.results.push_back({"y", bb.binary(Op::Mul, next, h)});
  std::vector<int> carries{cb.input("h0", {kBatch, 4}, -1, 1)};
  if (sum)
    carries.push_back(cb.input("acc0", {4}));
  int xs = cb.input("xs", {kBatch, 5, 3}, -1, 1);
  int loop = cb.b.loop(std::move(body), carries, {xs}, {cb.input("w", {3, 4}, -1, 1), cb.input("u", {4, 4}, -1, 1)}, 5,
                       reverse);
  return cb.done(cb.b.loopResult(loop, k));
}

// The gradient of sum(loop result k * r) for input `wrt` of loopCase's loop: backpropagation
// through time, a loop the other way (its gradients accumulated in place), compared with the
// reference evaluator's (which the gradient check holds to finite differences).
OpCase loopGradientCase(const std::string &label, bool reverse, bool sum, int k, const std::string &wrt) {
  OpCase c = loopCase(label + ", the gradient of " + wrt, reverse, sum, k);
  CaseBuilder cb(c.label);
  cb.c = c;
  int out = cb.c.f.results[0].value;
  Shape os = cb.c.f.nodes[out].shape;
  int r = cb.input("r", os, -1, 1, InputRole::Data);
  int loss = cb.b.reduce(Op::ReduceSum, cb.b.binary(Op::Mul, out, r), (1u << os.size()) - 1);
  int g = autodiff::appendGradients(cb.c.f, loss, {cb.c.f.findInput(wrt)})[0];
  cb.c.f.results = {{"out", g}};
  cb.c.gradcheck = false; // a second derivative
  return cb.c;
}

} // namespace

std::vector<OpCase> casesFor(Op op) {
  switch (op) {
  case Op::Input: {
    CaseBuilder cb("input");
    return {cb.done(cb.input("x", {kBatch, 3}))};
  }
  case Op::Fill: {
    CaseBuilder cb("fill");
    return {cb.done(cb.b.fill(2.5, {4, 3}))};
  }
  case Op::Constant: { // used in a batched product, as class weights are
    CaseBuilder cb("constant");
    int x = cb.input("x", {kBatch, 3});
    int k = cb.b.constant({0.5, -1.25, 3}, {3});
    return {cb.done(cb.b.binary(Op::Mul, x, cb.b.broadcast(k, {kBatch, 3}, 1)))};
  }
  case Op::Neg:
  case Op::Exp:
  case Op::Sigmoid:
  case Op::Tanh:
  case Op::Relu:
  case Op::Step:
  case Op::Erf:
  case Op::Erfc:
  case Op::Expm1:
    return {unaryCase(op, -4, 4)};
  case Op::Log1p:
    return {unaryCase(op, -0.8, 5)};
  case Op::Log:
  case Op::Sqrt:
    return {unaryCase(op, 0.2, 5)};
  case Op::Add:
  case Op::Sub:
  case Op::Mul:
    return {binaryCase(op, false), binaryCase(op, true), binaryCase(op, true, -2, 2, {kBatch, 2, 3, 5})};
  case Op::Div:
    return {binaryCase(op, false, 0.5, 3), binaryCase(op, true, 0.5, 3),
            binaryCase(op, false, 0.5, 3, {kBatch, 2, 3, 5})};
  case Op::Equal: {
    CaseBuilder cb("eq");
    int a = cb.input("a", {kBatch, 4});
    int b = cb.input("b", {kBatch, 4});
    auto &bv = cb.c.inputs["b"].data;
    for (size_t i = 0; i < bv.size(); i += 2)
      bv[i] = cb.c.inputs["a"].data[i]; // half the elements equal
    return {cb.done(cb.b.binary(Op::Equal, a, b))};
  }
  case Op::Broadcast: {
    CaseBuilder cb("broadcast");
    int x = cb.input("x", {4});
    // Per-channel values over images ([B, C, H, W], H * W one loop): batchnorm's normalization.
    std::vector<OpCase> out = {cb.done(cb.b.broadcast(x, {kBatch, 3, 4}, 0b011))};
    for (Shape s : {Shape{kBatch, 3, 5, 7}, Shape{kBatch, 4, 2, 3, 6}}) {
      CaseBuilder per("broadcast per channel " + formatShape(s));
      uint32_t axes = s.size() == 4 ? 0b1101u : 0b11101u;
      int y = per.input("x", s), m = per.input("m", {s[1]}), v = per.input("v", {s[1]});
      out.push_back(per.done(
          per.b.binary(Op::Mul, per.b.binary(Op::Sub, y, per.b.broadcast(m, s, axes)), per.b.broadcast(v, s, axes))));
    }
    return out;
  }
  case Op::Random: { // the seed a Param, so the gradient check sees its zero gradient
    CaseBuilder cb("random");
    int seed = cb.input("seed", {}, 0, 1);
    cb.c.inputs["seed"].data = {37.0};
    int x = cb.input("x", {kBatch, 6});
    return {cb.done(cb.b.binary(Op::Mul, x, cb.b.random(seed, {kBatch, 6}, 5)))};
  }
  case Op::Transpose: {
    CaseBuilder cb("transpose");
    int x = cb.input("x", {kBatch, 3, 4, 2});
    return {cb.done(cb.b.transpose(x, {0, 2, 3, 1}))};
  }
  case Op::Pad: {
    std::vector<OpCase> out;
    for (int64_t offset : {0, 2, 4}) {
      CaseBuilder cb("pad offset " + std::to_string(offset));
      int x = cb.input("x", {kBatch, 3, 2});
      out.push_back(cb.done(cb.b.pad(x, 1, offset, {kBatch, 7, 2})));
    }
    return out;
  }
  case Op::Slice: {
    CaseBuilder cb("slice");
    int x = cb.input("x", {kBatch, 4, 7});
    return {cb.done(cb.b.slice(x, 2, 3, {kBatch, 4, 3}))};
  }
  case Op::SpaceToDepth:
  case Op::DepthToSpace: {
    // Every phase kept (stride 2) and some not (stride 3, 2 phases: a 2x2 filter's), and a padded
    // image split in one kernel, as a strided convolution's input is.
    std::vector<OpCase> out;
    for (auto [s, p] : {std::pair<int64_t, int64_t>{2, 2}, {3, 2}}) {
      CaseBuilder cb(fmt::format("{} stride {} phases {}", opName(op), s, p));
      Shape wide{kBatch, 3, 2 * s, 4 * s}, deep{kBatch, 3 * p * p, 2, 4};
      out.push_back(cb.done(op == Op::SpaceToDepth ? cb.b.spaceToDepth(cb.input("x", wide), s, p)
                                                   : cb.b.depthToSpace(cb.input("x", deep), s, p, wide)));
    }
    if (op == Op::SpaceToDepth) {
      CaseBuilder cb("space_to_depth of a padded image");
      int x = cb.b.pad(cb.input("x", {kBatch, 2, 5, 6}), 2, 1, {kBatch, 2, 6, 6});
      out.push_back(cb.done(cb.b.spaceToDepth(cb.b.pad(x, 3, 1, {kBatch, 2, 6, 8}), 2, 2)));
    } else {
      // Phases gathered back into 3 x 3 filters (a strided convolution's filter gradient) under a
      // division and a square root (an optimizer's update): elementwise.gather.
      CaseBuilder cb("depth_to_space sliced to 3 x 3 filters, under a division and a square root");
      int g = cb.b.depthToSpace(cb.input("g", {5, 12, 2, 2}), 2, 2, {5, 3, 4, 4});
      g = cb.b.slice(cb.b.slice(g, 3, 0, {5, 3, 4, 3}), 2, 0, {5, 3, 3, 3});
      int v = cb.input("v", {5, 3, 3, 3}, 0.5, 2);
      out.push_back(
          cb.done(cb.b.binary(Op::Div, g, cb.b.unary(Op::Sqrt, cb.b.binary(Op::Add, v, cb.b.binary(Op::Mul, g, g))))));
    }
    return out;
  }
  case Op::Gather: { // ids as data (their gradient is none), beyond the table's rows too: clamped
    CaseBuilder cb("gather");
    int ids = cb.input("ids", {kBatch, 3}, 0, 1, InputRole::Data);
    auto &iv = cb.c.inputs["ids"].data;
    for (size_t i = 0; i < iv.size(); ++i)
      iv[i] = static_cast<double>(static_cast<int>(i * 5 % 7) - 1); // -1 .. 5 of rows 0 .. 4
    int table = cb.input("table", {5, 4});
    CaseBuilder cb2("gather of single ids");
    int one = cb2.input("id", {kBatch}, 0, 1, InputRole::Data);
    auto &ov = cb2.c.inputs["id"].data;
    for (size_t i = 0; i < ov.size(); ++i)
      ov[i] = static_cast<double>(i % 3);
    int wide = cb2.input("wide", {3, 20});
    return {cb.done(cb.b.gather(ids, table)), cb2.done(cb2.b.gather(one, wide))};
  }
  case Op::OneHot: {
    CaseBuilder cb("one_hot");
    int l = cb.input("labels", {kBatch}, 0, 1); // a Param, so the gradient check sees its zero gradient
    auto &lv = cb.c.inputs["labels"].data;
    for (size_t i = 0; i < lv.size(); ++i)
      lv[i] = static_cast<double>((i * 3) % 5);
    CaseBuilder cb2("one_hot of a matrix");
    int m = cb2.input("ids", {kBatch, 3}, 0, 1);
    auto &mv = cb2.c.inputs["ids"].data;
    for (size_t i = 0; i < mv.size(); ++i)
      mv[i] = static_cast<double>((i * 7) % 4);
    return {cb.done(cb.b.oneHot(l, 5)), cb2.done(cb2.b.oneHot(m, 4))};
  }
  case Op::ReduceSum: {
    std::vector<OpCase> out;
    for (uint32_t axes : {0b010u, 0b101u, 0b111u}) {
      CaseBuilder cb("reduce_sum axes " + std::to_string(axes));
      int x = cb.input("x", {kBatch, 3, 4});
      out.push_back(cb.done(cb.b.reduce(Op::ReduceSum, x, axes)));
    }
    { // a mean loss: the sum of everything, then scalar math on it (a kernel of one element)
      CaseBuilder cb("reduce_sum to a scalar, then halved");
      int sum = cb.b.reduce(Op::ReduceSum, cb.input("x", {kBatch, 3, 4}), 0b111u);
      out.push_back(cb.done(cb.b.binary(Op::Mul, sum, cb.b.fill(0.5, {}))));
    }
    // Runs along the last axes on vectors: a buffer's rows (layernorm's sums, 100 = 6 vectors
    // and 4 lanes), an inlined tree's (exp of a row of 50), and all of a static tensor (the sum
    // of squares that clip_norm takes of a weight: one run from the first axis).
    {
      CaseBuilder cb("reduce_sum of rows of 100");
      out.push_back(cb.done(cb.b.reduce(Op::ReduceSum, cb.input("x", {kBatch, 100}), 0b10u)));
    }
    {
      CaseBuilder cb("reduce_sum of exp over rows of 50");
      out.push_back(cb.done(cb.b.reduce(Op::ReduceSum, cb.b.unary(Op::Exp, cb.input("x", {kBatch, 3, 50})), 0b100u)));
    }
    {
      CaseBuilder cb("reduce_sum of the squares of a static [7, 37]");
      int w = cb.input("w", {7, 37});
      out.push_back(cb.done(cb.b.reduce(Op::ReduceSum, cb.b.binary(Op::Mul, w, w), 0b11u)));
    }
    // reduce.columns: axes before a kept last axis, of a buffer or an inlined broadcast product
    // (attention's q @ transpose(k)); the last axis a vector and a tail (37), the batch axis among
    // the reduced ones (the gradient of a matrix every row shares).
    for (const auto &[shape, axes] :
         {std::pair{Shape{kBatch, 3, 5, 37}, 0b0100u}, std::pair{Shape{kBatch, 3, 5, 8}, 0b0101u}}) {
      CaseBuilder cb("reduce_sum axes " + std::to_string(axes) + " of " + formatShape(shape));
      out.push_back(cb.done(cb.b.reduce(Op::ReduceSum, cb.input("x", shape), axes)));
    }
    {
      CaseBuilder cb("reduce_sum of a broadcast product [B, 2, 6, 4] x [B, 2, 4, 5]");
      Shape full{kBatch, 2, 6, 4, 5};
      int a = cb.b.broadcast(cb.input("a", {kBatch, 2, 6, 4}), full, 0b10000u);
      int b = cb.b.broadcast(cb.input("b", {kBatch, 2, 4, 5}), full, 0b00100u);
      out.push_back(cb.done(cb.b.reduce(Op::ReduceSum, cb.b.binary(Op::Mul, a, b), 0b01000u)));
    }
    // A bias gradient: [B, C, H, W] summed over B, H and W (H * W contiguous).
    CaseBuilder cb("reduce_sum axes 1101");
    out.push_back(cb.done(cb.b.reduce(Op::ReduceSum, cb.input("x", {kBatch, 3, 5, 7}), 0b1101u)));
    // Batchnorm's gradient sums: an inlined tree over [B, C, H, W] that reads per-channel values
    // (broadcasts over B, H, W), summed over B, H and W: one loop along each H * W run.
    for (Shape s : {Shape{kBatch, 3, 5, 7}, Shape{kBatch, 2, 9, 13}}) {
      CaseBuilder tree("reduce_sum of a per-channel tree " + formatShape(s));
      int x = tree.input("x", s), y = tree.input("y", s), m = tree.input("m", {s[1]});
      int centered = tree.b.binary(Op::Sub, x, tree.b.broadcast(m, s, 0b1101u));
      out.push_back(tree.done(tree.b.reduce(Op::ReduceSum, tree.b.binary(Op::Mul, centered, y), 0b1101u)));
    }
    return out;
  }
  case Op::ReduceMax: {
    std::vector<OpCase> out;
    for (uint32_t axes : {0b10u, 0b01u}) {
      CaseBuilder cb("reduce_max axes " + std::to_string(axes));
      int x = cb.input("x", {kBatch, 5});
      out.push_back(cb.done(cb.b.reduce(Op::ReduceMax, x, axes)));
    }
    { // reduce.columns: the maximum over the middle axes, the last (6) kept
      CaseBuilder cb("reduce_max axes 0110 of [B, 4, 3, 6]");
      out.push_back(cb.done(cb.b.reduce(Op::ReduceMax, cb.input("x", {kBatch, 4, 3, 6}), 0b0110u)));
    }
    { // rows of a buffer on vectors, the lanes past the row's end ignored (all values negative)
      CaseBuilder cb("reduce_max of rows of 70");
      out.push_back(cb.done(cb.b.reduce(Op::ReduceMax, cb.input("x", {kBatch, 2, 70}, -3, -1), 0b100u)));
    }
    CaseBuilder tree("reduce_max of a per-channel tree");
    Shape s{kBatch, 3, 5, 7};
    int x = tree.input("x", s), m = tree.input("m", {3});
    out.push_back(
        tree.done(tree.b.reduce(Op::ReduceMax, tree.b.binary(Op::Mul, x, tree.b.broadcast(m, s, 0b1101u)), 0b1100u)));
    return out;
  }
  case Op::SoftmaxXent:
  case Op::SoftmaxXentGrad: {
    // Soft targets (a gradient for both operands), rows of a 3-d tensor, and one-hot targets of
    // labels, with logits large enough that a row without its maximum subtracted would overflow.
    bool grad = op == Op::SoftmaxXentGrad;
    auto rowCase = [&](const std::string &what, Shape shape, bool oneHot) {
      CaseBuilder cb(std::string(opName(op)) + " " + what);
      int z = cb.input("z", shape, -3, 3);
      if (oneHot)
        for (double &v : cb.c.inputs["z"].data)
          v *= 40;
      int t;
      if (oneHot) {
        int labels = cb.input("labels", Shape(shape.begin(), shape.end() - 1), 0, 1, InputRole::Label);
        auto &lv = cb.c.inputs["labels"].data;
        for (size_t i = 0; i < lv.size(); ++i)
          lv[i] = static_cast<double>((i * 7) % static_cast<size_t>(shape.back()));
        t = cb.b.oneHot(labels, shape.back());
      } else {
        t = cb.input("t", shape, 0, 1);
      }
      if (!grad)
        return cb.done(cb.b.add(op, {z, t}, {}));
      int g = cb.input("g", Shape(shape.begin(), shape.end() - 1));
      return cb.done(cb.b.add(op, {z, t, g}, {}));
    };
    return {rowCase("soft targets", {kBatch, 10}, false), rowCase("rows of [B, 3, 7]", {kBatch, 3, 7}, false),
            rowCase("one-hot", {kBatch, 10}, true)};
  }
  case Op::MaxPool2D:
  case Op::MaxPool2DBack:
  case Op::MaxPool2DShare:
  case Op::AvgPool2D:
  case Op::AvgPool2DBack: {
    // Square windows at their own stride (window.lanes for max pooling): windows of 2 and 3, rows
    // of more than one vector of outputs (a loop of whole chunks and a remainder). Then every
    // other parameter (window.rows, window.back-rows): overlapping windows with padding (ResNet's
    // stem), ceil_mode's partial windows, rectangular windows and strides, strides beyond the
    // window (gaps), floor's dropped edges, stride 1 over wide rows (windows spanning two
    // chunks), and padding left out of the divisor. Windows with tied maxima (inputs of a few
    // values) for the JIT only.
    struct PoolShape {
      Shape x;
      std::array<int64_t, 2> kernel, stride, padding;
      bool ceil = false, includePad = true, ties = false;
    };
    std::vector<PoolShape> shapes{
        {{kBatch, 3, 4, 6}, {2, 2}, {2, 2}, {0, 0}},
        {{kBatch, 2, 6, 9}, {3, 3}, {3, 3}, {0, 0}},
        {{kBatch, 2, 4, 70}, {2, 2}, {2, 2}, {0, 0}},
        {{kBatch, 2, 4, 38}, {2, 2}, {2, 2}, {0, 0}, false, true, true},
        {{kBatch, 2, 7, 9}, {3, 3}, {2, 2}, {1, 1}},
        {{kBatch, 2, 8, 10}, {3, 3}, {2, 2}, {1, 1}, true},
        {{kBatch, 2, 8, 10}, {3, 3}, {2, 2}, {1, 1}, true, false},
        {{kBatch, 2, 5, 7}, {2, 3}, {1, 2}, {1, 0}},
        {{kBatch, 2, 7, 8}, {2, 2}, {3, 3}, {0, 0}},
        {{kBatch, 2, 5, 7}, {2, 2}, {2, 2}, {0, 0}},
        {{kBatch, 2, 5, 7}, {2, 2}, {2, 2}, {0, 0}, true, false},
        {{kBatch, 1, 5, 37}, {3, 3}, {1, 1}, {1, 1}, false, false},
        {{kBatch, 1, 5, 41}, {3, 3}, {2, 2}, {1, 1}},
        {{kBatch, 2, 6, 20}, {3, 3}, {2, 2}, {1, 1}, false, true, true},
    };
    std::vector<OpCase> out;
    auto build = [op](Builder &b, CaseBuilder &cb, int x, const Pool2D &p) {
      Shape xs = b.shape(x);
      switch (op) {
      case Op::MaxPool2D:
        return b.maxPool2d(x, p);
      case Op::MaxPool2DBack: {
        int y = b.maxPool2d(x, p);
        return b.maxPool2dBack(x, y, cb.input("dy", b.shape(y)), p);
      }
      case Op::MaxPool2DShare:
        return b.maxPool2dShare(x, b.maxPool2d(x, p), cb.input("d", xs), p);
      case Op::AvgPool2D:
        return b.avgPool2d(x, p);
      default:
        return b.avgPool2dBack(cb.input("g", {xs[0], xs[1], p.out[0], p.out[1]}), p, xs);
      }
    };
    for (const PoolShape &ps : shapes) {
      Pool2D p;
      p.kernel = ps.kernel;
      p.stride = ps.stride;
      p.padding = ps.padding;
      p.includePad = ps.includePad;
      for (size_t a = 0; a < 2; ++a)
        p.out[a] = poolOutSize(ps.x[a + 2], p.kernel[a], p.stride[a], p.padding[a], ps.ceil);
      CaseBuilder cb(fmt::format("{} {} window {}x{} stride {}x{} padding {}x{}{}{}{}", opName(op), formatShape(ps.x),
                                 p.kernel[0], p.kernel[1], p.stride[0], p.stride[1], p.padding[0], p.padding[1],
                                 ps.ceil ? " ceil" : "", ps.includePad ? "" : " exclude-pad", ps.ties ? " ties" : ""));
      int x = cb.input("x", ps.x);
      if (ps.ties) {
        for (double &v : cb.c.inputs["x"].data)
          v = std::round(v);
        cb.c.gradcheck = false;
      }
      out.push_back(cb.done(build(cb.b, cb, x, p)));
    }
    // An epilogue, on the result's vectors or from a buffer: window.lanes, and window.rows
    // (a gradient in window.back-rows takes none).
    for (bool lanes : {true, false}) {
      Pool2D p;
      p.kernel = p.stride = lanes ? std::array<int64_t, 2>{2, 2} : std::array<int64_t, 2>{3, 3};
      if (!lanes)
        p.stride = {2, 2}, p.padding = {1, 1};
      p.out = {poolOutSize(4, p.kernel[0], p.stride[0], p.padding[0], false),
               poolOutSize(38, p.kernel[1], p.stride[1], p.padding[1], false)};
      std::string label = fmt::format("{} {}", opName(op), lanes ? "2x2" : "3x3 stride 2 padding 1");
      for (bool onVectors : {true, false})
        out.push_back(epilogueCase(label.c_str(), onVectors, {kBatch, 2, 4, 38},
                                   [&](Builder &b, int x, CaseBuilder &cb) { return build(b, cb, x, p); }));
    }
    return out;
  }
  case Op::MatMul:
    // Odd sizes for the vector remainders; larger ones for the register tiles: whole and partial
    // blocks of rows, whole and partial tiles of columns, k with and without a vector remainder.
    return {matmulCase(false, false, 7, 5),
            matmulCase(true, false, 7, 5),
            matmulCase(false, true, 7, 5),
            matmulCase(true, true, 7, 5),
            matmulCase(false, false, 37, 41),
            matmulCase(true, false, 37, 41),
            matmulCase(false, true, 37, 41),
            matmulCase(false, true, 32, 8),
            matmulCase(true, false, 13, 70, 23),
            matmulCase(false, false, 9, 16, 13),
            matmulCase(false, false, 19, 256),
            matmulCase(true, false, 11, 128, 23),
            packedCase(false, false, 600, 450, kBatch, 101),
            packedCase(false, true, 700, 401, kBatch, 61),
            packedCase(true, false, kBatch, 4200, 70, 150),
            packedCase(false, false, 600, 450, kBatch, 20, Epilogue::OnVectors),
            packedCase(false, false, 600, 450, kBatch, 20, Epilogue::FromBuffer),
            rowsCase(false, false, 3, 7, 5),         // matmul.tiled
            rowsCase(false, false, 4, 13, 37, true), // and a bias after
            rowsCase(false, true, 3, 32, 8),         // matmul.dot
            rowsCase(false, true, 5, 7, 5),          // matmul.loops
            rowsCase(true, false, 3, 7, 5),          // the contraction over B*t rows
            rowsCase(true, false, 6, 9, 40),
            rowsCase(false, false, 7, 600, 450, false, 30)}; // matmul.packed, B*t = 210 rows
  case Op::Conv2D:
  case Op::Conv2DBackData:
  case Op::Conv2DBackFilter: {
    // Odd sizes, non-square filters, stride 1 and 2, with and without padding.
    std::vector<OpCase> out;
    for (auto [stride, padding] : {std::pair<int64_t, int64_t>{1, 0}, {2, 1}, {1, 2}}) {
      CaseBuilder cb(fmt::format("{} stride {} padding {}", opName(op), stride, padding));
      Shape xs{kBatch, 2, 7, 6}, ws{3, 2, 3, 2};
      Shape ys{kBatch, 3, convOutSize(7, 3, stride, padding), convOutSize(6, 2, stride, padding)};
      int r;
      if (op == Op::Conv2D)
        r = cb.b.conv2d(cb.input("x", xs), cb.input("w", ws), {stride, padding, 1, 1});
      else if (op == Op::Conv2DBackData)
        r = cb.b.conv2dBackData(cb.input("y", ys), cb.input("w", ws), xs, {stride, padding, 1, 1});
      else
        r = cb.b.conv2dBackFilter(cb.input("x", xs), cb.input("y", ys), ws, {stride, padding, 1, 1});
      out.push_back(cb.done(r));
    }
    // Groups: depthwise (a channel a group, one or two filters a channel) at strides 1 to 3, with
    // padding, rows wider than a vector and filters wider than the stride; groups of several
    // channels (along rows, blocks of channels within a group, at stride 1; strided ones run over
    // phases in the pipeline, by the direct loops here).
    for (auto [xs, ws, groups, stride, padding] :
         {std::tuple<Shape, Shape, int64_t, int64_t, int64_t>{{kBatch, 3, 7, 6}, {3, 1, 3, 3}, 3, 1, 1},
          {{kBatch, 2, 9, 8}, {4, 1, 3, 2}, 2, 2, 1},
          {{kBatch, 4, 6, 37}, {4, 1, 5, 3}, 4, 1, 2},
          {{kBatch, 3, 11, 20}, {3, 1, 3, 3}, 3, 3, 0},
          {{kBatch, 2, 13, 40}, {2, 1, 7, 7}, 2, 2, 3},
          {{kBatch, 4, 7, 9}, {6, 2, 3, 3}, 2, 1, 1},
          {{kBatch, 6, 8, 7}, {3, 2, 2, 3}, 3, 2, 0},
          {{kBatch, 8, 9, 20}, {16, 2, 3, 3}, 4, 1, 1},
          {{kBatch, 12, 7, 9}, {6, 4, 3, 2}, 3, 1, 0}}) {
      CaseBuilder cb(fmt::format("{} {} groups, {} to {} channels, {}x{} filters, {} wide, stride {} padding {}",
                                 opName(op), groups, xs[1], ws[0], ws[2], ws[3], xs[3], stride, padding));
      Shape ys{kBatch, ws[0], convOutSize(xs[2], ws[2], stride, padding), convOutSize(xs[3], ws[3], stride, padding)};
      int r = op == Op::Conv2D ? cb.b.conv2d(cb.input("x", xs), cb.input("w", ws), {stride, padding, {1, 1}, groups})
              : op == Op::Conv2DBackData
                  ? cb.b.conv2dBackData(cb.input("y", ys), cb.input("w", ws), xs, {stride, padding, {1, 1}, groups})
                  : cb.b.conv2dBackFilter(cb.input("x", xs), cb.input("y", ys), ws, {stride, padding, {1, 1}, groups});
      OpCase c = cb.done(r);
      c.tolerance = 1e-4;                        // the filter gradient sums up to 3 * 11 * 40 products
      c.gradcheck = xs[2] * xs[3] * ws[0] < 300; // the small ones: finite differences take long on the others
      out.push_back(std::move(c));
    }
    // Dilation: taps dh rows and dw columns apart, along rows at stride 1 (narrow and wide rows,
    // padding below and above the span's half, rectangular filters), by the direct loops at
    // stride 2, and depthwise at strides 1 and 2; each with both axes alike and with a dilation
    // of its own per axis (1 along one of them, or both above 1).
    using Dilation = std::array<int64_t, 2>;
    for (auto [xs, ws, groups, stride, padding, dilation] :
         {std::tuple<Shape, Shape, int64_t, int64_t, int64_t, Dilation>{
              {kBatch, 2, 9, 8}, {3, 2, 3, 3}, 1, 1, 0, {2, 2}},
          {{kBatch, 3, 11, 10}, {4, 3, 3, 2}, 1, 1, 2, {2, 2}},
          {{kBatch, 2, 13, 30}, {5, 2, 3, 3}, 1, 1, 4, {3, 3}},
          {{kBatch, 16, 9, 9}, {16, 16, 3, 3}, 1, 1, 1, {2, 2}},
          {{kBatch, 2, 11, 9}, {3, 2, 3, 2}, 1, 2, 1, {2, 2}},
          {{kBatch, 3, 10, 21}, {3, 1, 3, 3}, 3, 1, 2, {2, 2}},
          {{kBatch, 2, 12, 11}, {4, 1, 2, 3}, 2, 2, 1, {3, 3}},
          {{kBatch, 2, 9, 8}, {3, 2, 3, 3}, 1, 1, 0, {2, 1}},
          {{kBatch, 3, 11, 10}, {4, 3, 3, 2}, 1, 1, 2, {1, 3}},
          {{kBatch, 2, 13, 30}, {5, 2, 3, 3}, 1, 1, 4, {3, 2}},
          {{kBatch, 16, 9, 9}, {16, 16, 3, 3}, 1, 1, 1, {1, 2}},
          {{kBatch, 4, 9, 10}, {6, 2, 3, 3}, 2, 1, 1, {2, 1}},
          {{kBatch, 2, 11, 9}, {3, 2, 3, 2}, 1, 2, 1, {1, 2}},
          {{kBatch, 3, 10, 21}, {3, 1, 3, 3}, 3, 1, 2, {2, 1}},
          {{kBatch, 2, 12, 11}, {4, 1, 2, 3}, 2, 2, 1, {1, 3}}}) {
      CaseBuilder cb(fmt::format(
          "{} dilation [{}, {}], {} groups, {} to {} channels, {}x{} filters, {} wide, stride {} padding {}",
          opName(op), dilation[0], dilation[1], groups, xs[1], ws[0], ws[2], ws[3], xs[3], stride, padding));
      ConvParams c{stride, padding, dilation, groups};
      Shape ys{kBatch, ws[0], convOutSize(xs[2], convSpan(ws[2], dilation[0]), stride, padding),
               convOutSize(xs[3], convSpan(ws[3], dilation[1]), stride, padding)};
      int r = op == Op::Conv2D           ? cb.b.conv2d(cb.input("x", xs), cb.input("w", ws), c)
              : op == Op::Conv2DBackData ? cb.b.conv2dBackData(cb.input("y", ys), cb.input("w", ws), xs, c)
                                         : cb.b.conv2dBackFilter(cb.input("x", xs), cb.input("y", ys), ws, c);
      OpCase oc = cb.done(r);
      oc.tolerance = 1e-4; // sums of up to 16 * 9 products (the filter gradient: 2 * 13 * 30)
      oc.gradcheck = xs[1] * xs[2] * xs[3] < 250;
      out.push_back(std::move(oc));
    }
    if (op == Op::Conv2D)
      for (bool onVectors : {true, false}) { // dilated along rows with an epilogue; with 8 lanes its last
        // block of rows starts at row 8, the same constant as its second vector of columns
        out.push_back(
            epilogueCase("conv2d dilated", onVectors, {kBatch, 2, 9, 19}, [](Builder &b, int x, CaseBuilder &cb) {
              return b.conv2d(x, cb.input("w", {4, 2, 3, 3}), {1, 2, {2, 2}, 1});
            }));
        // a dilation along columns only: the tap rows are those the block of rows reaches
        out.push_back(epilogueCase("conv2d dilated [1, 3]", onVectors, {kBatch, 3, 8, 17},
                                   [](Builder &b, int x, CaseBuilder &cb) {
                                     return b.conv2d(x, cb.input("w", {5, 3, 3, 2}), {1, 1, {1, 3}, 1});
                                   }));
      }
    if (op == Op::Conv2D)
      for (bool onVectors : {true, false}) // depthwise with an epilogue, on its vectors or from a buffer
        out.push_back(
            epilogueCase("conv2d depthwise", onVectors, {kBatch, 4, 7, 21}, [](Builder &b, int x, CaseBuilder &cb) {
              return b.conv2d(x, cb.input("w", {8, 1, 3, 3}), {2, 1, {1, 1}, 4});
            }));
    // Factorized (1xk, kx1) filters over whole vectors of channels and filters, narrow and wide
    // rows, as conv2d(kernel: [1, 7], padding: [0, 3]) lowers (its padding explicit): the lane
    // and row strategies with rectangular taps.
    for (auto [xs, ws, stride, padding] :
         {std::tuple<Shape, Shape, int64_t, int64_t>{{kBatch, 16, 5, 7}, {16, 16, 1, 5}, 1, 0},
          {{kBatch, 32, 7, 4}, {16, 32, 5, 1}, 1, 1},
          {{kBatch, 16, 3, 40}, {16, 16, 1, 7}, 1, 0},
          {{kBatch, 16, 9, 8}, {32, 16, 3, 1}, 2, 1}}) {
      CaseBuilder cb(fmt::format("{} {}x{} filters, {} to {} channels, {} wide, stride {}", opName(op), ws[2], ws[3],
                                 xs[1], ws[0], xs[3], stride));
      Shape ys{kBatch, ws[0], convOutSize(xs[2], ws[2], stride, padding), convOutSize(xs[3], ws[3], stride, padding)};
      int r = op == Op::Conv2D ? cb.b.conv2d(cb.input("x", xs), cb.input("w", ws), {stride, padding, 1, 1})
              : op == Op::Conv2DBackData
                  ? cb.b.conv2dBackData(cb.input("y", ys), cb.input("w", ws), xs, {stride, padding, 1, 1})
                  : cb.b.conv2dBackFilter(cb.input("x", xs), cb.input("y", ys), ws, {stride, padding, 1, 1});
      OpCase c = cb.done(r);
      c.tolerance = 1e-4;  // sums of up to 32 * 5 products (the filter gradient: 3 * 40 * 16)
      c.gradcheck = false; // the small cases above check the derivatives
      out.push_back(std::move(c));
    }
    // 1x1 filters: matrix products per sample, with partial blocks of rows and tiles of
    // positions (13 channels, 63 positions), and more channels than a pass of the filter
    // gradient's tiles keeps (600).
    for (auto [xs, ws] :
         {std::pair<Shape, Shape>{{kBatch, 5, 7, 9}, {13, 5, 1, 1}}, {{kBatch, 600, 2, 3}, {8, 600, 1, 1}}}) {
      CaseBuilder cb(fmt::format("{} 1x1, {} to {} channels", opName(op), xs[1], ws[0]));
      Shape ys{kBatch, ws[0], xs[2], xs[3]};
      int r = op == Op::Conv2D ? cb.b.conv2d(cb.input("x", xs), cb.input("w", ws), {1, 0, 1, 1})
              : op == Op::Conv2DBackData
                  ? cb.b.conv2dBackData(cb.input("y", ys), cb.input("w", ws), xs, {1, 0, 1, 1})
                  : cb.b.conv2dBackFilter(cb.input("x", xs), cb.input("y", ys), ws, {1, 0, 1, 1});
      OpCase c = cb.done(r);
      c.tolerance = 1e-4; // sums of up to 17 * 63 products
      c.gradcheck = xs[1] < 100;
      out.push_back(std::move(c));
    }
    if (op == Op::Conv2D) {
      for (bool onVectors : {true, false})
        out.push_back(epilogueCase("conv2d 1x1", onVectors, {kBatch, 3, 5, 7}, [](Builder &b, int x, CaseBuilder &cb) {
          return b.conv2d(x, cb.input("w", {7, 3, 1, 1}), {1, 0, 1, 1});
        }));
      // An epilogue that reads a tensor per row (broadcast over columns only): not along the
      // plane's run, so not on its vectors.
      CaseBuilder cb("conv2d 1x1 with a per-row epilogue");
      int r = cb.b.conv2d(cb.input("x", {kBatch, 3, 5, 7}), cb.input("w", {7, 3, 1, 1}), {1, 0, 1, 1});
      int t = cb.b.broadcast(cb.input("t", {kBatch, 7, 5}), {kBatch, 7, 5, 7}, 0b1000);
      out.push_back(cb.done(cb.b.binary(Op::Mul, r, t)));
    }
    { // Rows longer than a vector, four filters a block, padding wider than the filter's centre.
      CaseBuilder cb(fmt::format("{} wide rows", opName(op)));
      Shape xs{kBatch, 3, 9, 21}, ws{4, 3, 3, 5}, ys{kBatch, 4, convOutSize(9, 3, 1, 2), convOutSize(21, 5, 1, 2)};
      int r = op == Op::Conv2D ? cb.b.conv2d(cb.input("x", xs), cb.input("w", ws), {1, 2, 1, 1})
              : op == Op::Conv2DBackData
                  ? cb.b.conv2dBackData(cb.input("y", ys), cb.input("w", ws), xs, {1, 2, 1, 1})
                  : cb.b.conv2dBackFilter(cb.input("x", xs), cb.input("y", ys), ws, {1, 2, 1, 1});
      OpCase c = cb.done(r);
      c.tolerance = 1e-4; // the filter's gradient sums up to 17 * 11 * 21 = 3,927 products
      out.push_back(std::move(c));
    }
    if (op == Op::Conv2DBackFilter) {
      // A batch whose y and x do not stay in half of L2: conv-filter.rows (padding 1) and .planes
      // (padding 0, narrow rows) take the samples in passes, a short last one, and at batches 1
      // and 17 a single short one.
      for (auto [xs, ws, padding] : {std::tuple<Shape, Shape, int64_t>{{kBatch, 2, 32, 32}, {8, 2, 3, 3}, 1},
                                     {{kBatch, 2, 100, 12}, {6, 2, 3, 3}, 0}}) {
        Shape ys{kBatch, ws[0], convOutSize(xs[2], ws[2], 1, padding), convOutSize(xs[3], ws[3], 1, padding)};
        CaseBuilder cb(fmt::format("{} {}x{} images in passes of samples", opName(op), xs[2], xs[3]));
        OpCase c = cb.done(cb.b.conv2dBackFilter(cb.input("x", xs), cb.input("y", ys), ws, {1, padding, 1, 1}));
        c.batch = 60;
        c.tolerance = 1e-3; // sums of up to 60 * 1,024 products, in another order
        c.gradcheck = false;
        out.push_back(std::move(c));
      }
    }
    if (op != Op::Conv2D) { // narrow rows: 16 or 32 filters go in the lanes (6: y's planes in whole
      // vectors, or rows), with and without padding, at LeNet's second layer's shapes too. Only
      // the first is also checked by finite differences (the others take minutes to).
      bool differences = true;
      for (auto [xs, ws, padding] : {std::tuple<Shape, Shape, int64_t>{{kBatch, 3, 9, 12}, {16, 3, 3, 3}, 0},
                                     {{kBatch, 2, 9, 12}, {6, 2, 3, 3}, 0},
                                     {{kBatch, 6, 14, 14}, {16, 6, 5, 5}, 0},
                                     {{kBatch, 5, 8, 9}, {32, 5, 3, 4}, 1},
                                     // dx's channels in whole vectors: they go in the lanes
                                     {{kBatch, 16, 5, 5}, {8, 16, 2, 2}, 0},
                                     {{kBatch, 32, 6, 7}, {12, 32, 3, 2}, 1},
                                     // more filter sums than the stack keeps at once: two passes
                                     {{kBatch, 160, 5, 5}, {32, 160, 2, 2}, 0}}) {
        Shape ys{kBatch, ws[0], convOutSize(xs[2], ws[2], 1, padding), convOutSize(xs[3], ws[3], 1, padding)};
        CaseBuilder cb(fmt::format("{} {} filters, {}-wide rows, padding {}", opName(op), ws[0], ys[3], padding));
        OpCase c = cb.done(op == Op::Conv2DBackData
                               ? cb.b.conv2dBackData(cb.input("y", ys), cb.input("w", ws), xs, {1, padding, 1, 1})
                               : cb.b.conv2dBackFilter(cb.input("x", xs), cb.input("y", ys), ws, {1, padding, 1, 1}));
        c.tolerance = 1e-4; // sums of up to 400 products, in another order
        c.gradcheck = std::exchange(differences, false);
        out.push_back(std::move(c));
      }
    }
    if (op == Op::Conv2D) {
      for (bool onVectors : {true, false}) // an epilogue, on the row's vectors or from a buffer
        out.push_back(epilogueCase(opName(op), onVectors, {kBatch, 2, 7, 21}, [](Builder &b, int x, CaseBuilder &cb) {
          return b.conv2d(x, cb.input("w", {3, 2, 3, 4}), {1, 1, 1, 1});
        }));
      // Rows narrower than a vector and 16 or 32 filters: the channels go in the lanes (with
      // AVX-512; with 8 lanes too), with and without padding, plain and with an epilogue.
      for (auto [filters, padding] : {std::pair<int64_t, int64_t>{16, 0}, {32, 1}}) {
        CaseBuilder cb(fmt::format("conv2d {} filters, 9-wide rows, padding {}", filters, padding));
        out.push_back(cb.done(
            cb.b.conv2d(cb.input("x", {kBatch, 3, 8, 9}), cb.input("w", {filters, 3, 3, 4}), {1, padding, 1, 1})));
      }
      out.push_back(epilogueCase(opName(op), true, {kBatch, 2, 6, 7}, [](Builder &b, int x, CaseBuilder &cb) {
        return b.conv2d(x, cb.input("w", {16, 2, 5, 3}), {1, 2, 1, 1});
      }));
      { // more weights than one stack buffer holds: packed a vector of output channels at a time
        CaseBuilder cb("conv2d 48 filters of 64 channels, 5-wide rows");
        OpCase c = cb.done(cb.b.conv2d(cb.input("x", {kBatch, 64, 6, 6}), cb.input("w", {48, 64, 2, 2}), {1, 0, 1, 1}));
        c.tolerance = 1e-4; // sums of 256 products
        c.gradcheck = false;
        out.push_back(std::move(c));
      }
    }
    return out;
  }
  case Op::Loop:
  case Op::LoopResult: // every kind of result: the last carry, outputs and carries stacked
    return {loopCase("loop, each step's output", false, false, 1),
            loopCase("loop reversed, the last carry", true, false, 0),
            loopCase("loop, a carry without a batch axis", false, true, 1),
            loopCase("loop reversed, each step's carry", true, true, 3),
            loopGradientCase("loop", false, false, 1, "w"),
            loopGradientCase("loop", false, false, 1, "xs"),
            loopGradientCase("loop reversed", true, false, 0, "h0"),
            loopGradientCase("loop with a sum", false, true, 1, "u"),
            loopGradientCase("loop with a sum", true, true, 3, "acc0")};
  case Op::Reshape: {
    CaseBuilder cb("reshape");
    int x = cb.input("x", {kBatch, 2, 3});
    return {cb.done(cb.b.unary(Op::Neg, cb.b.reshape(x, {kBatch, 6})))};
  }
  }
  return {};
}

} // namespace soma::test
