// One shape rule per op. The switch has no default: a new op in Ops.def must add its rule.
#include "ir/IR.h"

#include <algorithm>
#include <fmt/format.h>

namespace soma::ir {

ShapeResult inferShape(Op op, const std::vector<Shape> &in, const Attrs &a) {
  auto fail = [](std::string msg) { return ShapeResult{{}, std::move(msg)}; };
  switch (op) {
  case Op::Input:
    return {a.shape, ""};
  case Op::Fill:
    return {a.shape, ""};
  case Op::Constant:
    if (std::count(a.shape.begin(), a.shape.end(), kBatch) ||
        static_cast<int64_t>(a.values.size()) != numElements(a.shape, 1))
      return fail(fmt::format("constant of shape {} needs {} static values, has {}", formatShape(a.shape),
                              numElements(a.shape, 1), a.values.size()));
    return {a.shape, ""};
  case Op::Neg:
  case Op::Exp:
  case Op::Log:
  case Op::Sqrt:
  case Op::Expm1:
  case Op::Log1p:
  case Op::Erf:
  case Op::Erfc:
  case Op::Sigmoid:
  case Op::Tanh:
  case Op::Relu:
  case Op::Step:
    return {in[0], ""};
  case Op::Add:
  case Op::Sub:
  case Op::Mul:
  case Op::Div:
  case Op::Equal:
    // Same shapes, or one operand is a scalar.
    if (in[0] == in[1] || in[1].empty())
      return {in[0], ""};
    if (in[0].empty())
      return {in[1], ""};
    return fail(fmt::format("operands {} and {} differ", formatShape(in[0]), formatShape(in[1])));
  case Op::Broadcast: {
    Shape kept;
    for (size_t i = 0; i < a.shape.size(); ++i)
      if (!(a.axes >> i & 1))
        kept.push_back(a.shape[i]);
    if (kept != in[0])
      return fail(fmt::format("broadcast of {} to {} must only add axes", formatShape(in[0]), formatShape(a.shape)));
    return {a.shape, ""};
  }
  case Op::Random:
    if (!in[0].empty())
      return fail("random takes a scalar seed");
    return {a.shape, ""};
  case Op::Transpose: {
    Shape out;
    std::vector<bool> used(in[0].size(), false);
    for (int64_t p : a.perm) {
      if (p < 0 || p >= static_cast<int64_t>(in[0].size()) || used[static_cast<size_t>(p)])
        return fail("transpose needs a permutation of the operand's axes");
      used[static_cast<size_t>(p)] = true;
      out.push_back(in[0][static_cast<size_t>(p)]);
    }
    if (out.size() != in[0].size() || std::count(out.begin() + (out.empty() ? 0 : 1), out.end(), kBatch))
      return fail("transpose needs a permutation of the operand's axes that keeps the batch axis first");
    return {out, ""};
  }
  case Op::Pad:
  case Op::Slice: {
    // Same shape but along the axis, where the smaller fits at the offset.
    const Shape &small = op == Op::Pad ? in[0] : a.shape, &big = op == Op::Pad ? a.shape : in[0];
    bool ok = small.size() == big.size() && a.axis >= 0 && a.axis < static_cast<int64_t>(big.size());
    for (size_t i = 0; ok && i < big.size(); ++i)
      ok = static_cast<int64_t>(i) == a.axis ? big[i] != kBatch && a.offset >= 0 && a.offset + small[i] <= big[i]
                                             : small[i] == big[i];
    if (!ok)
      return fail(fmt::format("{} of {} to {} along axis {} at {} does not fit", op == Op::Pad ? "pad" : "slice",
                              formatShape(in[0]), formatShape(a.shape), a.axis, a.offset));
    return {a.shape, ""};
  }
  case Op::SpaceToDepth:
  case Op::DepthToSpace: {
    // [N, C, R*s, Q*s] <-> [N, C*p*p, R, Q]
    const Shape &x = in[0];
    int64_t s = a.stride, p = a.offset;
    bool ok = x.size() == 4 && s >= 1 && p >= 1 && p <= s && x[2] != kBatch && x[3] != kBatch && x[1] != kBatch;
    if (ok && op == Op::SpaceToDepth && x[2] % s == 0 && x[3] % s == 0)
      return {{x[0], x[1] * p * p, x[2] / s, x[3] / s}, ""};
    if (ok && op == Op::DepthToSpace && x[1] % (p * p) == 0 &&
        a.shape == Shape{x[0], x[1] / (p * p), x[2] * s, x[3] * s})
      return {a.shape, ""};
    return fail(fmt::format("{} of {} with stride {} and {} phases does not fit", opName(op), formatShape(x), s, p));
  }
  case Op::Gather:
    if (in[1].size() != 2)
      return fail("gather takes ids and a table [V, D]");
    {
      Shape out = in[0];
      out.push_back(in[1][1]);
      return {out, ""};
    }
  case Op::OneHot:
    if (in[0].empty() || a.classes <= 0)
      return fail("one_hot takes a tensor of class indices");
    {
      Shape out = in[0];
      out.push_back(a.classes);
      return {out, ""};
    }
  case Op::ReduceSum:
  case Op::ReduceMax: {
    Shape out;
    for (size_t i = 0; i < in[0].size(); ++i)
      if (!(a.axes >> i & 1))
        out.push_back(in[0][i]);
    if (a.axes >> in[0].size())
      return fail("reduction axis out of range");
    return {out, ""};
  }
  case Op::SoftmaxXent:
  case Op::SoftmaxXentGrad: {
    if (in[0].empty() || in[0] != in[1])
      return fail(fmt::format("{}: logits {} and targets {} must have one shape with a class axis", opName(op),
                              formatShape(in[0]), formatShape(in[1])));
    Shape rows(in[0].begin(), in[0].end() - 1);
    if (op == Op::SoftmaxXent)
      return {rows, ""};
    if (in[2] != rows)
      return fail(
          fmt::format("softmax_xent_grad: gradient {} does not match rows {}", formatShape(in[2]), formatShape(rows)));
    return {in[0], ""};
  }
  case Op::MatMul: {
    // Two matrices; or rows of more axes ([B, T, k] as B*T rows of k), contiguous: a's rows times
    // a matrix b ([.., k] x [k, n] -> [.., n]), or a's rows transposed against b's same rows
    // ([.., k]^T x [.., n] -> [k, n], the contraction over every row).
    const Shape &x = in[0], &y = in[1];
    if (x.size() < 2 || y.size() < 2)
      return fail("matmul takes two matrices");
    bool rowsA = x.size() > 2 && !a.transA && y.size() == 2;
    bool rowsBoth =
        x.size() > 2 && a.transA && !a.transB && Shape(x.begin(), x.end() - 1) == Shape(y.begin(), y.end() - 1);
    if ((x.size() > 2 || y.size() > 2) && !rowsA && !rowsBoth)
      return fail(fmt::format("matmul of {} and {}: rows of more axes go against a matrix, or transposed against "
                              "the same rows",
                              formatShape(x), formatShape(y)));
    if (rowsBoth)
      return {{x.back(), y.back()}, ""};
    int64_t ka = a.transA ? x[0] : x.back();
    int64_t kb = a.transB ? y[1] : y[0], n = a.transB ? y[0] : y[1];
    if (ka != kb)
      return fail(fmt::format("matmul inner dimensions differ: {} and {}", formatShape(x), formatShape(y)));
    Shape out = a.transA ? Shape{x[1]} : Shape(x.begin(), x.end() - 1);
    out.push_back(n);
    return {out, ""};
  }
  case Op::Conv2D:
  case Op::Conv2DBackData:
  case Op::Conv2DBackFilter: {
    // Recover x, w and y's shapes, then check they agree.
    Shape x = op == Op::Conv2DBackData ? a.shape : in[0];
    Shape w = op == Op::Conv2DBackFilter ? a.shape : in[1];
    const ConvParams &c = a.conv;
    if (x.size() != 4 || w.size() != 4 || c.stride < 1 || c.padding < 0 || c.dilation[0] < 1 || c.dilation[1] < 1 ||
        c.groups < 1)
      return fail("conv2d takes [B, C, H, W] data and [F, C / groups, Kh, Kw] filters, stride, dilation and groups "
                  ">= 1, padding >= 0");
    int64_t kh = convSpan(w[2], c.dilation[0]), kw = convSpan(w[3], c.dilation[1]);
    int64_t ho = convOutSize(x[2], kh, c.stride, c.padding), wo = convOutSize(x[3], kw, c.stride, c.padding);
    if (x[1] != w[1] * c.groups || w[0] % c.groups)
      return fail(
          fmt::format("conv2d of {} with filters {} in {} groups: the groups must split the channels and the filters",
                      formatShape(x), formatShape(w), c.groups));
    if (ho < 1 || wo < 1 || kh > x[2] + 2 * c.padding || kw > x[3] + 2 * c.padding)
      return fail(fmt::format("conv2d of {} with filters {} (stride {}, padding {}, dilation [{}, {}]) has no output",
                              formatShape(x), formatShape(w), c.stride, c.padding, c.dilation[0], c.dilation[1]));
    Shape y{x[0], w[0], ho, wo};
    if (op == Op::Conv2DBackData && in[0] != y)
      return fail(fmt::format("conv2d_back_data: gradient {} does not match {}", formatShape(in[0]), formatShape(y)));
    if (op == Op::Conv2DBackFilter && (in[1] != y || in[0][0] != in[1][0]))
      return fail(fmt::format("conv2d_back_filter: gradient {} does not match {}", formatShape(in[1]), formatShape(y)));
    return {op == Op::Conv2D ? y : op == Op::Conv2DBackData ? x : w, ""};
  }
  case Op::MaxPool2D:
  case Op::MaxPool2DBack:
  case Op::MaxPool2DShare:
  case Op::AvgPool2D:
  case Op::AvgPool2DBack: {
    const Pool2D &p = a.pool;
    const Shape &x = op == Op::AvgPool2DBack ? a.shape : in[0];
    if (x.size() != 4 || x[2] == kBatch || x[3] == kBatch)
      return fail(fmt::format("{} takes [B, C, H, W], not {}", opName(op), formatShape(x)));
    // Each window starts inside the input or its padding, and holds at least one element.
    for (size_t axis = 0; axis < 2; ++axis) {
      int64_t k = p.kernel[axis], s = p.stride[axis], pad = p.padding[axis], n = x[axis + 2];
      int64_t floorOut = poolOutSize(n, k, s, pad, false), ceilOut = poolOutSize(n, k, s, pad, true);
      if (k < 1 || s < 1 || pad < 0 || 2 * pad > k || floorOut < 1 || p.out[axis] < floorOut || p.out[axis] > ceilOut)
        return fail(fmt::format("{} of {}: window {}, stride {}, padding {} cannot give {} outputs along axis {}",
                                opName(op), formatShape(x), k, s, pad, p.out[axis], axis + 2));
    }
    Shape y{x[0], x[1], p.out[0], p.out[1]};
    switch (op) {
    case Op::MaxPool2D:
    case Op::AvgPool2D:
      return {y, ""};
    case Op::AvgPool2DBack:
      if (in[0] != y)
        return fail(fmt::format("avg_pool2d_back: gradient {} must be {}", formatShape(in[0]), formatShape(y)));
      return {x, ""};
    default: // max_pool2d_back(x, y, dy) and max_pool2d_share(x, y, d)
      if (in[1] != y || in[2] != (op == Op::MaxPool2DBack ? y : x))
        return fail(fmt::format("{}: pooled {} and gradient {} do not match {}", opName(op), formatShape(in[1]),
                                formatShape(in[2]), formatShape(x)));
      return {op == Op::MaxPool2DBack ? x : y, ""};
    }
  }
  case Op::Loop: // checked against its body by verify
    return {{}, ""};
  case Op::LoopResult:
    if (!in[0].empty())
      return fail("loop_result takes a loop");
    return {a.shape, ""};
  case Op::Reshape: {
    // Only the batch dimension may be dynamic, and it must stay the leading axis.
    auto staticCount = [](const Shape &s) {
      int64_t n = 1;
      for (int64_t d : s)
        n *= d == kBatch ? 1 : d;
      return n;
    };
    auto batchAxes = [](const Shape &s) { return std::count(s.begin(), s.end(), kBatch); };
    if (staticCount(in[0]) != staticCount(a.shape) || batchAxes(in[0]) != batchAxes(a.shape) ||
        (batchAxes(in[0]) && (in[0][0] != kBatch || a.shape[0] != kBatch)))
      return fail(fmt::format("cannot reshape {} to {}", formatShape(in[0]), formatShape(a.shape)));
    return {a.shape, ""};
  }
  }
  return fail("unknown op");
}

} // namespace soma::ir
