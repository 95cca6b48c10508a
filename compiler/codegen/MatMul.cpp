// Matrix products: register tiles, packed panels, dot-product tiles, plain loops.
#include "codegen/Emitter.h"

#include <algorithm>
#include <cassert>

namespace soma::codegen {

using namespace ir;

// Work items [lo, hi): blocks of `block` rows of C (m rows in all), each cut into `groups`
// groups of `columns` columns; rows(i0, count, c0) runs one. The last block may be short: the
// tile code repeats its last row (clampRow), computed but not stored, so that one variant
// serves every block.
void FunctionEmitter::rowBlocks(llvm::Value *lo, llvm::Value *hi, int64_t block, llvm::Value *m, int64_t groups,
                                int64_t columns,
                                const std::function<void(llvm::Value *, llvm::Value *, llvm::Value *)> &rows) {
  loop(
      lo, hi,
      [&](llvm::Value *item) {
        llvm::Value *i0 = b_.CreateMul(b_.CreateSDiv(item, b_.getInt64(groups)), b_.getInt64(block));
        llvm::Value *c0 = b_.CreateMul(b_.CreateSRem(item, b_.getInt64(groups)), b_.getInt64(columns));
        llvm::Value *left = b_.CreateSub(m, i0);
        rows(i0, b_.CreateSelect(b_.CreateICmpSLT(left, b_.getInt64(block)), left, b_.getInt64(block)), c0);
      },
      true);
}

// body(), for row r of a tile whose first `count` rows are real (row 0 always is); the others
// were computed on a repeated row (clampRow) and are not stored.
void FunctionEmitter::ifRealRow(int64_t r, llvm::Value *count, const std::function<void()> &body) {
  if (r == 0) {
    body();
    return;
  }
  llvm::Function *fn = b_.GetInsertBlock()->getParent();
  auto *then = llvm::BasicBlock::Create(c_, "row.real", fn), *next = llvm::BasicBlock::Create(c_, "row.next", fn);
  b_.CreateCondBr(b_.CreateICmpSLT(b_.getInt64(r), count), then, next);
  b_.SetInsertPoint(then);
  body();
  b_.CreateBr(next);
  b_.SetInsertPoint(next);
}

llvm::Value *FunctionEmitter::clampRow(llvm::Value *i0, int64_t r, llvm::Value *count) {
  llvm::Value *rv = b_.getInt64(r);
  llvm::Value *last = b_.CreateSub(count, b_.getInt64(1));
  return b_.CreateAdd(i0, b_.CreateSelect(b_.CreateICmpSLT(rv, count), rv, last));
}

// The epilogue of rows i0.. i0+count, whose products are in `rows` (n floats a row).
void FunctionEmitter::rowsEpilogue(const Kernel &k, llvm::AllocaInst *rows, llvm::Value *i0, llvm::Value *count,
                                   int64_t n, llvm::Value *c0, int64_t columns) {
  if (!c0) {
    c0 = b_.getInt64(0);
    columns = n;
  }
  loop(
      b_.getInt64(0), count,
      [&](llvm::Value *r) {
        llvm::Value *i = b_.CreateAdd(i0, r);
        llvm::Value *base = b_.CreateMul(r, b_.getInt64(n));
        loop(c0, b_.CreateAdd(c0, b_.getInt64(columns)), [&](llvm::Value *j) {
          productEpilogue(k, {i, j}, b_.CreateLoad(f32_, b_.CreateGEP(f32_, rows, b_.CreateAdd(j, base))));
        });
      },
      true); // rolled: its j loop is the one to vectorize
}

// op(B) = B [K, N] row-major, N static: tiles of kRows rows by two vectors of columns, the
// accumulators in registers over the whole K loop; each B row is loaded once per tile and
// used by every row of it (a BLIS-style micro-kernel). Each element sums over k in order.
void FunctionEmitter::tiledMatMul(const Kernel &k, llvm::Value *lo, llvm::Value *hi) {
  const int64_t kRows = plan_->rows;
  const Node &mm = f_.nodes[k.product];
  int a = mm.operands[0], bm = mm.operands[1];
  const Shape &as = f_.nodes[a].shape;
  bool ta = mm.attrs.transA;
  llvm::Value *kDim = ta ? matRows(as) : dim(as.back());
  int64_t n = mm.shape.back(), vl = lanes();
  int64_t width = plan_->columns; // columns per tile
  llvm::AllocaInst *rows = entryAlloca(f32_, b_.getInt64(kRows * n), "rows");
  rows->setAlignment(llvm::Align(64));
  // The epilogue runs on the sums' registers when it can; else it reads a buffer of rows.
  bool vecEpilogue = plan_->vectorEpilogue;
  const std::vector<int> &prefetched = plan_->prefetch; // an optimizer's state, beyond L2
  int64_t width1 = plan_->singleRow;                    // a single row's tile: more accumulations to hide latency
  llvm::AllocaInst *acc =
      entryAlloca(llvm::ArrayType::get(vecTy(), std::max(kRows * width / vl, width1 / vl)), nullptr, "acc");
  llvm::Value *bBase = slotPtr(bm);
  // One tile: mr rows from i0 (the first `count` of them real) into the buffer's rows from
  // `slot`, columns j0.. j0+cols.
  auto tile = [&](llvm::Value *i0, llvm::Value *count, llvm::Value *j0, int64_t cols, int64_t mr, llvm::Value *slot0) {
    int64_t vectors = (cols + vl - 1) / vl;
    auto lanesOf = [&](int64_t q) { return static_cast<unsigned>(std::min(vl, cols - q * vl)); };
    for (int64_t r = 0; r < mr * vectors; ++r)
      b_.CreateStore(llvm::Constant::getNullValue(vecTy()), b_.CreateConstGEP1_64(vecTy(), acc, r));
    std::vector<llvm::Value *> rowIndex;
    for (int64_t r = 0; r < mr; ++r)
      rowIndex.push_back(clampRow(i0, r, count));
    // The buffers of the tile after next (columns 2 * cols on), fetched while this one multiplies.
    for (int node : prefetched)
      for (int64_t r = 0; r < mr; ++r)
        for (int64_t q = 0; q < vectors; ++q) {
          llvm::Value *j = b_.CreateAdd(j0, b_.getInt64(2 * cols + q * vl));
          b_.CreateIntrinsic(
              llvm::Intrinsic::prefetch, {ptr_},
              {b_.CreateGEP(f32_, slotPtr(node), offset(f_.nodes[node].shape, {rowIndex[static_cast<size_t>(r)], j})),
               b_.getInt32(1), b_.getInt32(3), b_.getInt32(1)});
        }
    loop(
        b_.getInt64(0), kDim,
        [&](llvm::Value *kv) {
          std::vector<llvm::Value *> bv;
          for (int64_t q = 0; q < vectors; ++q) {
            llvm::Value *off = b_.CreateAdd(b_.CreateMul(kv, b_.getInt64(n)), b_.CreateAdd(j0, b_.getInt64(q * vl)));
            bv.push_back(loadVec(b_.CreateGEP(f32_, bBase, off), lanesOf(q)));
          }
          for (int64_t r = 0; r < mr; ++r) {
            llvm::Value *i = rowIndex[static_cast<size_t>(r)];
            llvm::Value *av =
                b_.CreateVectorSplat(static_cast<unsigned>(vl), load(a, ta ? std::vector{kv, i} : std::vector{i, kv}));
            for (int64_t q = 0; q < vectors; ++q) {
              llvm::Value *slot = b_.CreateConstGEP1_64(vecTy(), acc, r * vectors + q);
              b_.CreateStore(fma(av, bv[q], b_.CreateLoad(vecTy(), slot)), slot);
            }
          }
        },
        true);
    if (vecEpilogue) { // straight from the registers, for the rows that are real
      for (int64_t r = 0; r < mr; ++r)
        ifRealRow(r, count, [&] {
          for (int64_t q = 0; q < vectors; ++q)
            productEpilogueVec(k, {rowIndex[static_cast<size_t>(r)], b_.CreateAdd(j0, b_.getInt64(q * vl))},
                               b_.CreateLoad(vecTy(), b_.CreateConstGEP1_64(vecTy(), acc, r * vectors + q)),
                               lanesOf(q));
        });
      return;
    }
    llvm::Value *base = b_.CreateAdd(b_.CreateMul(slot0, b_.getInt64(n)), j0);
    for (int64_t r = 0; r < mr; ++r)
      for (int64_t q = 0; q < vectors; ++q) {
        llvm::Value *p = b_.CreateGEP(f32_, rows, b_.CreateAdd(b_.getInt64(r * n + q * vl), base));
        storeVec(b_.CreateLoad(vecTy(), b_.CreateConstGEP1_64(vecTy(), acc, r * vectors + q)), p, lanesOf(q));
      }
  };
  int64_t groups = plan_->groups, columns = n / groups; // per work item
  // Columns [c0, c0 + columns) of mr rows.
  auto allColumns = [&](llvm::Value *i0, llvm::Value *count, int64_t mr, llvm::Value *slot0, llvm::Value *c0) {
    int64_t w = mr == 1 ? width1 : width;
    if (columns / w > 0)
      loop(
          b_.getInt64(0), b_.getInt64(columns / w),
          [&](llvm::Value *t) { tile(i0, count, b_.CreateAdd(c0, b_.CreateMul(t, b_.getInt64(w))), w, mr, slot0); },
          true);
    if (columns % w)
      tile(i0, count, b_.CreateAdd(c0, b_.getInt64(columns - columns % w)), columns % w, mr, slot0);
  };
  // A block of at least half the rows takes the block's tile (repeating its last row); fewer
  // rows (a batch of one) go one at a time rather than compute rows that are thrown away.
  llvm::Function *fn = b_.GetInsertBlock()->getParent();
  rowBlocks(lo, hi, kRows, matRows(mm.shape), groups, columns,
            [&](llvm::Value *i0, llvm::Value *count, llvm::Value *c0) {
              auto *whole = llvm::BasicBlock::Create(c_, "rows.block", fn),
                   *single = llvm::BasicBlock::Create(c_, "rows.one", fn);
              auto *done = llvm::BasicBlock::Create(c_, "rows.done", fn);
              b_.CreateCondBr(b_.CreateICmpSGE(count, b_.getInt64(kRows / 2)), whole, single);
              b_.SetInsertPoint(whole);
              allColumns(i0, count, kRows, b_.getInt64(0), c0);
              b_.CreateBr(done);
              b_.SetInsertPoint(single);
              loop(
                  b_.getInt64(0), count,
                  [&](llvm::Value *r) { allColumns(b_.CreateAdd(i0, r), b_.getInt64(1), 1, r, c0); }, true);
              b_.CreateBr(done);
              b_.SetInsertPoint(done);
              if (!vecEpilogue)
                rowsEpilogue(k, rows, i0, count, n, c0, columns);
            });
}

// op(B) beyond L2: C in panels of the plan's columns, each panel cut into chunks of `pass` tiles
// of rows, one work item each (panel by panel, so that a thread's next item packs the same
// columns of B, still in L2). For each block of `depth` k's, the panel's block of op(B) is
// packed contiguous ([depth][columns], from B or, transposed, from B^T) and every tile of the
// chunk multiplies it from L1; the sums carry across blocks in a buffer of the chunk's rows, so
// that each element still sums over k in order, as matmul.tiled does.
void FunctionEmitter::packedMatMul(const Kernel &k, llvm::Value *lo, llvm::Value *hi) {
  const int64_t mr = plan_->rows, w = plan_->columns, depth = plan_->depth, chunkRows = plan_->pass * mr;
  const Node &mm = f_.nodes[k.product];
  int a = mm.operands[0], bm = mm.operands[1];
  const Shape &as = f_.nodes[a].shape;
  bool ta = mm.attrs.transA, tb = mm.attrs.transB;
  llvm::Value *kDim = ta ? matRows(as) : dim(as.back()), *m = matRows(mm.shape);
  int64_t n = mm.shape.back(), vl = lanes();
  const uint64_t vecAlign = static_cast<uint64_t>(4 * vl); // rows of the packed block are whole vectors
  llvm::AllocaInst *packed = entryAlloca(f32_, b_.getInt64(depth * w), "packed");
  packed->setAlignment(llvm::Align(vecAlign));
  llvm::AllocaInst *sums = entryAlloca(f32_, b_.getInt64(chunkRows * w), "sums");
  sums->setAlignment(llvm::Align(vecAlign));
  llvm::AllocaInst *acc = entryAlloca(llvm::ArrayType::get(vecTy(), mr * w / vl), nullptr, "acc"); // registers
  llvm::Value *bBase = slotPtr(bm);
  llvm::Value *chunks = b_.CreateSDiv(b_.CreateAdd(m, b_.getInt64(chunkRows - 1)), b_.getInt64(chunkRows));
  llvm::Value *blocks = b_.CreateSDiv(b_.CreateAdd(kDim, b_.getInt64(depth - 1)), b_.getInt64(depth));
  const std::vector<int> &prefetched = plan_->prefetch;
  llvm::Function *fn = b_.GetInsertBlock()->getParent();
  // A panel of `cols` columns from j0, rows [r0, r1).
  auto panel = [&](llvm::Value *j0, int64_t cols, llvm::Value *r0, llvm::Value *r1) {
    int64_t vectors = (cols + vl - 1) / vl;
    auto lanesOf = [&](int64_t q) { return static_cast<unsigned>(std::min(vl, cols - q * vl)); };
    // A tile of mr rows from i0 (the first `count` real), k's [k0, k0 + kb) from the packed block.
    auto tile = [&](llvm::Value *i0, llvm::Value *count, llvm::Value *k0, llvm::Value *kb, llvm::Value *first,
                    llvm::Value *last) {
      std::vector<llvm::Value *> rowIndex;
      for (int64_t r = 0; r < mr; ++r)
        rowIndex.push_back(clampRow(i0, r, count));
      // The tile's sums, from row i0 - r0 of the chunk's buffer (a repeated row has a row of its own).
      llvm::Value *sumsBase = b_.CreateMul(b_.CreateSub(i0, r0), b_.getInt64(w));
      auto sumAt = [&](int64_t r, int64_t q) {
        return b_.CreateGEP(f32_, sums, b_.CreateAdd(sumsBase, b_.getInt64(r * w + q * vl)));
      };
      auto accAt = [&](int64_t r, int64_t q) { return b_.CreateConstGEP1_64(vecTy(), acc, r * vectors + q); };
      auto *fresh = llvm::BasicBlock::Create(c_, "sums.fresh", fn),
           *carried = llvm::BasicBlock::Create(c_, "sums.carried", fn);
      auto *run = llvm::BasicBlock::Create(c_, "tile.run", fn);
      b_.CreateCondBr(first, fresh, carried);
      b_.SetInsertPoint(fresh);
      for (int64_t r = 0; r < mr; ++r)
        for (int64_t q = 0; q < vectors; ++q)
          b_.CreateStore(llvm::Constant::getNullValue(vecTy()), accAt(r, q));
      b_.CreateBr(run);
      b_.SetInsertPoint(carried);
      for (int64_t r = 0; r < mr; ++r)
        for (int64_t q = 0; q < vectors; ++q)
          b_.CreateStore(b_.CreateAlignedLoad(vecTy(), sumAt(r, q), llvm::Align(4)), accAt(r, q));
      b_.CreateBr(run);
      b_.SetInsertPoint(run);
      // The epilogue's buffers two tiles down, fetched while this one multiplies.
      for (int node : prefetched)
        for (int64_t r = 0; r < mr; ++r) {
          llvm::Value *row = b_.CreateAdd(i0, b_.getInt64(2 * mr + r));
          row = b_.CreateSelect(b_.CreateICmpSLT(row, m), row, b_.CreateSub(m, b_.getInt64(1)));
          for (int64_t q = 0; q < vectors; ++q)
            b_.CreateIntrinsic(
                llvm::Intrinsic::prefetch, {ptr_},
                {b_.CreateGEP(f32_, slotPtr(node),
                              offset(f_.nodes[node].shape, {row, b_.CreateAdd(j0, b_.getInt64(q * vl))})),
                 b_.getInt32(1), b_.getInt32(3), b_.getInt32(1)});
        }
      loop(
          b_.getInt64(0), kb,
          [&](llvm::Value *kk) {
            std::vector<llvm::Value *> bv;
            for (int64_t q = 0; q < vectors; ++q)
              bv.push_back(b_.CreateAlignedLoad(
                  vecTy(),
                  b_.CreateGEP(f32_, packed, b_.CreateAdd(b_.CreateMul(kk, b_.getInt64(w)), b_.getInt64(q * vl))),
                  llvm::Align(vecAlign)));
            llvm::Value *kv = b_.CreateAdd(k0, kk);
            // The next tile's rows of A, at the same k: fetched a tile ahead of their use.
            for (int64_t r = 0; r < (ta ? 1 : mr); ++r) {
              llvm::Value *row = b_.CreateAdd(i0, b_.getInt64(mr + r));
              row = b_.CreateSelect(b_.CreateICmpSLT(row, m), row, b_.CreateSub(m, b_.getInt64(1)));
              b_.CreateIntrinsic(
                  llvm::Intrinsic::prefetch, {ptr_},
                  {b_.CreateGEP(f32_, slotPtr(a), offset(as, ta ? std::vector{kv, row} : std::vector{row, kv})),
                   b_.getInt32(0), b_.getInt32(3), b_.getInt32(1)});
            }
            for (int64_t r = 0; r < mr; ++r) {
              llvm::Value *i = rowIndex[static_cast<size_t>(r)];
              llvm::Value *av = b_.CreateVectorSplat(static_cast<unsigned>(vl),
                                                     load(a, ta ? std::vector{kv, i} : std::vector{i, kv}));
              for (int64_t q = 0; q < vectors; ++q)
                b_.CreateStore(fma(av, bv[q], b_.CreateLoad(vecTy(), accAt(r, q))), accAt(r, q));
            }
          },
          true);
      auto keep = [&] {
        for (int64_t r = 0; r < mr; ++r)
          for (int64_t q = 0; q < vectors; ++q)
            b_.CreateAlignedStore(b_.CreateLoad(vecTy(), accAt(r, q)), sumAt(r, q), llvm::Align(4));
      };
      if (!plan_->vectorEpilogue) {
        keep(); // the epilogue reads the chunk's buffer at the end
        return;
      }
      auto *done = llvm::BasicBlock::Create(c_, "tile.epilogue", fn),
           *more = llvm::BasicBlock::Create(c_, "tile.keep", fn);
      auto *next = llvm::BasicBlock::Create(c_, "tile.next", fn);
      b_.CreateCondBr(last, done, more);
      b_.SetInsertPoint(done);
      for (int64_t r = 0; r < mr; ++r)
        ifRealRow(r, count, [&] {
          for (int64_t q = 0; q < vectors; ++q)
            productEpilogueVec(k, {rowIndex[static_cast<size_t>(r)], b_.CreateAdd(j0, b_.getInt64(q * vl))},
                               b_.CreateLoad(vecTy(), accAt(r, q)), lanesOf(q));
        });
      b_.CreateBr(next);
      b_.SetInsertPoint(more);
      keep();
      b_.CreateBr(next);
      b_.SetInsertPoint(next);
    };
    loop(
        b_.getInt64(0), blocks,
        [&](llvm::Value *blk) {
          llvm::Value *k0 = b_.CreateMul(blk, b_.getInt64(depth));
          llvm::Value *left = b_.CreateSub(kDim, k0);
          llvm::Value *kb = b_.CreateSelect(b_.CreateICmpSLT(left, b_.getInt64(depth)), left, b_.getInt64(depth));
          llvm::Value *first = b_.CreateICmpEQ(blk, b_.getInt64(0));
          llvm::Value *last = b_.CreateICmpEQ(b_.CreateAdd(blk, b_.getInt64(1)), blocks);
          // Pack op(B)[k0 .. k0 + kb, j0 .. j0 + cols) as rows of w floats.
          if (!tb)
            loop(
                b_.getInt64(0), kb,
                [&](llvm::Value *kk) {
                  llvm::Value *from = b_.CreateAdd(b_.CreateMul(b_.CreateAdd(k0, kk), b_.getInt64(n)), j0);
                  llvm::Value *to = b_.CreateMul(kk, b_.getInt64(w));
                  for (int64_t q = 0; q < vectors; ++q)
                    b_.CreateAlignedStore(
                        loadVec(b_.CreateGEP(f32_, bBase, b_.CreateAdd(from, b_.getInt64(q * vl))), lanesOf(q)),
                        b_.CreateGEP(f32_, packed, b_.CreateAdd(to, b_.getInt64(q * vl))), llvm::Align(vecAlign));
                },
                true);
          else { // B is [N, K]: squares of lanes x lanes transposed in registers, the edges an element at a time
            llvm::Value *whole = b_.CreateMul(b_.CreateSDiv(kb, b_.getInt64(vl)), b_.getInt64(vl));
            auto element = [&](llvm::Value *c, llvm::Value *kk) {
              llvm::Value *from = b_.CreateAdd(b_.CreateMul(b_.CreateAdd(j0, c), kDim), b_.CreateAdd(k0, kk));
              b_.CreateStore(b_.CreateLoad(f32_, b_.CreateGEP(f32_, bBase, from)),
                             b_.CreateGEP(f32_, packed, b_.CreateAdd(b_.CreateMul(kk, b_.getInt64(w)), c)));
            };
            // One square's code, looped over the panel's whole vectors of columns.
            loop(
                b_.getInt64(0), b_.getInt64(cols / vl),
                [&](llvm::Value *cs) {
                  llvm::Value *c0 = b_.CreateMul(cs, b_.getInt64(vl));
                  loop(
                      b_.getInt64(0), b_.CreateSDiv(kb, b_.getInt64(vl)),
                      [&](llvm::Value *t) {
                        llvm::Value *kk = b_.CreateMul(t, b_.getInt64(vl));
                        std::vector<llvm::Value *> square;
                        for (int64_t r = 0; r < vl; ++r) {
                          llvm::Value *row = b_.CreateAdd(b_.CreateAdd(j0, c0), b_.getInt64(r));
                          square.push_back(loadVec(
                              b_.CreateGEP(f32_, bBase, b_.CreateAdd(b_.CreateMul(row, kDim), b_.CreateAdd(k0, kk))),
                              static_cast<unsigned>(vl)));
                        }
                        transposeSquare(square);
                        for (int64_t r = 0; r < vl; ++r)
                          b_.CreateAlignedStore(
                              square[static_cast<size_t>(r)],
                              b_.CreateGEP(
                                  f32_, packed,
                                  b_.CreateAdd(b_.CreateMul(b_.CreateAdd(kk, b_.getInt64(r)), b_.getInt64(w)), c0)),
                              llvm::Align(vecAlign));
                      },
                      true);
                  loop(c0, b_.CreateAdd(c0, b_.getInt64(vl)),
                       [&](llvm::Value *c) { loop(whole, kb, [&](llvm::Value *kk) { element(c, kk); }); });
                },
                true);
            if (cols % vl)
              loop(b_.getInt64(cols - cols % vl), b_.getInt64(cols),
                   [&](llvm::Value *c) { loop(b_.getInt64(0), kb, [&](llvm::Value *kk) { element(c, kk); }); });
          }
          // Every tile of the chunk. A last tile of fewer rows repeats its last one: at a batch of
          // one or two that wastes multiply-adds, but there packing B from memory takes longer.
          llvm::Value *tiles = b_.CreateSDiv(b_.CreateAdd(b_.CreateSub(r1, r0), b_.getInt64(mr - 1)), b_.getInt64(mr));
          loop(
              b_.getInt64(0), tiles,
              [&](llvm::Value *t) {
                llvm::Value *i0 = b_.CreateAdd(r0, b_.CreateMul(t, b_.getInt64(mr)));
                llvm::Value *left = b_.CreateSub(r1, i0);
                tile(i0, b_.CreateSelect(b_.CreateICmpSLT(left, b_.getInt64(mr)), left, b_.getInt64(mr)), k0, kb, first,
                     last);
              },
              true);
        },
        true);
    if (!plan_->vectorEpilogue) // from the chunk's buffer, an element at a time
      loop(
          r0, r1,
          [&](llvm::Value *i) {
            llvm::Value *base = b_.CreateMul(b_.CreateSub(i, r0), b_.getInt64(w));
            loop(b_.getInt64(0), b_.getInt64(cols), [&](llvm::Value *c) {
              productEpilogue(k, {i, b_.CreateAdd(j0, c)},
                              b_.CreateLoad(f32_, b_.CreateGEP(f32_, sums, b_.CreateAdd(base, c))));
            });
          },
          true);
  };
  int64_t full = n / w, rest = n % w;
  loop(
      lo, hi,
      [&](llvm::Value *item) {
        llvm::Value *p = b_.CreateSDiv(item, chunks);
        llvm::Value *r0 = b_.CreateMul(b_.CreateSRem(item, chunks), b_.getInt64(chunkRows));
        llvm::Value *r1 = b_.CreateAdd(r0, b_.getInt64(chunkRows));
        r1 = b_.CreateSelect(b_.CreateICmpSLT(r1, m), r1, m);
        llvm::Value *j0 = b_.CreateMul(p, b_.getInt64(w));
        if (!rest) {
          panel(j0, w, r0, r1);
          return;
        }
        auto *whole = llvm::BasicBlock::Create(c_, "panel.whole", fn),
             *part = llvm::BasicBlock::Create(c_, "panel.rest", fn);
        auto *done = llvm::BasicBlock::Create(c_, "panel.done", fn);
        b_.CreateCondBr(b_.CreateICmpSLT(p, b_.getInt64(full)), whole, part);
        b_.SetInsertPoint(whole);
        panel(j0, w, r0, r1);
        b_.CreateBr(done);
        b_.SetInsertPoint(part);
        panel(j0, rest, r0, r1);
        b_.CreateBr(done);
        b_.SetInsertPoint(done);
      },
      true);
}

// C = A B^T with A [M, K] and B [N, K] row-major, K and N static: each element a dot product
// along contiguous k, in tiles of the plan's rows x columns (4 x 4 on AVX-512) whose partial sums
// (a vector each) stay in registers; the lanes are added at the end.
void FunctionEmitter::dotMatMul(const Kernel &k, llvm::Value *lo, llvm::Value *hi) {
  const int64_t mr = plan_->rows, nc = plan_->columns;
  const Node &mm = f_.nodes[k.product];
  int a = mm.operands[0], bm = mm.operands[1];
  int64_t kk = f_.nodes[a].shape.back(), n = mm.shape.back(), vl = lanes();
  llvm::AllocaInst *rows = entryAlloca(f32_, b_.getInt64(mr * n), "rows");
  llvm::AllocaInst *acc = entryAlloca(llvm::ArrayType::get(vecTy(), mr * nc), nullptr, "acc"); // registers
  llvm::Value *aBase = slotPtr(a), *bBase = slotPtr(bm);
  auto tile = [&](llvm::Value *i0, llvm::Value *rowCount, llvm::Value *j0, int64_t nr) {
    for (int64_t e = 0; e < mr * nr; ++e)
      b_.CreateStore(llvm::Constant::getNullValue(vecTy()), b_.CreateConstGEP1_64(vecTy(), acc, e));
    std::vector<llvm::Value *> rowIndex;
    for (int64_t r = 0; r < mr; ++r)
      rowIndex.push_back(clampRow(i0, r, rowCount));
    auto step = [&](llvm::Value *k0, unsigned count) {
      std::vector<llvm::Value *> av, bv;
      for (int64_t r = 0; r < mr; ++r)
        av.push_back(
            loadVec(b_.CreateGEP(f32_, aBase,
                                 b_.CreateAdd(b_.CreateMul(rowIndex[static_cast<size_t>(r)], b_.getInt64(kk)), k0)),
                    count));
      for (int64_t c = 0; c < nr; ++c)
        bv.push_back(
            loadVec(b_.CreateGEP(f32_, bBase,
                                 b_.CreateAdd(b_.CreateMul(b_.CreateAdd(j0, b_.getInt64(c)), b_.getInt64(kk)), k0)),
                    count));
      for (int64_t r = 0; r < mr; ++r)
        for (int64_t c = 0; c < nr; ++c) {
          llvm::Value *slot = b_.CreateConstGEP1_64(vecTy(), acc, r * nr + c);
          b_.CreateStore(fma(av[r], bv[c], b_.CreateLoad(vecTy(), slot)), slot);
        }
    };
    loop(
        b_.getInt64(0), b_.getInt64(kk / vl),
        [&](llvm::Value *t) { step(b_.CreateMul(t, b_.getInt64(vl)), static_cast<unsigned>(vl)); }, true);
    if (kk % vl)
      step(b_.getInt64(kk - kk % vl), static_cast<unsigned>(kk % vl));
    storeLaneSums(acc, mr, nr, nr,
                  [&](int64_t r) { return b_.CreateGEP(f32_, rows, b_.CreateAdd(j0, b_.getInt64(r * n))); });
  };
  rowBlocks(lo, hi, mr, matRows(mm.shape), 1, n, [&](llvm::Value *i0, llvm::Value *count, llvm::Value *) {
    if (n / nc > 0)
      loop(
          b_.getInt64(0), b_.getInt64(n / nc),
          [&](llvm::Value *t) { tile(i0, count, b_.CreateMul(t, b_.getInt64(nc)), nc); }, true);
    if (n % nc)
      tile(i0, count, b_.getInt64(n - n % nc), n % nc);
    rowsEpilogue(k, rows, i0, count, n);
  });
}

// Any layout and shape: a row of C accumulated in a stack buffer (the j loop vectorizes), or
// with transposed B each element a dot product over k.
void FunctionEmitter::generalMatMul(const Kernel &k, llvm::Value *lo, llvm::Value *hi) {
  const Node &mm = f_.nodes[k.product];
  int a = mm.operands[0], bm = mm.operands[1];
  const Shape &as = f_.nodes[a].shape;
  bool ta = mm.attrs.transA, tb = mm.attrs.transB;
  llvm::Value *kDim = ta ? matRows(as) : dim(as.back());
  llvm::Value *nDim = dim(mm.shape.back());
  auto aAt = [&](llvm::Value *i, llvm::Value *kk) { return load(a, ta ? std::vector{kk, i} : std::vector{i, kk}); };
  auto bAt = [&](llvm::Value *kk, llvm::Value *j) { return load(bm, tb ? std::vector{j, kk} : std::vector{kk, j}); };
  if (tb) {
    llvm::AllocaInst *acc = entryAlloca(f32_, nullptr, "acc");
    loop(lo, hi, [&](llvm::Value *i) {
      loop(b_.getInt64(0), nDim, [&](llvm::Value *j) {
        b_.CreateStore(zero(), acc);
        loop(b_.getInt64(0), kDim, [&](llvm::Value *kk) {
          llvm::Value *prod = b_.CreateFMul(aAt(i, kk), bAt(kk, j));
          b_.CreateStore(b_.CreateFAdd(b_.CreateLoad(f32_, acc), prod), acc);
        });
        productEpilogue(k, {i, j}, b_.CreateLoad(f32_, acc));
      });
    });
    return;
  }
  llvm::AllocaInst *row = entryAlloca(f32_, nDim, "row");
  row->setAlignment(llvm::Align(64));
  loop(lo, hi, [&](llvm::Value *i) {
    loop(b_.getInt64(0), nDim, [&](llvm::Value *j) { b_.CreateStore(zero(), b_.CreateGEP(f32_, row, j)); });
    loop(b_.getInt64(0), kDim, [&](llvm::Value *kk) {
      llvm::Value *av = aAt(i, kk);
      loop(b_.getInt64(0), nDim, [&](llvm::Value *j) {
        llvm::Value *p = b_.CreateGEP(f32_, row, j);
        b_.CreateStore(b_.CreateFAdd(b_.CreateLoad(f32_, p), b_.CreateFMul(av, bAt(kk, j))), p);
      });
    });
    loop(b_.getInt64(0), nDim, [&](llvm::Value *j) {
      productEpilogue(k, {i, j}, b_.CreateLoad(f32_, b_.CreateGEP(f32_, row, j)));
    });
  });
}

} // namespace soma::codegen
