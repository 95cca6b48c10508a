// Elementwise kernels, reductions, softmax rows, max pooling.
#include "codegen/Emitter.h"

#include <algorithm>
#include <cassert>

namespace soma::codegen {

using namespace ir;
using transforms::Strategy;

// Axes [from, n) as one loop: each tensor of the root's shape is at (outer offset) * run + t.
void FunctionEmitter::trailingFlat(const Kernel &k, llvm::Value *lo, llvm::Value *hi, size_t from) {
  const Shape &shape = f_.nodes[k.root].shape;
  Shape outer(shape.begin(), shape.begin() + static_cast<std::ptrdiff_t>(from));
  int64_t run = numElements(Shape(shape.begin() + static_cast<std::ptrdiff_t>(from), shape.end()), 1);
  loop(lo, hi, [&](llvm::Value *i) {
    std::vector<llvm::Value *> idx{i};
    loopNest(outer, 1, idx, [&] {
      loop(b_.getInt64(0), b_.getInt64(run), [&](llvm::Value *t) {
        std::vector<llvm::Value *> full = idx;
        full.resize(shape.size(), t); // read only through offset(), which uses t
        trailing_ = {shape, from, run, t};
        storeRoots(k, full);
        trailing_ = {};
      });
    });
  });
}

void FunctionEmitter::flatElementwise(const Kernel &k, llvm::Value *lo, llvm::Value *hi) {
  const Shape &shape = f_.nodes[k.root].shape;
  int64_t row = numElements(shape, 1) / (shape[0] == kBatch ? 1 : shape[0]);
  loop(lo, hi, [&](llvm::Value *i) {
    loop(b_.getInt64(0), b_.getInt64(row), [&](llvm::Value *t) {
      flatOffset_ = b_.CreateAdd(b_.CreateMul(i, b_.getInt64(row)), t);
      std::vector<llvm::Value *> idx(shape.size(), t); // unused: every load is at flatOffset_
      storeRoots(k, idx);
      flatOffset_ = nullptr;
    });
  });
}

// As flatElementwise, but some tensor is read through an index map: the row's index is taken
// apart from its offset (divisions by constants), the tensors at the root's own index are read at
// the offset (contiguous), the others at their index (gathered when the loop is vectorized).
void FunctionEmitter::gatherElementwise(const Kernel &k, llvm::Value *lo, llvm::Value *hi) {
  const Shape &shape = f_.nodes[k.root].shape;
  int64_t row = numElements(shape, 1) / (shape[0] == kBatch ? 1 : shape[0]);
  loop(lo, hi, [&](llvm::Value *i) {
    loop(b_.getInt64(0), b_.getInt64(row), [&](llvm::Value *t) {
      std::vector<llvm::Value *> idx(shape.size());
      idx[0] = i;
      llvm::Value *rest = t;
      for (size_t a = shape.size() - 1; a >= 1; --a) {
        llvm::Value *d = b_.getInt64(shape[a]);
        idx[a] = a == 1 ? rest : b_.CreateURem(rest, d);
        if (a > 1)
          rest = b_.CreateUDiv(rest, d);
      }
      gather_ = {shape, idx, b_.CreateAdd(b_.CreateMul(i, b_.getInt64(row)), t)};
      storeRoots(k, idx);
      gather_ = {};
    });
  });
}

// out[o] = sum (or max) over the reduced axes of x[o + r], x's tree inlined.
// Output rows [lo, hi) (the whole output when it is a scalar); each output element is summed in
// the same order whichever thread computes it.
void FunctionEmitter::emitReduce(const Kernel &k, llvm::Value *lo, llvm::Value *hi) {
  const Node &root = f_.nodes[k.root];
  int x = root.operands[0];
  const Shape &xs = f_.nodes[x].shape;
  bool isMax = root.op == Op::ReduceMax;
  // reduce.runs: x's last axes, all reduced, are one contiguous run per index of the others
  // (bias gradients: [B, C, H, W] over B, H, W; layernorm's statistics: [B, n] over n).
  // reduce.trailing: the same run of an inlined tree that reads its tensors at x's own index or
  // broadcasts them over the run (batchnorm's gradients: sums over B, H, W of dy (x - mean) / std).
  // Both run on vectors along the run, into kAccumulators vectors of partial sums (independent
  // chains, to hide the adder's latency), added across at the end.
  bool alongRun = plan_->strategy == Strategy::ReduceRuns || plan_->strategy == Strategy::ReduceTrailing;
  size_t run = alongRun ? plan_->from : xs.size();
  int64_t runLength = 1, vl = lanes();
  for (size_t i = run; i < xs.size(); ++i)
    runLength *= xs[i];
  Shape reduced;
  for (size_t i = 0; i < run; ++i)
    if (root.attrs.axes >> i & 1)
      reduced.push_back(xs[i]);
  llvm::Value *identity = isMax ? llvm::ConstantFP::getInfinity(f32_, true) : llvm::ConstantFP::get(f32_, 0.0);
  auto combine = [&](llvm::Value *a, llvm::Value *v) {
    return isMax ? b_.CreateSelect(b_.CreateFCmpOGT(v, a), v, a) : b_.CreateFAdd(a, v);
  };
  constexpr int64_t kAccumulators = 4;
  int64_t accs = std::clamp<int64_t>(runLength / vl, 1, kAccumulators);
  llvm::AllocaInst *acc = entryAlloca(f32_, nullptr, "acc");
  llvm::AllocaInst *vacc = entryAlloca(llvm::ArrayType::get(vecTy(), accs), nullptr, "vacc"); // registers
  // `count` lanes of x's tree from position t of the run at the outer index idx.
  auto runVector = [&](const std::vector<llvm::Value *> &idx, llvm::Value *t, unsigned count) {
    llvm::Value *v;
    if (plan_->strategy == Strategy::ReduceRuns) {
      v = loadVec(b_.CreateGEP(f32_, b_.CreateGEP(f32_, slotPtr(x), offset(xs, idx)), t), count);
    } else {
      std::vector<llvm::Value *> full = idx;
      full.resize(run);
      full.resize(xs.size(), t); // read only through offset(), which uses t
      trailing_ = {xs, run, runLength, t};
      lane_ = t;
      laneCount_ = count;
      v = expr(x, full);
      lane_ = nullptr;
      trailing_ = {};
    }
    if (count < lanes()) // the lanes past the run hold the identity
      v = b_.CreateSelect(
          mask(firstLanes(count)), v,
          llvm::ConstantVector::getSplat(vecTy()->getElementCount(), llvm::cast<llvm::Constant>(identity)));
    return v;
  };
  auto add = [&](int64_t a, llvm::Value *v) {
    llvm::Value *slot = b_.CreateConstGEP1_64(vecTy(), vacc, a);
    b_.CreateStore(combine(b_.CreateLoad(vecTy(), slot), v), slot);
  };
  std::vector<llvm::Value *> outIdx;
  auto element = [&] {
    if (alongRun)
      for (int64_t a = 0; a < accs; ++a)
        b_.CreateStore(llvm::ConstantVector::getSplat(vecTy()->getElementCount(), llvm::cast<llvm::Constant>(identity)),
                       b_.CreateConstGEP1_64(vecTy(), vacc, a));
    else
      b_.CreateStore(identity, acc);
    std::vector<llvm::Value *> redIdx;
    loopNest(reduced, 0, redIdx, [&] {
      std::vector<llvm::Value *> idx;
      size_t o = 0, r = 0;
      for (size_t i = 0; i < xs.size(); ++i)
        idx.push_back(i >= run ? b_.getInt64(0) : root.attrs.axes >> i & 1 ? redIdx[r++] : outIdx[o++]);
      if (!alongRun) {
        b_.CreateStore(combine(b_.CreateLoad(f32_, acc), expr(x, idx)), acc);
        return;
      }
      int64_t vectors = runLength / vl, groups = vectors / accs;
      loop(
          b_.getInt64(0), b_.getInt64(groups),
          [&](llvm::Value *g) {
            for (int64_t a = 0; a < accs; ++a)
              add(a, runVector(idx,
                               b_.CreateMul(b_.CreateAdd(b_.CreateMul(g, b_.getInt64(accs)), b_.getInt64(a)),
                                            b_.getInt64(vl)),
                               static_cast<unsigned>(vl)));
          },
          true);
      for (int64_t q = groups * accs; q < vectors; ++q)
        add(q % accs, runVector(idx, b_.getInt64(q * vl), static_cast<unsigned>(vl)));
      if (runLength % vl)
        add(vectors % accs, runVector(idx, b_.getInt64(vectors * vl), static_cast<unsigned>(runLength % vl)));
    });
    llvm::Value *result;
    if (alongRun) {
      llvm::Value *v = b_.CreateLoad(vecTy(), b_.CreateConstGEP1_64(vecTy(), vacc, 0));
      for (int64_t a = 1; a < accs; ++a)
        v = combine(v, b_.CreateLoad(vecTy(), b_.CreateConstGEP1_64(vecTy(), vacc, a)));
      result = isMax ? b_.CreateFPMaxReduce(v) : b_.CreateFAddReduce(llvm::ConstantFP::get(f32_, 0.0), v);
    } else {
      result = b_.CreateLoad(f32_, acc);
    }
    store(k.root, outIdx, result);
  };
  if (root.shape.empty()) {
    element();
    return;
  }
  loop(lo, hi, [&](llvm::Value *row) {
    outIdx = {row};
    loopNest(root.shape, 1, outIdx, element);
  });
}

// out[o] = sum (or max) over the leading `leading` axes of x[r, o], rows [lo, hi) of out.
void FunctionEmitter::leadingReduce(const Kernel &k, llvm::Value *lo, llvm::Value *hi, size_t leading) {
  const Node &root = f_.nodes[k.root];
  int x = root.operands[0];
  const Shape xs = f_.nodes[x].shape, reduced(xs.begin(), xs.begin() + static_cast<std::ptrdiff_t>(leading));
  bool isMax = root.op == Op::ReduceMax;
  auto eachOut = [&](const std::function<void(std::vector<llvm::Value *> &)> &body) {
    loop(
        lo, hi,
        [&](llvm::Value *row) {
          std::vector<llvm::Value *> idx{row};
          loopNest(root.shape, 1, idx, [&] { body(idx); });
        },
        root.shape.size() > 1); // rolled when another loop is innermost: that one vectorizes
  };
  eachOut([&](std::vector<llvm::Value *> &o) {
    store(k.root, o, isMax ? llvm::ConstantFP::getInfinity(f32_, true) : zero());
  });
  std::vector<llvm::Value *> r;
  loopNest(reduced, 0, r, [&] {
    eachOut([&](std::vector<llvm::Value *> &o) {
      std::vector<llvm::Value *> idx = r;
      idx.insert(idx.end(), o.begin(), o.end());
      llvm::Value *v = expr(x, idx), *a = load(k.root, o);
      store(k.root, o, isMax ? b_.CreateSelect(b_.CreateFCmpOGT(v, a), v, a) : b_.CreateFAdd(a, v));
    });
  });
}

// out[o, j] = sum (or max) over the reduced axes of x[o + r, j], the last axis j kept: each row
// out[o, :] set to the identity, then for each reduced index, in order, the row of x's tree added
// along j (the loop that vectorizes). Rows [lo, hi) of the output's first axis (the output has
// two axes at least); each element sums in the order reduce.nest would.
void FunctionEmitter::columnsReduce(const Kernel &k, llvm::Value *lo, llvm::Value *hi) {
  const Node &root = f_.nodes[k.root];
  int x = root.operands[0];
  const Shape xs = f_.nodes[x].shape;
  bool isMax = root.op == Op::ReduceMax;
  Shape reduced;
  for (size_t i = 0; i < xs.size(); ++i)
    if (root.attrs.axes >> i & 1)
      reduced.push_back(xs[i]);
  // Row o (every output axis but the last), its columns [from, to).
  auto row = [&](const std::vector<llvm::Value *> &o, llvm::Value *from, llvm::Value *to) {
    loop(from, to, [&](llvm::Value *j) {
      std::vector<llvm::Value *> at = o;
      at.push_back(j);
      store(k.root, at, isMax ? llvm::ConstantFP::getInfinity(f32_, true) : zero());
    });
    std::vector<llvm::Value *> r;
    loopNest(reduced, 0, r, [&] {
      loop(from, to, [&](llvm::Value *j) {
        std::vector<llvm::Value *> idx, at = o;
        at.push_back(j);
        size_t oi = 0, ri = 0;
        for (size_t i = 0; i < xs.size(); ++i)
          idx.push_back(root.attrs.axes >> i & 1 ? r[ri++] : oi < o.size() ? o[oi++] : j);
        llvm::Value *v = expr(x, idx), *a = load(k.root, at);
        store(k.root, at, isMax ? b_.CreateSelect(b_.CreateFCmpOGT(v, a), v, a) : b_.CreateFAdd(a, v));
      });
    });
  };
  llvm::Value *n = b_.getInt64(root.shape.back());
  Shape rows(root.shape.begin(), root.shape.end() - 1);
  loop(
      lo, hi,
      [&](llvm::Value *first) {
        std::vector<llvm::Value *> o{first};
        loopNest(rows, 1, o, [&] { row(o, b_.getInt64(0), n); });
      },
      true); // the loop along the row is the one to vectorize
}

// softmax_xent and its gradient, a row of K classes at a time (rows [lo, hi) of the first axis):
// the row's maximum; the sums of exp(z - max), of the targets and of t (z - max); then the loss,
// T log S - sum t (z - max), or each class's gradient, g (exp(z - max) T / S - t).
void FunctionEmitter::emitRow(const Kernel &k, llvm::Value *lo, llvm::Value *hi) {
  const Node &root = f_.nodes[k.root];
  int z = root.operands[0], t = root.operands[1];
  const Shape &zs = f_.nodes[z].shape;
  Shape rows(zs.begin(), zs.end() - 1);
  llvm::Value *classes = b_.getInt64(zs.back());
  llvm::AllocaInst *maxAcc = entryAlloca(f32_, nullptr, "max"), *expSum = entryAlloca(f32_, nullptr, "expsum"),
                   *targetSum = entryAlloca(f32_, nullptr, "targets"), *dot = entryAlloca(f32_, nullptr, "dot");
  auto add = [&](llvm::AllocaInst *acc, llvm::Value *v) {
    b_.CreateStore(b_.CreateFAdd(b_.CreateLoad(f32_, acc), v), acc);
  };
  std::vector<llvm::Value *> idx;
  auto at = [&](int v, llvm::Value *c) { // z or t at (row, c)
    std::vector<llvm::Value *> i = idx;
    i.push_back(c);
    return expr(v, i);
  };
  auto row = [&] {
    b_.CreateStore(llvm::ConstantFP::getInfinity(f32_, true), maxAcc);
    loop(b_.getInt64(0), classes, [&](llvm::Value *c) {
      llvm::Value *v = at(z, c), *m = b_.CreateLoad(f32_, maxAcc);
      b_.CreateStore(b_.CreateSelect(b_.CreateFCmpOGT(v, m), v, m), maxAcc);
    });
    llvm::Value *m = b_.CreateLoad(f32_, maxAcc);
    for (llvm::AllocaInst *acc : {expSum, targetSum, dot})
      b_.CreateStore(zero(), acc);
    loop(b_.getInt64(0), classes, [&](llvm::Value *c) {
      llvm::Value *shifted = b_.CreateFSub(at(z, c), m), *target = at(t, c);
      add(expSum, callMath("expf", shifted));
      add(targetSum, target);
      if (root.op == Op::SoftmaxXent)
        add(dot, b_.CreateFMul(target, shifted));
    });
    llvm::Value *sum = b_.CreateLoad(f32_, expSum), *targets = b_.CreateLoad(f32_, targetSum);
    if (root.op == Op::SoftmaxXent) {
      store(k.root, idx, b_.CreateFSub(b_.CreateFMul(targets, callMath("logf", sum)), b_.CreateLoad(f32_, dot)));
      return;
    }
    llvm::Value *scale = b_.CreateFDiv(targets, sum), *g = expr(root.operands[2], idx);
    loop(b_.getInt64(0), classes, [&](llvm::Value *c) {
      llvm::Value *p = b_.CreateFMul(callMath("expf", b_.CreateFSub(at(z, c), m)), scale);
      std::vector<llvm::Value *> out = idx;
      out.push_back(c);
      store(k.root, out, b_.CreateFMul(g, b_.CreateFSub(p, at(t, c))));
    });
  };
  if (rows.empty()) {
    row();
    return;
  }
  loop(lo, hi, [&](llvm::Value *r) {
    idx = {r};
    loopNest(rows, 1, idx, row);
  });
}

} // namespace soma::codegen
