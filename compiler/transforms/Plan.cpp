// The planner: one strategy, tile and work split per kernel (Plan.h). Every tuning threshold is
// named once below, with why it is what it is.
#include "transforms/Plan.h"

#include <fmt/format.h>

#include <algorithm>
#include <cassert>
#include <cmath>
#include <functional>
#include <ostream>

namespace soma::transforms {

using namespace ir;

namespace {

// Elementwise rows whose last axis is shorter than this many vectors are run as one flat loop
// (elementwise.flat, .trailing): the nested loops' innermost trip would not fill vectors.
constexpr int64_t kShortRowVectors = 4;
// A flattened run must fill at least this many vectors to be worth its own loop (batchnorm over
// 4x4 images of 16 lanes: one vector a run, against 4-wide rows of scalar code).
constexpr int64_t kRunVectors = 1;
// reduce.columns takes a kept last axis of at least this many elements: a vector of 4 (SSE's
// width) is the least the loop along it fills; shorter rows sum one element at a time.
constexpr int64_t kMinColumns = 4;
// "Narrow rows": a row fills less than three quarters of its vectors, so that putting channels or
// filters in the lanes (the *-lanes strategies) wastes fewer lanes than vectors along the row.
constexpr int64_t kFillNum = 3, kFillDen = 4;
// The most floats a kernel keeps in one stack buffer (packed weights, a transposed image, sums):
// 64 KB, inside the stack of any thread and about the size of L2's share per tile.
constexpr int64_t kStackFloats = 16384;
// conv.channel-lanes keeps a row of Q positions plus Kw taps of input in registers.
constexpr int64_t kChannelLanesMaxRow = 32;
// A strided convolution's channels (or filters) go in the lanes at wide rows only when each
// output (each filter's position) sums at least this many products, its input channels times
// taps: for the stores of its vectors of sums (for the filter gradient, the turn of y).
constexpr int64_t kMinLaneProducts = 64;
// matmul.tiled: rows per tile (6 rows x 4 vectors: 24 sums, 10 loads per 24 multiply-adds, the
// shape of BLIS's AVX-512 micro-kernel; with AVX2's 16 registers, 6 x 2); matmul.dot: up to 4 x 4
// dot products (AVX2: 3 x 3), their sums and a vector of each operand row in registers.
constexpr int64_t kTiledRows = 6, kMaxTileVectors = 4, kMaxDotTile = 4;
// matmul.tiled splits its columns in groups of 8 vectors when they divide evenly, so that a batch
// of one still splits over the threads; a lone row takes tiles of up to 8 vectors, so that 8
// independent accumulations hide the multiply-add's latency.
constexpr int64_t kGroupVectors = 8, kSingleRowVectors = 8;
// Epilogue buffers larger than this together do not stay in L2 (about 1 MB a core) from one step
// to the next (an optimizer's state): matmul.tiled prefetches them.
constexpr int64_t kPrefetchBytes = int64_t{1} << 20;
// matmul.packed: each packed block of B holds this many bytes (KC x columns floats), so that it
// stays in L1 (32 KB or more) while every tile of the chunk multiplies it...
constexpr int64_t kPackedBlockBytes = int64_t{32} << 10;
// ...and a work item is a chunk of up to this many tiles of rows: B is packed once per chunk, the
// chunk's sums (kept across blocks of k) fill a stack buffer of chunk rows x columns. Chunks are
// smaller when there would be fewer than kMinItems work items at the plan's batch (the threads
// need some to share); a chunk of one tile would read its block of B once to pack it, no better
// than matmul.tiled reading it in place, so such products stay tiled.
constexpr int64_t kChunkTiles = 8, kMinItems = 16;
// conv.rows and conv-data.rows: blocks of at most this many output channels.
constexpr int64_t kMaxChannelBlock = 8;

int64_t ceilDiv(int64_t a, int64_t b) { return (a + b - 1) / b; }

// A tensor's elements from axis `from` on, as a count.
Count elements(const Shape &s, size_t from = 0) {
  Count c;
  for (size_t i = from; i < s.size(); ++i) {
    if (s[i] == kBatch)
      ++c.batchPower;
    else
      c.factor *= s[i];
  }
  return c;
}
Count extent(int64_t d) { return d == kBatch ? Count{1, 1} : Count{d}; }
Count times(Count c, int64_t k) {
  c.factor *= k;
  return c;
}
Count times(Count c, const Count &d) {
  c.factor *= d.factor;
  c.batchPower += d.batchPower;
  return c;
}

// Whether node v reads tensors of `shape` at the root's index, and the others not along axes from
// `from` on (a broadcast over all of them); with `from` npos, no broadcast at all. `product`, when
// set, is read like a buffer (the product whose epilogue v is).
bool alongTrailing(const Function &f, const Schedule &s, int v, const Shape &shape, size_t from, bool isRoot,
                   int product = -1) {
  const Node &n = f.nodes[v];
  if (v == product)
    return true;
  if (n.shape.empty())
    return true;
  if (n.shape != shape)
    return false;
  if (!isRoot && s.materialized[v])
    return true;
  if (n.op == Op::Broadcast) {
    if (from >= shape.size()) // no broadcast allowed
      return false;
    for (size_t i = from; i < shape.size(); ++i)
      if (!(n.attrs.axes >> i & 1))
        return false;
    return true;
  }
  if (opIndexing(n.op) != OpIndexing::Pointwise)
    return false;
  return std::all_of(n.operands.begin(), n.operands.end(),
                     [&](int o) { return alongTrailing(f, s, o, shape, from, false, product); });
}

int64_t rowLanes(int64_t width, int64_t vl) { return ceilDiv(width, vl) * vl; }
bool narrow(int64_t width, int64_t vl) { return kFillDen * width < kFillNum * rowLanes(width, vl); }

// Output channels in the lanes (of y, or of dx for a data gradient): when they fill whole vectors
// and the rows are narrow, with a vector of channels' weights small enough to pack on the stack
// (the input channels' taps times the lanes), and the input columns a row of outputs spans (at the
// stride; a data gradient's dy dilated by it) few enough to unroll. A strided one takes it with
// up to four times the packed weights: its only other way, over phases, multiplies 16 taps for 9
// at stride 2 (256 KB of weights stay far inside a thread's stack of 2 MB or more; the data
// gradient of 256 filters, 3 x 3: 2.9 ms over phases, 1.2 in the lanes). It takes it at
// wide rows too (in blocks of columns whose sums fit in the registers with a row of weights),
// when each vector of sums holds kMinLaneProducts multiply-adds per lane it stores (a 3-channel
// image's 27 products per output did not pay for a scatter of each vector: its first layer, 3 x 3
// at stride 2 on 32 x 32 images, ran at 61 GFLOP/s in the lanes against 190 over phases, measured
// before the results were stored by squares).
bool convChannelLanes(const Function &f, const Node &n, const Machine &m) {
  const Shape &os = n.shape, &ws = f.nodes[n.operands[1]].shape;
  int64_t O = os[1], Q = os[3], inputs = n.op == Op::Conv2D ? ws[1] : ws[0], vl = m.lanes;
  if (O % vl != 0 || n.attrs.conv.dilated())
    return false;
  if (n.attrs.conv.stride != 1)
    return (narrow(Q, vl) || inputs * ws[2] * ws[3] >= kMinLaneProducts) &&
           inputs * ws[2] * ws[3] * vl <= 4 * kStackFloats;
  return narrow(Q, vl) && Q + ws[3] <= kChannelLanesMaxRow && inputs * ws[2] * ws[3] * vl <= kStackFloats;
}

// A filter gradient with the filters in the lanes: whole vectors of them, and y's rows narrow,
// with a sample's y small enough for the stack (the sums are kept a pass of items at a time).
// A strided one takes it at wide rows too, when each filter sums kMinLaneProducts products per
// position (its channels times taps), for the turn of each sample's y (a 3-channel stem's 27 do
// not: 73 GFLOP/s in the lanes against 95 over phases on S1's first layer).
bool convFilterLanesBack(const Function &f, const Node &n, int64_t vl) {
  const Shape &ys = f.nodes[n.operands[1]].shape;
  int64_t F = n.shape[0];
  bool wide = n.attrs.conv.stride != 1 && n.shape[1] * n.shape[2] * n.shape[3] >= kMinLaneProducts;
  return F % vl == 0 && !n.attrs.conv.dilated() && (narrow(ys[3], vl) || wide) && F * ys[2] * ys[3] <= kStackFloats &&
         n.shape[3] * vl <= kStackFloats;
}

} // namespace

bool stridedKernel(const Function &f, int conv, const Machine &m) {
  const Node &n = f.nodes[conv];
  const Shape &ws = n.op == Op::Conv2DBackFilter ? n.shape : f.nodes[n.operands[1]].shape;
  if (depthwiseConv(f, conv))
    return true;
  if (ws[2] * ws[3] > kMaxRowTaps || n.attrs.conv.groups != 1)
    return false;
  switch (n.op) {
  case Op::Conv2D:
  case Op::Conv2DBackData:
    return convChannelLanes(f, n, m);
  case Op::Conv2DBackFilter:
    return convFilterLanesBack(f, n, m.lanes);
  default:
    return false;
  }
}

namespace {

class Planner {
public:
  Planner(const Function &f, const Schedule &s, const Machine &m, int64_t batch)
      : f_(f), s_(s), m_(m), vl_(m.lanes), batch_(batch) {}

  KernelPlan plan(const Kernel &k) {
    KernelPlan p;
    p.lanes = vl_;
    p.epilogue = k.product >= 0 && k.product != k.root;
    const Shape &shape = f_.nodes[k.root].shape;
    p.items = shape.empty() ? Count{} : extent(shape[0]);
    p.work = elements(shape);
    switch (k.kind) {
    case Kernel::Kind::Elementwise:
      elementwise(k, p);
      break;
    case Kernel::Kind::Reduce:
      reduce(k, p);
      break;
    case Kernel::Kind::Row: { // maximum, exponential and sum, then the result: about 4 per element of z
      p.strategy = Strategy::SoftmaxRows;
      p.work = times(elements(f_.nodes[f_.nodes[k.root].operands[0]].shape), 4);
      break;
    }
    case Kernel::Kind::Window: { // work: a comparison or sum per tap of each window (max gradient: mask, count, share)
      int pool = k.product >= 0 ? k.product : k.root;
      const Node &n = f_.nodes[pool];
      const Pool2D &w = n.attrs.pool;
      bool back = n.op == Op::MaxPool2DBack || n.op == Op::AvgPool2DBack;
      p.strategy = poolOnLanes(f_, pool) ? Strategy::PoolLanes : back ? Strategy::PoolBackRows : Strategy::PoolRows;
      p.vectorEpilogue = k.root != pool && vectorEpilogue(k);
      Count windows = elements(back ? f_.nodes[n.operands.back()].shape : n.shape);
      p.work = times(windows, w.kernel[0] * w.kernel[1] * (n.op == Op::MaxPool2D || n.op == Op::AvgPool2D ? 1 : 3));
      break;
    }
    case Kernel::Kind::MatMul:
      matmul(k, p);
      break;
    case Kernel::Kind::Conv:
      conv(k, p);
      break;
    case Kernel::Kind::Loop: { // the step function runs it; its body's kernels share the threads
      const LoopAttrs &la = f_.nodes[k.root].attrs.loop;
      size_t b = static_cast<size_t>(la.body);
      p.strategy = Strategy::LoopSteps;
      p.steps = la.steps;
      p.items = Count{};
      p.work = Count{la.steps};
      p.body = planKernels(f_.bodies[b], s_.bodies[b], m_, batch_);
      break;
    }
    }
    return p;
  }

private:
  // ---- elementwise and reductions ----

  void elementwise(const Kernel &k, KernelPlan &p) const {
    const Shape &shape = f_.nodes[k.root].shape;
    if (shape.empty())
      p.strategy = Strategy::Scalar;
    else if (flattens(k))
      p.strategy = Strategy::Flat;
    else if (size_t from = trailingFrom(k)) {
      p.strategy = Strategy::Trailing;
      p.from = from;
    } else if (shortRows(shape) && vectorMath(k))
      p.strategy = Strategy::Gather;
    else
      p.strategy = Strategy::Nest;
  }

  bool sameIndex(int v, const Shape &shape) const { return alongTrailing(f_, s_, v, shape, std::string::npos, true); }

  // Rows of images or pooling windows ([B, 6, 28, 28], [B, 6, 14, 2, 14, 2]), or of filters
  // ([128, 64, 3, 3]): too short for vectors along the last axis alone, every axis but the first
  // of a fixed size.
  bool shortRows(const Shape &shape) const {
    return shape.size() >= 3 && shape.back() < kShortRowVectors * vl_ &&
           std::none_of(shape.begin() + 1, shape.end(), [](int64_t d) { return d == kBatch; });
  }

  // Whether the kernel computes a division, a square root or a transcendental function: costly
  // enough that running it on vectors pays for gathering the tensors read through index maps (an
  // optimizer's update of a 3 x 3 filter whose gradient comes from a strided convolution's phases:
  // 3x faster). Moves alone (phases, padding, a step) are no faster gathered: they stay nested.
  bool vectorMath(const Kernel &k) const {
    std::vector<bool> seen(f_.nodes.size());
    std::function<bool(int)> costly = [&](int v) {
      if (seen[static_cast<size_t>(v)])
        return false;
      seen[static_cast<size_t>(v)] = true;
      const Node &n = f_.nodes[v];
      if (n.op == Op::Div || n.op == Op::Sqrt || n.op == Op::Exp || n.op == Op::Expm1 || n.op == Op::Log ||
          n.op == Op::Log1p || n.op == Op::Erf || n.op == Op::Erfc || n.op == Op::Sigmoid || n.op == Op::Tanh)
        return true;
      return std::any_of(n.operands.begin(), n.operands.end(),
                         [&](int o) { return !s_.materialized[static_cast<size_t>(o)] && costly(o); });
    };
    return costly(k.root) || std::any_of(k.alsoRoots.begin(), k.alsoRoots.end(), costly);
  }

  // An elementwise kernel of short rows that reads every tensor at its own index.
  bool flattens(const Kernel &k) const {
    const Shape &shape = f_.nodes[k.root].shape;
    if (!shortRows(shape))
      return false;
    return sameIndex(k.root, shape) &&
           std::all_of(k.alsoRoots.begin(), k.alsoRoots.end(), [&](int r) { return sameIndex(r, shape); });
  }

  // The first of the trailing axes along which every tensor of the kernel is either read at the
  // root's own index or not at all (a broadcast over all of them: batchnorm's per-channel
  // statistics over [B, C, H, W]), when those axes are short and together long enough; 0 if none.
  size_t trailingFrom(const Kernel &k) const {
    const Shape &shape = f_.nodes[k.root].shape;
    if (shape.size() < 3 || shape.back() >= kShortRowVectors * vl_)
      return 0;
    for (size_t from = 1; from + 1 < shape.size(); ++from) {
      int64_t run = 1;
      bool fixed = true;
      for (size_t i = from; i < shape.size(); ++i) {
        fixed &= shape[i] != kBatch;
        run *= shape[i];
      }
      if (!fixed || run < kRunVectors * vl_)
        break;
      auto ok = [&](int r) { return alongTrailing(f_, s_, r, shape, from, true); };
      if (ok(k.root) && std::all_of(k.alsoRoots.begin(), k.alsoRoots.end(), ok))
        return from;
    }
    return 0;
  }

  void reduce(const Kernel &k, KernelPlan &p) const {
    const Node &root = f_.nodes[k.root];
    int x = root.operands[0];
    const Shape &xs = f_.nodes[x].shape;
    p.work = elements(xs);
    // Leading axes reduced, trailing axes kept (a bias gradient of a dense layer: [B, n] over B).
    size_t leading = 0;
    while (leading < xs.size() && (root.attrs.axes >> leading & 1))
      ++leading;
    if (!root.shape.empty() && leading > 0 && root.attrs.axes == (1u << leading) - 1) {
      p.strategy = Strategy::ReduceLeading;
      p.from = leading;
      return;
    }
    // The last axis kept: rows along it accumulated over the reduced axes (a loop that vectorizes),
    // rather than one element at a time.
    // (An output [n] has all other axes reduced, a prefix: reduce.leading's.)
    if (root.shape.size() >= 2 && !(root.attrs.axes >> (xs.size() - 1) & 1) && xs.back() != kBatch &&
        xs.back() >= kMinColumns) {
      p.strategy = Strategy::ReduceColumns;
      return;
    }
    // The last axes, all reduced and of static extent: one run per index of the others, long
    // enough to fill a vector, read on vectors along it.
    size_t run = xs.size();
    while (run > 0 && (root.attrs.axes >> (run - 1) & 1) && xs[run - 1] != kBatch)
      --run;
    int64_t runLength = 1;
    for (size_t i = run; i < xs.size(); ++i)
      runLength *= xs[i];
    p.from = run;
    if (run < xs.size() && runLength >= kRunVectors * vl_ &&
        s_.materialized[x]) // a buffer's contiguous runs (bias gradients)
      p.strategy = Strategy::ReduceRuns;
    else if (run < xs.size() && runLength >= kRunVectors * vl_ && alongTrailing(f_, s_, x, xs, run, true) &&
             onVectors(x, -1, true))
      p.strategy = Strategy::ReduceTrailing; // batchnorm's gradients: sums over B, H, W of dy (x - mean) / std
    else {
      p.strategy = Strategy::ReduceNest;
      p.from = 0;
    }
  }

  // ---- epilogues ----

  // Whether the tree of v (down to materialized values and `product`) can be computed on vectors:
  // elementwise math at its own index, broadcasts, fills and buffers; no other index map, no
  // random numbers, no constant arrays.
  bool onVectors(int v, int product, bool isRoot) const {
    if (v == product || (!isRoot && s_.materialized[v]))
      return true;
    const Node &n = f_.nodes[v];
    switch (opKind(n.op)) {
    case OpKind::Leaf:
      return n.op == Op::Fill;
    case OpKind::Elementwise:
      if (opIsIndexMap(n.op) && n.op != Op::Broadcast)
        return false;
      if (n.op == Op::Random)
        return false;
      return std::all_of(n.operands.begin(), n.operands.end(), [&](int o) { return onVectors(o, product, false); });
    default:
      return false;
    }
  }

  // Whether the epilogue of kernel k can run on vectors of its product's results.
  bool vectorEpilogue(const Kernel &k) const {
    return onVectors(k.root, k.product, true) &&
           std::all_of(k.alsoRoots.begin(), k.alsoRoots.end(), [&](int r) { return onVectors(r, k.product, true); });
  }

  // The buffers an epilogue reads or writes at the product's own index (the weights and the
  // optimizer's state of a fused update, a bias-free residual, ...), each once by slot.
  std::vector<int> epilogueBuffers(const Kernel &k) const {
    const Shape &shape = f_.nodes[k.product].shape;
    std::vector<int> out;
    std::vector<bool> seen(f_.nodes.size());
    auto add = [&](int v) {
      if (f_.nodes[v].shape == shape && s_.slot[v] >= 0 &&
          std::none_of(out.begin(), out.end(), [&](int o) { return s_.slot[o] == s_.slot[v]; }))
        out.push_back(v);
    };
    std::function<void(int, bool)> walk = [&](int v, bool isRoot) {
      if (v == k.product || seen[static_cast<size_t>(v)])
        return;
      seen[static_cast<size_t>(v)] = true;
      if (!isRoot && s_.materialized[v])
        return add(v);
      for (int o : f_.nodes[v].operands)
        walk(o, false);
    };
    for (int r : k.alsoRoots)
      walk(r, true), add(r);
    walk(k.root, true);
    add(k.root);
    return out;
  }

  // ---- matrix products ----

  void matmul(const Kernel &k, KernelPlan &p) const {
    const Node &mm = f_.nodes[k.product];
    const Shape &as = f_.nodes[mm.operands[0]].shape;
    bool ta = mm.attrs.transA, tb = mm.attrs.transB;
    // Operands of more axes are rows of their last ([B, T, k]: B*T rows, as ShapeRules); m and kk
    // are kBatch when they hold the batch axis, their static factor then in rowsM and rowsK.
    auto rows = [](const Shape &s) { return elements(Shape(s.begin(), s.end() - 1)); };
    Count rowsM = rows(mm.shape), rowsK = ta ? rows(as) : extent(as.back());
    int64_t n = mm.shape.back();
    auto single = [&](const Count &c) { return c.batchPower ? kBatch : c.factor; };
    int64_t m = single(rowsM), kk = single(rowsK);
    p.work = times(times(rowsM, extent(n)), rowsK);
    p.flopsPerUnit = 2;
    bool tiled = n != kBatch && !tb, dot = n != kBatch && tb && !ta && kk != kBatch;
    int64_t columns = tileColumns(n, !k.alsoRoots.empty());
    int64_t chunk = std::min(kChunkTiles, ceilDiv(n, columns) *
                                              ceilDiv(static_cast<int64_t>(rowsM.at(batch_)), kTiledRows) / kMinItems);
    // An op(B) larger than L2 would be read again from L3 or memory by every tile of rows (one that
    // fits is read in place faster: measured with B 784 x 256, 800 KB, and a 1 MB L2); it is packed
    // instead, a panel of columns at a time, and reused by every row of a chunk.
    if ((tiled || dot) && n >= vl_ && static_cast<int64_t>(rowsK.at(batch_)) * n * 4 > m_.l2Bytes && chunk >= 2) {
      p.strategy = Strategy::MatMulPacked;
      p.rows = kTiledRows;
      p.columns = columns;
      p.depth = std::max<int64_t>(1, kPackedBlockBytes / (4 * p.columns));
      p.pass = chunk;
      tileEpilogue(k, p, m, n);
      p.items = rowsM;
      p.items.divisor = kTiledRows * chunk;
      p.items.times = ceilDiv(n, p.columns);
    } else if (tiled) {
      p.strategy = Strategy::MatMulTiled;
      p.rows = kTiledRows;
      p.columns = columns;
      p.singleRow = std::min(ceilDiv(n, vl_), kSingleRowVectors) * vl_;
      p.groups = n % (kGroupVectors * vl_) == 0 ? n / (kGroupVectors * vl_) : 1;
      tileEpilogue(k, p, m, n);
      p.items = rowsM;
      p.items.divisor = kTiledRows;
      p.items.times = p.groups;
    } else if (dot) {
      p.strategy = Strategy::MatMulDot;
      dotTile(p);
      p.items = rowsM;
      p.items.divisor = p.rows;
    } else {
      p.strategy = Strategy::MatMulLoops;
      p.items = rowsM;
    }
  }

  // A register tile's epilogue (matmul.tiled, .packed): on the tile's vectors when it can be, and
  // then an optimizer's state beyond L2 (a static number of rows m) fetched ahead.
  void tileEpilogue(const Kernel &k, KernelPlan &p, int64_t m, int64_t n) const {
    p.vectorEpilogue = vectorEpilogue(k);
    if (p.vectorEpilogue && m != kBatch) {
      p.prefetch = epilogueBuffers(k);
      if (static_cast<int64_t>(p.prefetch.size()) * m * n * 4 < kPrefetchBytes)
        p.prefetch.clear();
    }
  }

  // The columns of a register tile of kTiledRows rows: the most vectors of them (up to four)
  // whose sums, a row of B and a broadcast of A fit in the registers; at most two when an
  // optimizer's update in the epilogue needs registers too (four spilled there).
  int64_t tileColumns(int64_t n, bool update) const {
    int64_t vectors = kMaxTileVectors;
    while (vectors > 1 && kTiledRows * vectors + vectors + 1 > m_.registers)
      vectors /= 2;
    if (update)
      vectors = std::min<int64_t>(vectors, 2);
    return n >= vectors * vl_ ? vectors * vl_ : n > vl_ ? std::min<int64_t>(vectors, 2) * vl_ : vl_;
  }

  // The largest tile of r x c dot products (r >= c) whose sums fit in the registers with a vector
  // of each of its rows of A and of B.
  void dotTile(KernelPlan &p) const {
    p.rows = p.columns = 1;
    for (int64_t r = 1; r <= kMaxDotTile; ++r)
      for (int64_t c = 1; c <= r; ++c)
        if (r * c + r + c <= registers() && r * c > p.rows * p.columns) {
          p.rows = r;
          p.columns = c;
        }
  }

  // ---- convolutions ----

  // A 1x1 convolution (stride 1, no padding) is a matrix product per sample.
  bool gemm(const Kernel &k, const Node &n, KernelPlan &p) const {
    int cv = k.product >= 0 ? k.product : k.root;
    const Shape &ws = n.op == Op::Conv2DBackFilter ? n.shape : f_.nodes[n.operands[1]].shape;
    if (ws[2] != 1 || ws[3] != 1 || n.attrs.conv.stride != 1 || n.attrs.conv.padding != 0)
      return false;
    if (n.op == Op::Conv2DBackFilter) {
      p.strategy = Strategy::ConvFilterGemm;
      dotTile(p);
      p.pass = std::max<int64_t>(1, kStackFloats / (p.rows * p.columns * vl_));
      p.items = Count{ceilDiv(n.shape[0], p.rows)};
      return true;
    }
    p.strategy = n.op == Op::Conv2D ? Strategy::ConvGemm : Strategy::ConvDataGemm;
    p.rows = kTiledRows;
    p.columns = tileColumns(n.shape[2] * n.shape[3], false);
    p.vectorEpilogue =
        k.root != cv && alongTrailing(f_, s_, k.root, n.shape, 2, true, cv) && onVectors(k.root, cv, true);
    p.items = Count{ceilDiv(n.shape[1], kTiledRows), 1}; // (sample, block of rows)
    return true;
  }

  int64_t rowLanes(int64_t width) const { return transforms::rowLanes(width, vl_); }
  bool narrow(int64_t width) const { return transforms::narrow(width, vl_); }
  int64_t registers() const { return m_.registers - 1; } // one to spare

  void conv(const Kernel &k, KernelPlan &p) const {
    int cv = k.product >= 0 ? k.product : k.root;
    const Node &n = f_.nodes[cv];
    int y = n.op == Op::Conv2D ? cv : n.op == Op::Conv2DBackData ? n.operands[0] : n.operands[1];
    const Shape &ws = n.op == Op::Conv2DBackFilter ? n.shape : f_.nodes[n.operands[1]].shape;
    // every form: one multiply-add per (y element, c, u, v)
    p.work = times(elements(f_.nodes[y].shape), ws[1] * ws[2] * ws[3]);
    p.flopsPerUnit = 2;
    if (depthwiseConv(f_, cv)) { // forward and data gradient: a sample an item; filter gradient: a filter
      p.strategy = n.op == Op::Conv2D           ? Strategy::ConvDepthwise
                   : n.op == Op::Conv2DBackData ? Strategy::ConvDataDepthwise
                                                : Strategy::ConvFilterDepthwise;
      p.vectorEpilogue = k.root != cv && vectorEpilogue(k);
      return;
    }
    if (n.attrs.conv.groups == 1 && gemm(k, n, p))
      return;
    // A strided one has kernels of its own in three strategies (stridedKernel; Phases.h turns the
    // others into stride-1 ones over phases before fusion, so none of them has an epilogue, except
    // dilated ones, which take the loops). A dilated one at stride 1 runs along rows.
    bool strided = n.attrs.conv.stride != 1;
    if (strided ? !stridedKernel(f_, cv, m_) || k.root != cv : !convAlongRows(f_, cv)) {
      p.strategy = Strategy::ConvLoops;
      return;
    }
    if (n.attrs.conv.groups != 1) { // groups of several channels: along rows, a block of channels in one group
      p.strategy = n.op == Op::Conv2D           ? Strategy::ConvRows
                   : n.op == Op::Conv2DBackData ? Strategy::ConvDataRows
                                                : Strategy::ConvFilterRows;
      if (n.op == Op::Conv2DBackFilter) {
        filterBlock(n, p);
        p.pass = samplesPerPass(n, p);
        p.items = Count{n.shape[0] / p.channels};
        return;
      }
      rowBlock(n.shape, n.attrs.conv.groups, p);
      p.vectorEpilogue = k.root != cv && vectorEpilogue(k);
      return;
    }
    switch (n.op) {
    case Op::Conv2D:
      if (channelLanes(n) && (k.root == cv || vectorEpilogue(k))) {
        p.strategy = Strategy::ConvChannelLanes;
        laneBlock(n, ws[3], p);
        p.channels = vl_;
        p.vectorEpilogue = k.root != cv;
        return;
      }
      p.strategy = Strategy::ConvRows;
      rowBlock(n.shape, 1, p);
      p.vectorEpilogue = k.root != cv && vectorEpilogue(k);
      return;
    case Op::Conv2DBackData:
      if (k.root == cv && !strided && filterLanes(n)) {
        p.strategy = Strategy::ConvDataFilterLanes;
        int64_t C = n.shape[1], W = n.shape[3];
        p.columns = std::max<int64_t>(1, std::min(W, vl_ / C));
        return;
      }
      if (k.root == cv && channelLanes(n)) {
        p.strategy = Strategy::ConvDataChannelLanes;
        laneBlock(n, ws[3], p);
        p.channels = vl_;
        return;
      }
      p.strategy = Strategy::ConvDataRows;
      rowBlock(n.shape, 1, p);
      p.vectorEpilogue = k.root != cv && vectorEpilogue(k);
      return;
    case Op::Conv2DBackFilter:
      if (filterLanesBack(n)) {
        p.strategy = Strategy::ConvFilterLanes;
        int64_t Wo = f_.nodes[n.operands[1]].shape[3];
        p.columns = std::clamp<int64_t>(registers() - ws[3] - 1, 1, Wo);
        p.channels = vl_;
        p.items = Count{n.shape[0] / vl_ * n.shape[1] * n.shape[2]};     // a vector of filters, a channel, a filter row
        p.pass = std::min(p.items.factor, kStackFloats / (ws[3] * vl_)); // items whose sums stay on the stack at once
        return;
      }
      p.strategy = alongPlanes(n) ? Strategy::ConvFilterPlanes : Strategy::ConvFilterRows;
      filterBlock(n, p);
      p.pass = samplesPerPass(n, p);
      p.items = Count{n.shape[0] / p.channels}; // the threads get whole blocks of filters
      return;
    default:
      return;
    }
  }

  // conv.channel-lanes, conv-data.channel-lanes: as many output rows as fit in the registers with
  // a row of Kw weights; a row wider than that (a strided one's) in equal blocks of columns.
  void laneBlock(const Node &n, int64_t Kw, KernelPlan &p) const {
    int64_t Q = n.shape[3], R = n.shape[2], fit = std::max<int64_t>(1, registers() - Kw - 1);
    p.columns = Q > fit ? ceilDiv(Q, ceilDiv(Q, fit)) : 0;
    p.rows = std::clamp<int64_t>(fit / (p.columns ? p.columns : Q), 1, R);
  }

  // conv.rows: the block of output channels x rows with the fewest loads per multiply-add whose
  // sums, weights and input vector fit in the registers, its channels in one of the groups.
  void rowBlock(const Shape &os, int64_t groups, KernelPlan &p) const {
    int64_t O = os[1], R = os[2], chunks = ceilDiv(os[3], vl_);
    int64_t fewest = -1;
    p.channels = p.rows = 1;
    for (int64_t o = 1; o <= std::min(O, kMaxChannelBlock); ++o)
      for (int64_t r = 1; r <= R && O / groups % o == 0 && o * r * chunks + o + 1 <= registers(); ++r) {
        int64_t loads = (O / o) * (R * chunks + (R + r - 1) / r * o);
        if (fewest < 0 || loads < fewest) {
          fewest = loads;
          p.channels = o;
          p.rows = r;
        }
      }
  }

  bool channelLanes(const Node &n) const { return convChannelLanes(f_, n, m_); }

  // A data gradient with the filters in the lanes: they fill whole vectors, the channels fit in
  // one, and conv-data.rows' full correlation would multiply padding in more than a quarter of its
  // lanes (LeNet's second layer: a tap meets 10 of the 16 lanes of a 14-wide row).
  bool filterLanes(const Node &n) const {
    const Shape &ys = f_.nodes[n.operands[0]].shape, &ws = f_.nodes[n.operands[1]].shape;
    int64_t F = ws[0], C = ws[1];
    return F % vl_ == 0 && C <= vl_ && !n.attrs.conv.dilated() && kFillDen * ys[3] < kFillNum * rowLanes(n.shape[3]) &&
           F * ys[2] * ys[3] <= kStackFloats && F * C * ws[2] * ws[3] <= kStackFloats;
  }

  bool filterLanesBack(const Node &n) const { return convFilterLanesBack(f_, n, vl_); }

  // A filter gradient along y's whole planes: narrow rows, no padding.
  bool alongPlanes(const Node &n) const {
    return n.attrs.conv.padding == 0 && !n.attrs.conv.dilated() && n.attrs.conv.groups == 1 &&
           narrow(f_.nodes[n.operands[1]].shape[3]);
  }

  // The filter gradient's blocks: fb filters (of one group) by ub filter rows (each of Kw taps) of
  // sums in registers, with fb * chunks vectors of y: the fewest loads per multiply-add, and at
  // least two blocks of filters when there are two filters, so that both threads have work.
  void filterBlock(const Node &n, KernelPlan &p) const {
    const Shape &ws = n.shape, &ys = f_.nodes[n.operands[1]].shape;
    int64_t F = ws[0], Kh = ws[2], Kw = ws[3], chunks = alongPlanes(n) ? 1 : ceilDiv(ys[3], vl_);
    int64_t Fg = F / n.attrs.conv.groups;
    p.channels = p.rows = 1;
    double fewest = -1;
    for (int64_t fb = 1; fb <= Fg; ++fb)
      for (int64_t ub = 1; ub <= Kh && Fg % fb == 0 && (F == 1 || F / fb >= 2); ++ub) {
        if (fb * ub * Kw + fb * chunks + 1 > registers())
          break;
        // Per (sample, output row): fb * chunks loads of y per pass over the ub rows, ub * Kw *
        // chunks of x, for fb * ub * Kw * chunks multiply-adds; Kh / ub passes in all.
        double passes = static_cast<double>((Kh + ub - 1) / ub); // NOLINT(bugprone-integer-division): whole passes
        double loads = passes * static_cast<double>(fb * chunks) + static_cast<double>(Kh * Kw * chunks);
        double perFma = loads / static_cast<double>(fb * Kh * Kw * chunks);
        if (fewest < 0 || perFma < fewest - 1e-9) {
          fewest = perFma;
          p.channels = fb;
          p.rows = ub;
        }
      }
  }

  // conv-filter.rows and .planes: each block of filters reads its samples' y once per input
  // channel and block of filter rows. When the batch's y of a block and x of a channel do not stay
  // in half of L2, the batch is taken in passes of as many samples as do (S10's 32 x 32 images:
  // y read 64 times from memory otherwise); 0: the whole batch in one pass, as when y is read once.
  int64_t samplesPerPass(const Node &n, const KernelPlan &p) const {
    const Shape &ws = n.shape, &xs = f_.nodes[n.operands[0]].shape, &ys = f_.nodes[n.operands[1]].shape;
    int64_t rereads = ws[1] * ceilDiv(ws[2], p.rows);
    int64_t bytes = (p.channels * ys[2] * ys[3] + xs[2] * xs[3]) * 4; // a sample's share
    if (rereads <= 1 || batch_ * bytes <= m_.l2Bytes / 2)
      return 0;
    return std::max<int64_t>(1, m_.l2Bytes / 2 / bytes);
  }

  const Function &f_;
  const Schedule &s_;
  const Machine &m_;
  int64_t vl_;
  int64_t batch_; // where a choice depends on the batch size B: the batch it assumes
};

} // namespace

std::vector<KernelPlan> planKernels(const Function &f, const Schedule &s, const Machine &m, int64_t batch) {
  Planner planner(f, s, m, batch);
  std::vector<KernelPlan> plans;
  for (const Kernel &k : s.kernels) {
    plans.push_back(planner.plan(k));
    assert(strategyKind(plans.back().strategy) == k.kind && "a strategy runs kernels of its own kind");
  }
  return plans;
}

rt::FunctionLayout layout(const Function &f, const Schedule &s, const std::vector<KernelPlan> &plans) {
  rt::FunctionLayout out = slotLayout(f, s);
  for (size_t k = 0; k < s.kernels.size(); ++k) {
    const KernelPlan &p = plans[k];
    const Node &root = f.nodes[static_cast<size_t>(s.kernels[k].root)];
    if (p.strategy == Strategy::LoopSteps) { // the body's arithmetic, every step
      size_t b = static_cast<size_t>(root.attrs.loop.body);
      rt::FunctionLayout body = layout(f.bodies[b], s.bodies[b], p.body);
      double perSample = 0, fixed = 0;
      for (const rt::FunctionLayout::Kernel &bk : body.kernels) {
        perSample += bk.flopsPerSample * static_cast<double>(p.steps);
        fixed += bk.flopsFixed * static_cast<double>(p.steps);
      }
      out.kernels.push_back({strategyName(p.strategy), fmt::format("{} steps", p.steps), perSample, fixed});
      continue;
    }
    double fixed = p.work.at(0) * p.flopsPerUnit;
    out.kernels.push_back(
        {strategyName(p.strategy), formatShape(root.shape), p.work.at(1) * p.flopsPerUnit - fixed, fixed});
  }
  return out;
}

} // namespace soma::transforms
