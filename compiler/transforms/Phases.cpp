// Strided convolutions over phases (Phases.h). Along each image axis the input is padded (or cut)
// to (outputs + ceil(k/s) - 1) * s, the filter padded to ceil(k/s) * s, and both split into their
// phases by space_to_depth; the gradients undo the same moves in reverse order.
#include "transforms/Phases.h"

#include <algorithm>

namespace soma::transforms {

using namespace ir;

namespace {

// The moves of one strided convolution: its stride, the filter's taps per phase along its rows
// and its columns (kh, kw in all), and the phases kept along each axis (those below the filter's
// larger extent: the others meet no tap; space_to_depth keeps as many along both).
struct Geometry {
  int64_t s, kqh, kqw, phases;
  Geometry(int64_t stride, const Shape &w)
      : s(stride), kqh((w[2] + stride - 1) / stride), kqw((w[3] + stride - 1) / stride),
        phases(std::min(stride, std::max(w[2], w[3]))) {}
};

// Along `axis`, `before` zeros, then the operand, then zeros or a cut to `size` in all.
int fit(Builder &b, int v, size_t axis, int64_t before, int64_t size) {
  Shape sh = b.shape(v);
  int64_t total = std::max(size, sh[axis] + before);
  if (total != sh[axis]) {
    sh[axis] = total;
    v = b.pad(v, static_cast<int64_t>(axis), before, sh);
  }
  if (total != size) {
    sh[axis] = size;
    v = b.slice(v, static_cast<int64_t>(axis), 0, sh);
  }
  return v;
}

// The adjoint of fit(., axis, before, size) on an operand of `extent` along `axis`: the cut part
// back as zeros, then the operand's window.
int unfit(Builder &b, int v, size_t axis, int64_t before, int64_t extent) {
  Shape sh = b.shape(v);
  int64_t size = sh[axis], total = std::max(size, extent + before);
  if (total != size) {
    sh[axis] = total;
    v = b.pad(v, static_cast<int64_t>(axis), 0, sh);
  }
  if (total != extent) {
    sh[axis] = extent;
    v = b.slice(v, static_cast<int64_t>(axis), before, sh);
  }
  return v;
}

// x [B, C, H, W] padded to the rows and columns the phases of `outputs` need, split into phases.
int phasedInput(Builder &b, int x, const Geometry &g, int64_t padding, int64_t ho, int64_t wo) {
  return b.spaceToDepth(fit(b, fit(b, x, 2, padding, (ho + g.kqh - 1) * g.s), 3, padding, (wo + g.kqw - 1) * g.s), g.s,
                        g.phases);
}

int phasedFilter(Builder &b, int w, const Geometry &g) {
  return b.spaceToDepth(fit(b, fit(b, w, 2, 0, g.kqh * g.s), 3, 0, g.kqw * g.s), g.s, g.phases);
}

// The shape of x (or w) once fitted: [.., rows, columns] before its split into phases.
Shape fitted(Shape s, int64_t rows, int64_t columns) {
  s[2] = rows;
  s[3] = columns;
  return s;
}

// A fitted tensor's phases [.., C * phases^2, rows / s, columns / s].
Shape phased(Shape s, const Geometry &g) {
  s[1] *= g.phases * g.phases;
  s[2] /= g.s;
  s[3] /= g.s;
  return s;
}

} // namespace

int phasedConv(Builder &b, int x, int w, const ConvParams &c) {
  int64_t stride = c.stride, padding = c.padding;
  Shape xs = b.shape(x), ws = b.shape(w); // [B, C, H, W], [F, C, K, K]
  Geometry g(stride, ws);
  int64_t ho = convOutSize(xs[2], ws[2], stride, padding), wo = convOutSize(xs[3], ws[3], stride, padding);
  int xq = phasedInput(b, x, g, padding, ho, wo); // the input's nodes first, then the filter's
  int wq = phasedFilter(b, w, g);
  return b.conv2d(xq, wq, {1, 0, {1, 1}, c.groups});
}

int phasedConvBackData(Builder &b, int dy, int w, const Shape &xShape, const ConvParams &c) {
  int64_t stride = c.stride, padding = c.padding;
  Shape ys = b.shape(dy), ws = b.shape(w);
  Geometry g(stride, ws);
  Shape xf = fitted(xShape, (ys[2] + g.kqh - 1) * g.s, (ys[3] + g.kqw - 1) * g.s);
  int wq = phasedFilter(b, w, g);
  int dx = b.conv2dBackData(dy, wq, phased(xf, g), {1, 0, {1, 1}, c.groups});
  dx = b.depthToSpace(dx, g.s, g.phases, xf);
  return unfit(b, unfit(b, dx, 3, padding, xShape[3]), 2, padding, xShape[2]);
}

int phasedConvBackFilter(Builder &b, int x, int dy, const Shape &wShape, const ConvParams &c) {
  int64_t stride = c.stride, padding = c.padding;
  Shape ys = b.shape(dy);
  Geometry g(stride, wShape);
  Shape wf = fitted(wShape, g.kqh * g.s, g.kqw * g.s);
  int xq = phasedInput(b, x, g, padding, ys[2], ys[3]);
  int dw = b.conv2dBackFilter(xq, dy, phased(wf, g), {1, 0, {1, 1}, c.groups});
  dw = b.depthToSpace(dw, g.s, g.phases, wf);
  return unfit(b, unfit(b, dw, 3, 0, wShape[3]), 2, 0, wShape[2]);
}

Function splitStrides(const Function &f, const Machine &m) {
  Function out;
  out.name = f.name;
  for (const Function &body : f.bodies) // each loop's step, split as well
    out.bodies.push_back(splitStrides(body, m));
  Builder b(out);
  std::vector<int> id(f.nodes.size(), -1);
  for (size_t i = 0; i < f.nodes.size(); ++i) {
    Node n = f.nodes[i];
    for (int &o : n.operands)
      o = id[static_cast<size_t>(o)];
    const ConvParams &c = n.attrs.conv;
    bool conv = n.op == Op::Conv2D || n.op == Op::Conv2DBackData || n.op == Op::Conv2DBackFilter;
    // Over phases the taps of a dilated filter would be zeros in between: those keep their stride.
    if (conv && c.stride != 1 && !c.dilated() && !stridedKernel(f, static_cast<int>(i), m)) {
      int x = n.operands[0], y = n.operands[1];
      id[i] = n.op == Op::Conv2D           ? phasedConv(b, x, y, c)
              : n.op == Op::Conv2DBackData ? phasedConvBackData(b, x, y, n.shape, c)
                                           : phasedConvBackFilter(b, x, y, n.shape, c);
      continue;
    }
    id[i] = static_cast<int>(out.nodes.size());
    out.nodes.push_back(std::move(n));
  }
  for (const Result &r : f.results)
    out.results.push_back(
        {r.name, id[static_cast<size_t>(r.value)], r.updates >= 0 ? id[static_cast<size_t>(r.updates)] : -1});
  return out;
}

} // namespace soma::transforms
