// 1x1 convolutions as matrix products, per sample: y_b = W x_b (conv.gemm), dx_b = W^T dy_b
// (conv-data.gemm), each with [channels, positions] operands whose rows of positions are
// contiguous, in register tiles of the product's rows by vectors of positions; and
// dW = sum over b of dy_b x_b^T (conv-filter.gemm), tiles of dot products along the positions.
#include "codegen/Emitter.h"

#include <algorithm>
#include <cassert>

namespace soma::codegen {

using namespace ir;

// out_b[i, j] = sum over kk of A[i, kk] in_b[kk, j]: A = w [M, K] (forward) or w^T (`flipped`,
// the data gradient: w is [K, M]); in the input ([B, K, H, W]), out the result ([B, M, H, W]),
// j a position of the H * W plane. Work items are (sample, block of plan rows of out); each block
// runs tiles of plan columns along the plane, the sums in registers over the whole kk loop, then
// stores them or runs the epilogue on them.
void FunctionEmitter::gemmConv(const Kernel &k, int conv, llvm::Value *lo, llvm::Value *hi, bool flipped) {
  const Node &n = f_.nodes[conv];
  int inNode = n.operands[0], wNode = n.operands[1];
  const Shape os = n.shape, is = f_.nodes[inNode].shape;
  int64_t M = os[1], K = is[1], P = os[2] * os[3], W = os[3], vl = lanes();
  int64_t R = plan_->rows, width = plan_->columns, blocks = (M + R - 1) / R;
  auto c64 = [&](int64_t v) { return b_.getInt64(v); };
  llvm::Value *wBase = slotPtr(wNode), *inBase = slotPtr(inNode);
  llvm::AllocaInst *acc = entryAlloca(llvm::ArrayType::get(vecTy(), R * width / vl), nullptr, "acc"); // registers
  llvm::AllocaInst *row = entryAlloca(f32_, c64(vl), "lanes");
  bool vecEpilogue = plan_->vectorEpilogue;
  auto weight = [&](llvm::Value *i, llvm::Value *kk) { // A[i, kk]
    llvm::Value *at = flipped ? b_.CreateAdd(b_.CreateMul(kk, c64(M)), i) : b_.CreateAdd(b_.CreateMul(i, c64(K)), kk);
    return b_.CreateLoad(f32_, b_.CreateGEP(f32_, wBase, at));
  };
  // The tile of rows i0.. (the first `count` real) by columns j0 .. j0 + cols of sample b.
  auto tile = [&](llvm::Value *b, llvm::Value *i0, llvm::Value *count, llvm::Value *j0, int64_t cols) {
    int64_t vectors = (cols + vl - 1) / vl;
    auto lanesOf = [&](int64_t q) { return static_cast<unsigned>(std::min(vl, cols - q * vl)); };
    auto sum = [&](int64_t r, int64_t q) { return b_.CreateConstGEP1_64(vecTy(), acc, r * vectors + q); };
    for (int64_t e = 0; e < R * vectors; ++e)
      b_.CreateStore(llvm::Constant::getNullValue(vecTy()), b_.CreateConstGEP1_64(vecTy(), acc, e));
    std::vector<llvm::Value *> rowIndex;
    for (int64_t r = 0; r < R; ++r)
      rowIndex.push_back(clampRow(i0, r, count));
    llvm::Value *in = b_.CreateGEP(f32_, inBase, b_.CreateMul(b, c64(K * P)));
    loop(
        c64(0), c64(K),
        [&](llvm::Value *kk) {
          std::vector<llvm::Value *> bv;
          for (int64_t q = 0; q < vectors; ++q)
            bv.push_back(
                loadVec(b_.CreateGEP(f32_, in, b_.CreateAdd(b_.CreateMul(kk, c64(P)), b_.CreateAdd(j0, c64(q * vl)))),
                        lanesOf(q)));
          for (int64_t r = 0; r < R; ++r) {
            llvm::Value *av =
                b_.CreateVectorSplat(static_cast<unsigned>(vl), weight(rowIndex[static_cast<size_t>(r)], kk));
            for (int64_t q = 0; q < vectors; ++q)
              b_.CreateStore(fma(av, bv[static_cast<size_t>(q)], b_.CreateLoad(vecTy(), sum(r, q))), sum(r, q));
          }
        },
        true);
    for (int64_t r = 0; r < R; ++r) // the rows that are real
      ifRealRow(r, count, [&] {
        llvm::Value *i = rowIndex[static_cast<size_t>(r)];
        for (int64_t q = 0; q < vectors; ++q) {
          llvm::Value *j = b_.CreateAdd(j0, c64(q * vl)), *value = b_.CreateLoad(vecTy(), sum(r, q));
          if (k.root == conv) {
            storeVec(value, b_.CreateGEP(f32_, imageRow(conv, b, i, c64(0)), j), lanesOf(q));
          } else if (vecEpilogue) { // along the plane, as one run of positions
            trailing_ = {os, 2, P, j};
            productEpilogueVec(k, {b, i, j, j}, value, lanesOf(q), 3);
            trailing_ = {};
          } else {
            storeVec(value, row, lanesOf(q));
            for (unsigned l = 0; l < lanesOf(q); ++l) {
              llvm::Value *p = b_.CreateAdd(j, c64(l));
              productEpilogue(k, {b, i, b_.CreateSDiv(p, c64(W)), b_.CreateSRem(p, c64(W))},
                              b_.CreateLoad(f32_, b_.CreateConstGEP1_64(f32_, row, l)));
            }
          }
        }
      });
  };
  loop(
      lo, hi,
      [&](llvm::Value *item) {
        llvm::Value *b = b_.CreateSDiv(item, c64(blocks));
        llvm::Value *i0 = b_.CreateMul(b_.CreateSRem(item, c64(blocks)), c64(R));
        llvm::Value *left = b_.CreateSub(c64(M), i0);
        llvm::Value *count = b_.CreateSelect(b_.CreateICmpSLT(left, c64(R)), left, c64(R));
        if (P / width > 0)
          loop(
              c64(0), c64(P / width), [&](llvm::Value *t) { tile(b, i0, count, b_.CreateMul(t, c64(width)), width); },
              true);
        if (P % width)
          tile(b, i0, count, c64(P - P % width), P % width);
      },
      true);
}

// dW[f, c] = sum over b and the positions p of dy[b, f, p] x[b, c, p]: work items are blocks of
// plan rows of filters; each runs tiles of rows x columns (channels) of dot products along p, a
// vector of partial sums each. A pass of tiles keeps its sums on the stack across the samples
// (each sample's rows of dy and x are read while they are in cache), then adds their lanes.
void FunctionEmitter::gemmBackFilter(const Kernel &k, llvm::Value *lo, llvm::Value *hi) {
  const Node &n = f_.nodes[k.root];
  int xNode = n.operands[0], yNode = n.operands[1];
  const Shape xs = f_.nodes[xNode].shape, ws = n.shape;
  int64_t F = ws[0], C = ws[1], P = xs[2] * xs[3], vl = lanes();
  int64_t R = plan_->rows, cols = plan_->columns, pass = plan_->pass;
  auto c64 = [&](int64_t v) { return b_.getInt64(v); };
  llvm::Value *xBase = slotPtr(xNode), *yBase = slotPtr(yNode), *wBase = slotPtr(k.root);
  llvm::AllocaInst *kept = entryAlloca(vecTy(), c64(pass * R * cols), "kept");
  llvm::AllocaInst *acc = entryAlloca(llvm::ArrayType::get(vecTy(), R * cols), nullptr, "acc"); // registers
  // Tiles [t0, t0 + tiles) of nc columns each (from channel c00), rows f0 .. (the first `count`).
  auto tiles = [&](llvm::Value *f0, llvm::Value *count, int64_t c00, llvm::Value *t0, llvm::Value *tileCount,
                   int64_t nc) {
    auto keptAt = [&](llvm::Value *t, int64_t e) {
      return b_.CreateGEP(vecTy(), kept, b_.CreateAdd(b_.CreateMul(t, c64(R * nc)), c64(e)));
    };
    loop(c64(0), b_.CreateMul(tileCount, c64(R * nc)), [&](llvm::Value *e) {
      b_.CreateStore(llvm::Constant::getNullValue(vecTy()), b_.CreateGEP(vecTy(), kept, e));
    });
    std::vector<llvm::Value *> rowIndex;
    for (int64_t r = 0; r < R; ++r)
      rowIndex.push_back(clampRow(f0, r, count));
    loop(
        c64(0), batch_,
        [&](llvm::Value *b) {
          llvm::Value *y = b_.CreateGEP(f32_, yBase, b_.CreateMul(b, c64(F * P)));
          llvm::Value *x = b_.CreateGEP(f32_, xBase, b_.CreateMul(b, c64(C * P)));
          loop(
              c64(0), tileCount,
              [&](llvm::Value *t) {
                llvm::Value *c0 = b_.CreateAdd(c64(c00), b_.CreateMul(b_.CreateAdd(t0, t), c64(nc)));
                for (int64_t e = 0; e < R * nc; ++e)
                  b_.CreateStore(b_.CreateLoad(vecTy(), keptAt(t, e)), b_.CreateConstGEP1_64(vecTy(), acc, e));
                auto step = [&](llvm::Value *p0, unsigned lanesOn) {
                  std::vector<llvm::Value *> av, bv;
                  for (int64_t r = 0; r < R; ++r)
                    av.push_back(loadVec(
                        b_.CreateGEP(f32_, y, b_.CreateAdd(b_.CreateMul(rowIndex[static_cast<size_t>(r)], c64(P)), p0)),
                        lanesOn));
                  for (int64_t q = 0; q < nc; ++q)
                    bv.push_back(
                        loadVec(b_.CreateGEP(f32_, x, b_.CreateAdd(b_.CreateMul(b_.CreateAdd(c0, c64(q)), c64(P)), p0)),
                                lanesOn));
                  for (int64_t r = 0; r < R; ++r)
                    for (int64_t q = 0; q < nc; ++q) {
                      llvm::Value *slot = b_.CreateConstGEP1_64(vecTy(), acc, r * nc + q);
                      b_.CreateStore(
                          fma(av[static_cast<size_t>(r)], bv[static_cast<size_t>(q)], b_.CreateLoad(vecTy(), slot)),
                          slot);
                    }
                };
                loop(
                    c64(0), c64(P / vl),
                    [&](llvm::Value *s) { step(b_.CreateMul(s, c64(vl)), static_cast<unsigned>(vl)); }, true);
                if (P % vl)
                  step(c64(P - P % vl), static_cast<unsigned>(P % vl));
                for (int64_t e = 0; e < R * nc; ++e)
                  b_.CreateStore(b_.CreateLoad(vecTy(), b_.CreateConstGEP1_64(vecTy(), acc, e)), keptAt(t, e));
              },
              true);
        },
        true);
    loop(
        c64(0), tileCount,
        [&](llvm::Value *t) { // each row's nc sums, for the rows that are real
          llvm::Value *c0 = b_.CreateAdd(c64(c00), b_.CreateMul(b_.CreateAdd(t0, t), c64(nc)));
          std::vector<llvm::Value *> partial;
          for (int64_t e = 0; e < R * nc; ++e)
            partial.push_back(b_.CreateLoad(vecTy(), keptAt(t, e)));
          std::vector<llvm::Value *> sums = laneSums(partial);
          for (int64_t r = 0; r < R; ++r)
            ifRealRow(r, count, [&] {
              llvm::Value *at = b_.CreateAdd(b_.CreateMul(rowIndex[static_cast<size_t>(r)], c64(C)), c0);
              for (int64_t q = 0; q < nc; ++q) {
                int64_t e = r * nc + q;
                b_.CreateStore(b_.CreateExtractElement(sums[static_cast<size_t>(e / vl)], e % vl),
                               b_.CreateGEP(f32_, wBase, b_.CreateAdd(at, c64(q))));
              }
            });
        },
        true);
  };
  int64_t whole = C / cols; // tiles of `cols` channels; then one of the rest
  loop(
      lo, hi,
      [&](llvm::Value *item) {
        llvm::Value *f0 = b_.CreateMul(item, c64(R));
        llvm::Value *left = b_.CreateSub(c64(F), f0);
        llvm::Value *count = b_.CreateSelect(b_.CreateICmpSLT(left, c64(R)), left, c64(R));
        if (whole > 0)
          loop(
              c64(0), c64((whole + pass - 1) / pass),
              [&](llvm::Value *s) {
                llvm::Value *t0 = b_.CreateMul(s, c64(pass)), *rest = b_.CreateSub(c64(whole), t0);
                tiles(f0, count, 0, t0, b_.CreateSelect(b_.CreateICmpSLT(rest, c64(pass)), rest, c64(pass)), cols);
              },
              true);
        if (C % cols)
          tiles(f0, count, whole * cols, c64(0), c64(1), C % cols);
      },
      true);
}

} // namespace soma::codegen
