// Depthwise convolutions (groups of one input channel each: filter f reads channel f / m, with m
// filters a channel) on the pooling kernels' window rows (Pool.cpp): a depthwise window is a
// pooling window whose taps are weighted. Any filter size, stride and padding; one vector of V
// output columns at a time, each tap row of the input loaded once and each tap's lanes picked
// from it by a shuffle.
#include "codegen/Emitter.h"

namespace soma::codegen {

using namespace ir;

namespace {

// The convolution's window as a pooling window: the rows and columns its filter spans (at its
// dilation), stride and padding, and y's extent. Tap (u, v) is row u dh and column v dw of it.
Pool2D convWindow(const Node &n, const Shape &ws, const Shape &ys) {
  Pool2D p;
  p.kernel = {convSpan(ws[2], n.attrs.conv.dilation[0]), convSpan(ws[3], n.attrs.conv.dilation[1])};
  p.stride = {n.attrs.conv.stride, n.attrs.conv.stride};
  p.padding = {n.attrs.conv.padding, n.attrs.conv.padding};
  p.out = {ys[2], ys[3]};
  return p;
}

} // namespace

// Filter f's Kh * Kw weights (w is [F, 1, Kh, Kw]), each repeated in every lane.
std::vector<llvm::Value *> FunctionEmitter::filterTaps(int wNode, llvm::Value *f) {
  const Shape &ws = f_.nodes[wNode].shape;
  int64_t taps = ws[2] * ws[3];
  llvm::Value *first = b_.CreateGEP(f32_, slotPtr(wNode), b_.CreateMul(f, b_.getInt64(taps)));
  std::vector<llvm::Value *> w;
  for (int64_t t = 0; t < taps; ++t)
    w.push_back(b_.CreateVectorSplat(lanes(), b_.CreateLoad(f32_, b_.CreateConstGEP1_64(f32_, first, t))));
  return w;
}

// conv.depthwise: y[b, f, i, q] = sum over u, v of w[f, 0, u, v] x[b, f / m, i s + u dh - p, q s + v dw - p],
// a plane (b, f) at a time, its weights loaded once; results through the epilogue, if any.
void FunctionEmitter::depthwiseConv(const Kernel &k, llvm::Value *lo, llvm::Value *hi) {
  int conv = k.product >= 0 ? k.product : k.root;
  const Node &n = f_.nodes[conv];
  int xNode = n.operands[0], wNode = n.operands[1];
  const Shape ys = n.shape, ws = f_.nodes[wNode].shape;
  const Pool2D p = convWindow(n, ws, ys);
  int64_t F = ys[1], m = F / n.attrs.conv.groups, Kh = ws[2], Kw = ws[3];
  int64_t dh = n.attrs.conv.dilation[0], dw = n.attrs.conv.dilation[1];
  std::vector<llvm::Value *> w;
  auto plane = [&](llvm::Value *, llvm::Value *f) { w = filterTaps(wNode, f); };
  auto chunk = [&](llvm::Value *b, llvm::Value *f, llvm::Value *i, llvm::Value *q, int64_t width) {
    auto count = static_cast<unsigned>(width);
    llvm::Value *c = b_.CreateUDiv(f, b_.getInt64(m)), *out = llvm::Constant::getNullValue(vecTy());
    for (int64_t u = 0; u < Kh; ++u) {
      llvm::Value *row = concat(windowRow(xNode, p, b, c, i, u * dh, q, count, 0).parts);
      for (int64_t v = 0; v < Kw; ++v)
        out = fma(w[static_cast<size_t>(u * Kw + v)], pickLanes(row, v * dw, p.stride[1]), out);
    }
    poolResult(k, out, {b, f, i, q}, count);
  };
  windowLoops(lo, hi, F, p.out[0], p.out[1], chunk, plane);
}

// conv-data.depthwise: dx's plane (b, c) zeroed, then for each chunk of V columns of dy's rows,
// tap row by tap row, the shares w[f, 0, u, v] dy[b, f, i, q] of its m filters f added into dx's
// row (tap v of window l at lane l s + v), read and written back whole. Overlapping windows add
// in program order, a sample to a thread: deterministic.
void FunctionEmitter::depthwiseBackData(const Kernel &k, llvm::Value *lo, llvm::Value *hi) {
  const Node &n = f_.nodes[k.root];
  int yNode = n.operands[0], wNode = n.operands[1];
  const Shape xs = n.shape, ys = f_.nodes[yNode].shape, ws = f_.nodes[wNode].shape;
  const Pool2D p = convWindow(n, ws, ys);
  int64_t m = ys[1] / n.attrs.conv.groups, Kh = ws[2], Kw = ws[3];
  int64_t dh = n.attrs.conv.dilation[0], dw = n.attrs.conv.dilation[1];
  std::vector<std::vector<llvm::Value *>> w(static_cast<size_t>(m)); // [filter of the channel][tap]
  auto plane = [&](llvm::Value *b, llvm::Value *c) {
    b_.CreateMemSet(imageRow(k.root, b, c, b_.getInt64(0)), b_.getInt8(0), b_.getInt64(xs[2] * xs[3] * 4),
                    llvm::Align(4));
    for (int64_t j = 0; j < m; ++j)
      w[static_cast<size_t>(j)] = filterTaps(wNode, b_.CreateAdd(b_.CreateMul(c, b_.getInt64(m)), b_.getInt64(j)));
  };
  auto chunk = [&](llvm::Value *b, llvm::Value *c, llvm::Value *i, llvm::Value *q, int64_t width) {
    auto count = static_cast<unsigned>(width);
    std::vector<llvm::Value *> dy; // lanes past `count` load as zeros: they add nothing
    for (int64_t j = 0; j < m; ++j) {
      llvm::Value *f = b_.CreateAdd(b_.CreateMul(c, b_.getInt64(m)), b_.getInt64(j));
      dy.push_back(loadVec(b_.CreateGEP(f32_, imageRow(yNode, b, f, i), q), count));
    }
    for (int64_t u = 0; u < Kh; ++u) {
      WindowRow dx = windowRow(k.root, p, b, c, i, u * dh, q, count, 0);
      for (int64_t v = 0; v < Kw; ++v) {
        llvm::Value *shares = nullptr;
        for (int64_t j = 0; j < m; ++j) {
          llvm::Value *wj = w[static_cast<size_t>(j)][static_cast<size_t>(u * Kw + v)];
          shares = shares ? fma(wj, dy[static_cast<size_t>(j)], shares) : b_.CreateFMul(wj, dy[static_cast<size_t>(j)]);
        }
        addShares(dx, shares, v * dw, p.stride[1]);
      }
      storeWindowRow(dx);
    }
  };
  windowLoops(lo, hi, xs[1], p.out[0], p.out[1], chunk, plane);
}

// conv-filter.depthwise, filters [lo, hi): dw[f, 0, u, v] = the sum over the batch and dy's
// positions of dy[b, f, i, q] x[b, f / m, i s + u - p, q s + v - p], a vector of sums per tap
// along dy's rows, each summed across its lanes at the end. A filter to a thread: deterministic.
void FunctionEmitter::depthwiseBackFilter(const Kernel &k, llvm::Value *lo, llvm::Value *hi) {
  const Node &n = f_.nodes[k.root];
  int xNode = n.operands[0], yNode = n.operands[1];
  const Shape ws = n.shape, ys = f_.nodes[yNode].shape;
  const Pool2D p = convWindow(n, ws, ys);
  int64_t m = ys[1] / n.attrs.conv.groups, Kh = ws[2], Kw = ws[3], taps = Kh * Kw;
  int64_t dh = n.attrs.conv.dilation[0], dw = n.attrs.conv.dilation[1];
  llvm::AllocaInst *acc = entryAlloca(llvm::ArrayType::get(vecTy(), taps), nullptr, "acc"); // registers
  auto sum = [&](int64_t t) { return b_.CreateConstGEP2_64(acc->getAllocatedType(), acc, 0, t); };
  loop(lo, hi, [&](llvm::Value *f) {
    for (int64_t t = 0; t < taps; ++t)
      b_.CreateStore(llvm::Constant::getNullValue(vecTy()), sum(t));
    llvm::Value *c = b_.CreateUDiv(f, b_.getInt64(m));
    auto chunk = [&](llvm::Value *b, llvm::Value *, llvm::Value *i, llvm::Value *q, int64_t width) {
      auto count = static_cast<unsigned>(width);
      llvm::Value *dy = loadVec(b_.CreateGEP(f32_, imageRow(yNode, b, f, i), q), count); // zeros past `count`
      for (int64_t u = 0; u < Kh; ++u) {
        llvm::Value *row = concat(windowRow(xNode, p, b, c, i, u * dh, q, count, 0).parts);
        for (int64_t v = 0; v < Kw; ++v)
          b_.CreateStore(fma(dy, pickLanes(row, v * dw, p.stride[1]), b_.CreateLoad(vecTy(), sum(u * Kw + v))),
                         sum(u * Kw + v));
      }
    };
    windowLoops(b_.getInt64(0), batch_, 1, p.out[0], p.out[1], chunk);
    llvm::Value *first = b_.CreateGEP(f32_, slotPtr(k.root), b_.CreateMul(f, b_.getInt64(taps)));
    for (int64_t t = 0; t < taps; ++t)
      b_.CreateStore(b_.CreateFAddReduce(llvm::ConstantFP::get(f32_, 0.0), b_.CreateLoad(vecTy(), sum(t))),
                     b_.CreateConstGEP1_64(f32_, first, t));
  });
}

} // namespace soma::codegen
