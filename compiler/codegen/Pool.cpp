// Pooling kernels, rows [lo, hi) of the batch, each a plane (b, c) at a time and in it vectors
// of V output columns: window.lanes (square windows at their own stride, no padding),
// window.rows (any window, a result per window) and window.back-rows (any window's gradient).
#include "codegen/Emitter.h"

#include <limits>

namespace soma::codegen {

using namespace ir;

// The pooling op's `count` results at (b, c, row, col..): stored, or through the kernel's
// epilogue, on the vector or lane by lane from a buffer.
void FunctionEmitter::poolResult(const Kernel &k, llvm::Value *v, const std::vector<llvm::Value *> &at,
                                 unsigned count) {
  int pool = k.product >= 0 ? k.product : k.root;
  if (k.root == pool) {
    storeVec(v, b_.CreateGEP(f32_, imageRow(pool, at[0], at[1], at[2]), at[3]), count);
  } else if (plan_->vectorEpilogue) {
    productEpilogueVec(k, at, v, count);
  } else {
    if (!laneBuffer_)
      laneBuffer_ = entryAlloca(f32_, b_.getInt64(lanes()), "lanes");
    storeVec(v, laneBuffer_, count);
    for (unsigned l = 0; l < count; ++l)
      productEpilogue(k, {at[0], at[1], at[2], b_.CreateAdd(at[3], b_.getInt64(l))},
                      b_.CreateLoad(f32_, b_.CreateConstGEP1_64(f32_, laneBuffer_, l)));
  }
}

// For b in [lo, hi), c < C, output row i < Ho: chunks of V output columns from q, the last one
// `count` < V wide when V does not divide Wo.
void FunctionEmitter::windowLoops(llvm::Value *lo, llvm::Value *hi, int64_t C, int64_t Ho, int64_t Wo,
                                  const WindowChunk &chunk,
                                  const std::function<void(llvm::Value *, llvm::Value *)> &plane) {
  auto c64 = [&](int64_t v) { return b_.getInt64(v); };
  int64_t V = lanes();
  loop(lo, hi, [&](llvm::Value *b) {
    loop(
        c64(0), c64(C),
        [&](llvm::Value *c) {
          if (plane)
            plane(b, c);
          loop(
              c64(0), c64(Ho),
              [&](llvm::Value *i) {
                if (Wo / V > 0)
                  loop(
                      c64(0), c64(Wo / V), [&](llvm::Value *t) { chunk(b, c, i, b_.CreateMul(t, c64(V)), V); }, true);
                if (Wo % V)
                  chunk(b, c, i, c64(Wo / V * V), Wo % V);
              },
              true);
        },
        true);
  });
}

// Tap row u of the windows of output row i from output column q on: x's row i*s - p + u from
// column q*s - p on, in whole vectors enough for V windows. Lanes outside x, or past the span of
// the `count` windows, are `fill` and off in `masks` (nullptr: a vector wholly off).
FunctionEmitter::WindowRow FunctionEmitter::windowRow(int node, const Pool2D &p, llvm::Value *b, llvm::Value *c,
                                                      llvm::Value *i, int64_t u, llvm::Value *q, unsigned count,
                                                      double fill) {
  const Shape &xs = f_.nodes[node].shape;
  int64_t H = xs[2], W = xs[3], V = lanes();
  auto c64 = [&](int64_t v) { return b_.getInt64(v); };
  llvm::Value *h = b_.CreateAdd(b_.CreateMul(i, c64(p.stride[0])), c64(u - p.padding[0]));
  llvm::Value *rowIn = b_.CreateAnd(b_.CreateICmpSGE(h, c64(0)), b_.CreateICmpSLT(h, c64(H)));
  llvm::Value *col0 = b_.CreateSub(b_.CreateMul(q, c64(p.stride[1])), c64(p.padding[1]));
  int64_t span = (static_cast<int64_t>(count) - 1) * p.stride[1] + p.kernel[1];
  int64_t parts = ((V - 1) * p.stride[1] + p.kernel[1] + V - 1) / V;
  llvm::Value *fillVec = llvm::ConstantFP::get(vecTy(), fill);
  WindowRow r;
  r.at = b_.CreateGEP(f32_, imageRow(node, b, c, h), col0);
  auto *i64Vec = llvm::FixedVectorType::get(i64_, lanes());
  llvm::Value *first = b_.CreateVectorSplat(lanes(), col0), *rowOn = b_.CreateVectorSplat(lanes(), rowIn);
  for (int64_t t = 0; t < parts; ++t) {
    if (t * V >= span) {
      r.parts.push_back(fillVec);
      r.masks.push_back(nullptr);
      continue;
    }
    std::vector<llvm::Constant *> cols, inSpan;
    for (int64_t l = 0; l < V; ++l) {
      cols.push_back(c64(t * V + l));
      inSpan.push_back(b_.getInt1(t * V + l < span));
    }
    llvm::Value *col = b_.CreateAdd(first, llvm::ConstantVector::get(cols));
    llvm::Value *on = b_.CreateAnd(b_.CreateICmpSGE(col, llvm::Constant::getNullValue(i64Vec)),
                                   b_.CreateICmpSLT(col, llvm::ConstantInt::get(i64Vec, W)));
    on = b_.CreateAnd(b_.CreateAnd(on, llvm::ConstantVector::get(inSpan)), rowOn);
    r.parts.push_back(
        b_.CreateMaskedLoad(vecTy(), b_.CreateConstGEP1_64(f32_, r.at, t * V), llvm::Align(4), on, fillVec));
    r.masks.push_back(on);
  }
  return r;
}

// avg_pool2d's divisors of the V windows of output row i from column q on (past the last: 1),
// from two tables of the divisors along each axis.
llvm::Value *FunctionEmitter::poolDivisors(int node, const Shape &xs, llvm::Value *i, llvm::Value *q) {
  const Pool2D &p = f_.nodes[node].attrs.pool;
  llvm::Value *along[2];
  for (int axis = 0; axis < 2; ++axis) {
    std::vector<float> d;
    for (int64_t o = 0; o < p.out[static_cast<size_t>(axis)]; ++o)
      d.push_back(static_cast<float>(poolSpan(p, axis, o, xs[static_cast<size_t>(axis) + 2]).divisor));
    if (axis == 1)
      d.resize(static_cast<size_t>((p.out[1] + lanes() - 1) / lanes() * lanes()), 1.0F);
    llvm::GlobalVariable *&table = poolDivisors_[{node, axis}];
    if (!table)
      table = privateConstant(m_, f_.name + ".divisors" + std::to_string(node) + "." + std::to_string(axis),
                              llvm::ConstantDataArray::get(c_, d), 4);
    along[axis] = axis == 0 ? b_.CreateLoad(f32_, b_.CreateGEP(f32_, table, i))
                            : b_.CreateAlignedLoad(vecTy(), b_.CreateGEP(f32_, table, q), llvm::Align(4));
  }
  return b_.CreateFMul(b_.CreateVectorSplat(lanes(), along[0]), along[1]);
}

// window.rows: each output row's windows in chunks of V. Each tap row is loaded once, in
// vectors, and tap v of the V windows picked from it (lanes v, v + s, ...): max_pool2d takes
// their maximum, avg_pool2d their sum over the divisor, max_pool2d_share compares them with y
// and sums d where equal, over the number of maxima.
void FunctionEmitter::poolRows(const Kernel &k, llvm::Value *lo, llvm::Value *hi) {
  int pool = k.product >= 0 ? k.product : k.root;
  const Node &n = f_.nodes[pool];
  const Pool2D &p = n.attrs.pool;
  int xNode = n.operands[0];
  const Shape xs = f_.nodes[xNode].shape;
  double nan = std::numeric_limits<double>::quiet_NaN();
  auto chunk = [&](llvm::Value *b, llvm::Value *c, llvm::Value *i, llvm::Value *q, int64_t width) {
    auto count = static_cast<unsigned>(width);
    llvm::Value *out = nullptr, *ties = nullptr, *y = nullptr;
    if (n.op == Op::MaxPool2DShare)
      y = loadVec(b_.CreateGEP(f32_, imageRow(n.operands[1], b, c, i), q), count);
    for (int64_t u = 0; u < p.kernel[0]; ++u) {
      switch (n.op) {
      case Op::MaxPool2D:
      case Op::AvgPool2D: {
        bool max = n.op == Op::MaxPool2D;
        llvm::Value *row =
            concat(windowRow(xNode, p, b, c, i, u, q, count, max ? -std::numeric_limits<double>::infinity() : 0).parts);
        for (int64_t v = 0; v < p.kernel[1]; ++v) {
          llvm::Value *tap = pickLanes(row, v, p.stride[1]);
          out = !out ? tap : max ? b_.CreateMaxNum(out, tap) : b_.CreateFAdd(out, tap);
        }
        break;
      }
      default: { // max_pool2d_share(x, y, d)
        llvm::Value *xRow = concat(windowRow(xNode, p, b, c, i, u, q, count, nan).parts);
        llvm::Value *ds = concat(windowRow(n.operands[2], p, b, c, i, u, q, count, 0).parts);
        for (int64_t v = 0; v < p.kernel[1]; ++v) {
          llvm::Value *eq = b_.CreateFCmpOEQ(pickLanes(xRow, v, p.stride[1]), y);
          llvm::Value *one =
              b_.CreateSelect(eq, llvm::ConstantFP::get(vecTy(), 1.0), llvm::Constant::getNullValue(vecTy()));
          llvm::Value *d = b_.CreateSelect(eq, pickLanes(ds, v, p.stride[1]), llvm::Constant::getNullValue(vecTy()));
          ties = ties ? b_.CreateFAdd(ties, one) : one;
          out = out ? b_.CreateFAdd(out, d) : d;
        }
        break;
      }
      }
    }
    if (n.op == Op::AvgPool2D)
      out = b_.CreateFDiv(out, poolDivisors(pool, xs, i, q));
    else if (n.op == Op::MaxPool2DShare)
      out = b_.CreateFDiv(out, ties);
    poolResult(k, out, {b, c, i, q}, count);
  };
  windowLoops(lo, hi, xs[1], p.out[0], p.out[1], chunk);
}

// window.back-rows: the gradient of any window, into x's shape. Each plane of the result is
// zeroed, then each chunk of V windows computes its shares (avg: g over the divisor; max: dy
// over the number of maxima, where x is maximal) and adds them, tap row by tap row, to the
// result's row: tap v of window l goes to lane l*s + v, the row read, summed and written back
// whole. Windows that overlap add in program order, one thread to a sample: deterministic.
void FunctionEmitter::poolBackRows(const Kernel &k, llvm::Value *lo, llvm::Value *hi) {
  int pool = k.root;
  const Node &n = f_.nodes[pool];
  const Pool2D &p = n.attrs.pool;
  bool avg = n.op == Op::AvgPool2DBack;
  int gNode = avg ? n.operands[0] : n.operands[2];
  const Shape xs = n.shape;
  int64_t s = p.stride[1];
  double nan = std::numeric_limits<double>::quiet_NaN();
  llvm::Constant *zeros = llvm::Constant::getNullValue(vecTy());
  auto plane = [&](llvm::Value *b, llvm::Value *c) {
    b_.CreateMemSet(imageRow(pool, b, c, b_.getInt64(0)), b_.getInt8(0), b_.getInt64(xs[2] * xs[3] * 4),
                    llvm::Align(4));
  };
  auto chunk = [&](llvm::Value *b, llvm::Value *c, llvm::Value *i, llvm::Value *q, int64_t width) {
    auto count = static_cast<unsigned>(width);
    llvm::Value *g = loadVec(b_.CreateGEP(f32_, imageRow(gNode, b, c, i), q), count), *y = nullptr, *share;
    std::vector<llvm::Value *> xRows; // max: each tap row of x, whole
    if (avg) {
      share = b_.CreateFDiv(g, poolDivisors(pool, xs, i, q));
    } else {
      y = loadVec(b_.CreateGEP(f32_, imageRow(n.operands[1], b, c, i), q), count);
      llvm::Value *ties = nullptr;
      for (int64_t u = 0; u < p.kernel[0]; ++u) {
        xRows.push_back(concat(windowRow(n.operands[0], p, b, c, i, u, q, count, nan).parts));
        for (int64_t v = 0; v < p.kernel[1]; ++v) {
          llvm::Value *one = b_.CreateSelect(b_.CreateFCmpOEQ(pickLanes(xRows.back(), v, s), y),
                                             llvm::ConstantFP::get(vecTy(), 1.0), zeros);
          ties = ties ? b_.CreateFAdd(ties, one) : one;
        }
      }
      share = b_.CreateFDiv(g, ties);
    }
    if (count < lanes()) // windows past the last: nothing (0 / 0 where no x is maximal)
      share = b_.CreateSelect(mask(firstLanes(count)), share, zeros);
    for (int64_t u = 0; u < p.kernel[0]; ++u) {
      WindowRow dx = windowRow(pool, p, b, c, i, u, q, count, 0);
      for (int64_t v = 0; v < p.kernel[1]; ++v) {
        llvm::Value *add =
            avg ? share
                : b_.CreateSelect(b_.CreateFCmpOEQ(pickLanes(xRows[static_cast<size_t>(u)], v, s), y), share, zeros);
        addShares(dx, add, v, s);
      }
      storeWindowRow(dx);
    }
  };
  windowLoops(lo, hi, xs[1], p.out[0], p.out[1], chunk, plane);
}

// Adds tap v's shares of V windows at stride s into a window row: lane m of part t gets window
// (t V + m - v) / s's share, where that is a window.
void FunctionEmitter::addShares(WindowRow &row, llvm::Value *shares, int64_t v, int64_t stride) {
  int64_t V = lanes();
  llvm::Constant *zeros = llvm::Constant::getNullValue(vecTy());
  for (size_t t = 0; t < row.parts.size(); ++t) {
    std::vector<int> from(lanes());
    bool any = false;
    for (int64_t m = 0; m < V; ++m) {
      int64_t pos = static_cast<int64_t>(t) * V + m - v;
      bool hit = row.masks[t] && pos >= 0 && pos % stride == 0 && pos / stride < V;
      from[static_cast<size_t>(m)] = static_cast<int>(hit ? pos / stride : V);
      any |= hit;
    }
    if (any)
      row.parts[t] = b_.CreateFAdd(row.parts[t], b_.CreateShuffleVector(shares, zeros, from));
  }
}

// A window row's parts back where windowRow loaded them, the lanes it loaded only.
void FunctionEmitter::storeWindowRow(const WindowRow &row) {
  for (size_t t = 0; t < row.parts.size(); ++t)
    if (row.masks[t])
      b_.CreateMaskedStore(row.parts[t], b_.CreateConstGEP1_64(f32_, row.at, static_cast<int64_t>(t) * lanes()),
                           llvm::Align(4), row.masks[t]);
}

// Max pooling, k x k windows with stride k, rows [lo, hi) of the batch. A chunk of V output
// columns reads k vectors of each of its k input rows: the forward pass takes their maximum
// down the rows, then across each window's k neighbours (lanes picked every k-th); the backward
// pass compares each input vector with y repeated k times per lane, counts each window's
// maxima the same way, and writes the share dy / count where x is maximal, 0 elsewhere.
// With an epilogue (k.product the pooling op), the elementwise consumer runs on each vector.
void FunctionEmitter::emitWindow(const Kernel &k, llvm::Value *lo, llvm::Value *hi) {
  int pool = k.product >= 0 ? k.product : k.root;
  const Node &n = f_.nodes[pool];
  bool back = n.op == Op::MaxPool2DBack;
  int xNode = n.operands[0], yNode = back ? n.operands[1] : pool;
  // The result's `count` lanes at (b, c, row, col..): stored, or through the epilogue.
  auto result = [&](llvm::Value *v, llvm::Value *b, llvm::Value *c, llvm::Value *row, llvm::Value *col,
                    unsigned count) {
    poolResult(k, v, {b, c, row, col}, count);
  };
  const Shape xs = f_.nodes[xNode].shape;
  int64_t kk = n.attrs.pool.kernel[0], C = xs[1], Ho = n.attrs.pool.out[0], Wo = n.attrs.pool.out[1], V = lanes();
  auto c64 = [&](int64_t v) { return b_.getInt64(v); };
  auto repeat = [&](llvm::Value *v, int64_t j) { // lanes of input vector j: v[(j V + l) / k]
    std::vector<int> picks(lanes());
    for (unsigned l = 0; l < lanes(); ++l)
      picks[l] = static_cast<int>((j * V + l) / kk);
    return b_.CreateShuffleVector(v, picks);
  };
  // One chunk of outputs starting at column q (a Value), `count` of them valid (static).
  auto chunk = [&](llvm::Value *b, llvm::Value *c, llvm::Value *i, llvm::Value *q, int64_t count) {
    llvm::Value *qIn = b_.CreateMul(q, c64(kk));
    auto inCount = [&](int64_t j) { return static_cast<unsigned>(std::clamp<int64_t>(count * kk - j * V, 0, V)); };
    auto xRow = [&](int node, int64_t u) {
      return b_.CreateGEP(f32_, imageRow(node, b, c, b_.CreateAdd(b_.CreateMul(i, c64(kk)), c64(u))), qIn);
    };
    if (!back) {
      std::vector<llvm::Value *> down(static_cast<size_t>(kk));
      for (int64_t j = 0; j < kk; ++j)
        for (int64_t u = 0; u < kk; ++u) {
          llvm::Value *v = inCount(j) ? loadVec(b_.CreateConstGEP1_64(f32_, xRow(xNode, u), j * V), inCount(j))
                                      : llvm::Constant::getNullValue(vecTy());
          down[j] = u == 0 ? v : b_.CreateMaxNum(down[j], v);
        }
      llvm::Value *all = concat(down), *m = nullptr;
      for (int64_t s = 0; s < kk; ++s)
        m = s == 0 ? pickLanes(all, 0, kk) : b_.CreateMaxNum(m, pickLanes(all, s, kk));
      result(m, b, c, i, q, static_cast<unsigned>(count));
      return;
    }
    llvm::Value *y = loadVec(b_.CreateGEP(f32_, imageRow(yNode, b, c, i), q), static_cast<unsigned>(count));
    llvm::Value *dy = loadVec(b_.CreateGEP(f32_, imageRow(n.operands[2], b, c, i), q), static_cast<unsigned>(count));
    std::vector<std::vector<llvm::Value *>> isMax(static_cast<size_t>(kk)); // [u][j]
    std::vector<llvm::Value *> down(static_cast<size_t>(kk));               // maxima per input column, summed down
    for (int64_t u = 0; u < kk; ++u)
      for (int64_t j = 0; j < kk; ++j) {
        llvm::Value *x = inCount(j) ? loadVec(b_.CreateConstGEP1_64(f32_, xRow(xNode, u), j * V), inCount(j))
                                    : llvm::Constant::getNullValue(vecTy());
        llvm::Value *eq = b_.CreateFCmpOEQ(x, repeat(y, j));
        isMax[u].push_back(eq);
        llvm::Value *one =
            b_.CreateSelect(eq, llvm::ConstantFP::get(vecTy(), 1.0), llvm::Constant::getNullValue(vecTy()));
        down[j] = u == 0 ? one : b_.CreateFAdd(down[j], one);
      }
    llvm::Value *all = concat(down), *ties = nullptr;
    for (int64_t s = 0; s < kk; ++s)
      ties = s == 0 ? pickLanes(all, 0, kk) : b_.CreateFAdd(ties, pickLanes(all, s, kk));
    llvm::Value *share = b_.CreateFDiv(dy, ties);
    for (int64_t u = 0; u < kk; ++u)
      for (int64_t j = 0; j < kk; ++j)
        if (inCount(j))
          result(b_.CreateSelect(isMax[u][j], repeat(share, j), llvm::Constant::getNullValue(vecTy())), b, c,
                 b_.CreateAdd(b_.CreateMul(i, c64(kk)), c64(u)), b_.CreateAdd(qIn, c64(j * V)), inCount(j));
  };
  windowLoops(lo, hi, C, Ho, Wo, chunk);
}

} // namespace soma::codegen
