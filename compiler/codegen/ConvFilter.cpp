// Filter gradients: along rows, along planes, with the filters in the lanes.
#include "codegen/Emitter.h"

#include <algorithm>
#include <cassert>

namespace soma::codegen {

using namespace ir;

// The filter gradient of planeBackFilter's kind: y's plane [Ho * Wo] is contiguous, so its
// vectors are full (LeNet's 10-wide rows fill 10 of 16 lanes one row at a time). The x values
// a vector of y meets for tap (u, v) lie on the one to three rows its lanes span: a masked load
// from each, added (the other lanes are zeros). Blocks of filters by filter rows as in
// rowBackFilter; the sums run in lanes of 16 positions and are added at the end.
void FunctionEmitter::planeBackFilter(const Kernel &k, llvm::Value *lo, llvm::Value *hi) {
  const Node &n = f_.nodes[k.root];
  int xNode = n.operands[0], yNode = n.operands[1], wNode = k.root;
  const Shape xs = f_.nodes[xNode].shape, ys = f_.nodes[yNode].shape, ws = f_.nodes[wNode].shape;
  int64_t W = xs[3], Kw = ws[3], Ho = ys[2], Wo = ys[3], vl = lanes();
  int64_t plane = Ho * Wo, vectors = (plane + vl - 1) / vl;
  int64_t fb = plan_->channels;
  auto c64 = [&](int64_t v) { return b_.getInt64(v); };
  // The lanes [first, last) of vector t that lie on y's row i, from column j.
  struct Segment {
    int64_t first, last, i, j;
  };
  std::vector<std::vector<Segment>> segments(static_cast<size_t>(vectors));
  for (int64_t t = 0; t < vectors; ++t)
    for (int64_t l = 0; l < vl && t * vl + l < plane;) {
      int64_t pos = t * vl + l, i = pos / Wo, j = pos % Wo, len = std::min(vl - l, Wo - j);
      segments[static_cast<size_t>(t)].push_back({l, l + len, i, j});
      l += len;
    }
  filterBlocks(
      k, lo, hi, [&](llvm::Value *b, llvm::Value *f0, llvm::Value *c, int64_t u0, int64_t ub, const SumAt &sum) {
        llvm::Value *xPlane = imageRow(xNode, b, c, c64(0));
        for (int64_t t = 0; t < vectors; ++t) {
          std::vector<llvm::Value *> yv;
          for (int64_t fo = 0; fo < fb; ++fo)
            yv.push_back(loadVec(b_.CreateGEP(f32_, imageRow(yNode, b, b_.CreateAdd(f0, c64(fo)), c64(0)), c64(t * vl)),
                                 static_cast<unsigned>(std::min(vl, plane - t * vl))));
          for (int64_t uu = 0; uu < ub; ++uu)
            for (int64_t v = 0; v < Kw; ++v) {
              llvm::Value *xv = nullptr;
              for (const Segment &sg : segments[static_cast<size_t>(t)]) {
                std::vector<bool> on(lanes());
                for (int64_t l = sg.first; l < sg.last; ++l)
                  on[static_cast<size_t>(l)] = true;
                // Lane l reads x[i + u, j + (l - first) + v].
                int64_t at = (sg.i + u0 + uu) * W + sg.j + v - sg.first;
                llvm::Value *part = maskedLoad(b_.CreateConstGEP1_64(f32_, xPlane, at), on);
                xv = xv ? b_.CreateFAdd(xv, part) : part;
              }
              for (int64_t fo = 0; fo < fb; ++fo)
                b_.CreateStore(fma(yv[static_cast<size_t>(fo)], xv, b_.CreateLoad(vecTy(), sum(fo, uu, v))),
                               sum(fo, uu, v));
            }
        }
      });
}

// dw[f, c, u, v] = sum over b, i, j of y[b, f, i, j] * x[b, c, i*s + u - p, j*s + v - p] with the
// filters in the lanes: each sample's y is turned to [Ho, Wo, F] on the stack (transposeImage)
// and each x value, repeated in every lane, meets the y vectors of the positions of the row it
// serves (the pattern of channelConv). Each work item (filter row) keeps Kw vectors of sums, in
// registers for a sample and in a stack array between samples; its lanes go to w by a scatter.
void FunctionEmitter::channelBackFilter(const Kernel &k, llvm::Value *lo, llvm::Value *hi) {
  const Node &n = f_.nodes[k.root];
  int xNode = n.operands[0], yNode = n.operands[1];
  const Shape xs = f_.nodes[xNode].shape, ys = f_.nodes[yNode].shape, ws = n.shape;
  int64_t C = xs[1], H = xs[2], W = xs[3], F = ws[0], Kh = ws[2], Kw = ws[3], Ho = ys[2], Wo = ys[3];
  int64_t p = n.attrs.conv.padding, s = n.attrs.conv.stride, vl = lanes(), plane = Ho * Wo;
  int64_t nj = plan_->columns; // y vectors of a row in registers
  auto c64 = [&](int64_t v) { return b_.getInt64(v); };
  llvm::AllocaInst *yt = entryAlloca(f32_, c64(plane * F), "yt");
  yt->setAlignment(llvm::Align(64));
  int64_t pass = plan_->pass;                                            // work items whose sums are kept at once
  llvm::AllocaInst *kept = entryAlloca(vecTy(), c64(pass * Kw), "kept"); // per work item
  llvm::AllocaInst *acc = entryAlloca(llvm::ArrayType::get(vecTy(), Kw), nullptr, "acc"); // registers
  llvm::Value *first = nullptr;                                                           // the pass's first item
  auto keptAt = [&](llvm::Value *item, int64_t v) {
    return b_.CreateGEP(vecTy(), kept, b_.CreateAdd(b_.CreateMul(b_.CreateSub(item, first), c64(Kw)), c64(v)));
  };
  // Work item -> (first filter, channel, filter row).
  auto decode = [&](llvm::Value *item) {
    return std::array<llvm::Value *, 3>{b_.CreateMul(b_.CreateSDiv(item, c64(C * Kh)), c64(vl)),
                                        b_.CreateSRem(b_.CreateSDiv(item, c64(Kh)), c64(C)),
                                        b_.CreateSRem(item, c64(Kh))};
  };
  // Passes of at most `pass` items, each over the whole batch (y is turned again for each).
  llvm::Value *passes = b_.CreateSDiv(b_.CreateAdd(b_.CreateSub(hi, lo), c64(pass - 1)), c64(pass));
  loop(
      c64(0), passes,
      [&](llvm::Value *t) {
        first = b_.CreateAdd(lo, b_.CreateMul(t, c64(pass)));
        llvm::Value *end = b_.CreateAdd(first, c64(pass));
        llvm::Value *passEnd = b_.CreateSelect(b_.CreateICmpSLT(end, hi), end, hi);
        loop(first, passEnd, [&](llvm::Value *item) {
          for (int64_t v = 0; v < Kw; ++v)
            b_.CreateStore(llvm::Constant::getNullValue(vecTy()), keptAt(item, v));
        });
        loop(
            c64(0), batch_,
            [&](llvm::Value *b) {
              transposeImage(yNode, b, yt);
              loop(
                  first, passEnd,
                  [&](llvm::Value *item) {
                    auto [f0, c, u] = decode(item);
                    for (int64_t v = 0; v < Kw; ++v)
                      b_.CreateStore(b_.CreateLoad(vecTy(), keptAt(item, v)), b_.CreateConstGEP1_64(vecTy(), acc, v));
                    // The output rows i whose x row i * s + u - p lies in x.
                    auto [iLo, iHi] = s == 1 ? clampRange(b_.CreateSub(c64(p), u), b_.CreateSub(c64(H + p), u), Ho)
                                             : validRange(u, H, Ho, Kh, s, p);
                    loop(
                        iLo, iHi,
                        [&](llvm::Value *i) {
                          llvm::Value *row =
                              imageRow(xNode, b, c, b_.CreateSub(b_.CreateAdd(b_.CreateMul(i, c64(s)), u), c64(p)));
                          for (int64_t j0 = 0; j0 < Wo; j0 += nj) {
                            int64_t count = std::min(nj, Wo - j0);
                            std::vector<llvm::Value *> yv;
                            for (int64_t jj = 0; jj < count; ++jj)
                              yv.push_back(b_.CreateAlignedLoad(
                                  vecTy(),
                                  b_.CreateGEP(
                                      f32_, yt,
                                      b_.CreateAdd(
                                          b_.CreateMul(b_.CreateAdd(b_.CreateMul(i, c64(Wo)), c64(j0 + jj)), c64(F)),
                                          f0)),
                                  llvm::Align(64)));
                            for (int64_t col = std::max<int64_t>(0, j0 * s - p);
                                 col < std::min(W, (j0 + count - 1) * s + Kw - p); ++col) {
                              llvm::Value *xv =
                                  b_.CreateVectorSplat(static_cast<unsigned>(vl),
                                                       b_.CreateLoad(f32_, b_.CreateConstGEP1_64(f32_, row, col)));
                              for (int64_t jj = 0; jj < count; ++jj)
                                if (int64_t v = col + p - (j0 + jj) * s; v >= 0 && v < Kw) {
                                  llvm::Value *slot = b_.CreateConstGEP1_64(vecTy(), acc, v);
                                  b_.CreateStore(fma(yv[static_cast<size_t>(jj)], xv, b_.CreateLoad(vecTy(), slot)),
                                                 slot);
                                }
                            }
                          }
                        },
                        true);
                    for (int64_t v = 0; v < Kw; ++v)
                      b_.CreateStore(b_.CreateLoad(vecTy(), b_.CreateConstGEP1_64(vecTy(), acc, v)), keptAt(item, v));
                  },
                  true);
            },
            true);
        loop(first, passEnd, [&](llvm::Value *item) { // w[f0 + l, c, u, v] from lane l
          auto [f0, c, u] = decode(item);
          for (int64_t v = 0; v < Kw; ++v)
            b_.CreateMaskedScatter(
                b_.CreateLoad(vecTy(), keptAt(item, v)),
                lanePointers(b_.CreateGEP(f32_, slotPtr(k.root), offset(ws, {f0, c, u, c64(v)})), C * Kh * Kw),
                llvm::Align(4), mask(firstLanes(lanes())));
        });
      },
      true);
}

// dw[f, c, u, v] = sum over b, i, j of y[b, f, i, j] * x[b, c, i + u dh - p, j + v dw - p], blocks of
// filters [lo, hi): for each (block, c) and each block of filter rows, the sums of its taps are
// vectors in registers along the output rows; the lanes are added at the end.
void FunctionEmitter::rowBackFilter(const Kernel &k, llvm::Value *lo, llvm::Value *hi) {
  const Node &n = f_.nodes[k.root];
  int xNode = n.operands[0], yNode = n.operands[1], wNode = k.root;
  const Shape xs = f_.nodes[xNode].shape, ys = f_.nodes[yNode].shape, ws = f_.nodes[wNode].shape;
  int64_t H = xs[2], W = xs[3], Kw = ws[3], Ho = ys[2], Wo = ys[3];
  int64_t p = n.attrs.conv.padding, dh = n.attrs.conv.dilation[0], dw = n.attrs.conv.dilation[1], vl = lanes();
  int64_t chunks = (Wo + vl - 1) / vl;
  int64_t fb = plan_->channels, Cg = ws[1], Fg = ws[0] / n.attrs.conv.groups; // fb filters of one group
  auto c64 = [&](int64_t v) { return b_.getInt64(v); };
  llvm::Function *fn = b_.GetInsertBlock()->getParent();
  filterBlocks(
      k, lo, hi, [&](llvm::Value *b, llvm::Value *f0, llvm::Value *c, int64_t u0, int64_t ub, const SumAt &sum) {
        llvm::Value *xc = b_.CreateAdd(b_.CreateMul(b_.CreateUDiv(f0, c64(Fg)), c64(Cg)), c); // in f0's group
        loop(
            c64(0), c64(Ho),
            [&](llvm::Value *i) {
              std::vector<llvm::Value *> yv; // [fo][ch]
              for (int64_t fo = 0; fo < fb; ++fo) {
                llvm::Value *yRow = imageRow(yNode, b, b_.CreateAdd(f0, c64(fo)), i);
                for (int64_t ch = 0; ch < chunks; ++ch)
                  yv.push_back(loadVec(b_.CreateGEP(f32_, yRow, c64(ch * vl)),
                                       static_cast<unsigned>(std::min(vl, Wo - ch * vl))));
              }
              for (int64_t uu = 0; uu < ub; ++uu) {
                llvm::Value *h = b_.CreateAdd(i, c64((u0 + uu) * dh - p));
                auto *then = llvm::BasicBlock::Create(c_, "tap", fn),
                     *next = llvm::BasicBlock::Create(c_, "tap.next", fn);
                b_.CreateCondBr(b_.CreateAnd(b_.CreateICmpSGE(h, c64(0)), b_.CreateICmpSLT(h, c64(H))), then, next);
                b_.SetInsertPoint(then);
                llvm::Value *xRow = imageRow(xNode, b, xc, h);
                for (int64_t v = 0; v < Kw; ++v) {
                  std::vector<llvm::Value *> sums;
                  for (int64_t fo = 0; fo < fb; ++fo)
                    sums.push_back(b_.CreateLoad(vecTy(), sum(fo, uu, v)));
                  for (int64_t ch = 0; ch < chunks; ++ch) {
                    std::vector<bool> on = columnLanes(ch, Wo, v * dw - p, W);
                    if (std::none_of(on.begin(), on.end(), [](bool x) { return x; }))
                      continue;
                    llvm::Value *xv = maskedLoad(b_.CreateGEP(f32_, xRow, c64(ch * vl + v * dw - p)), on);
                    for (int64_t fo = 0; fo < fb; ++fo)
                      sums[fo] = fma(yv[static_cast<size_t>(fo * chunks + ch)], xv, sums[fo]);
                  }
                  for (int64_t fo = 0; fo < fb; ++fo)
                    b_.CreateStore(sums[fo], sum(fo, uu, v));
                }
                b_.CreateBr(next);
                b_.SetInsertPoint(next);
              }
            },
            true);
      });
}

// The loop nest of both filter gradients: blocks of fb filters (work items [lo, hi)), input
// channels, blocks of ub filter rows. Each block's sums (fb * ub * Kw vectors, in registers) are
// zeroed, `perSample` adds each sample's products to them, and their lanes go into w. With
// samples per pass (the plan's pass), the whole nest runs once per pass of samples, whose y and x
// stay in L2 while every channel and block of filter rows reads them, each pass's sums added to w.
void FunctionEmitter::filterBlocks(const Kernel &k, llvm::Value *lo, llvm::Value *hi,
                                   const std::function<void(llvm::Value *b, llvm::Value *f0, llvm::Value *c, int64_t u0,
                                                            int64_t ub, const SumAt &sum)> &perSample) {
  const Node &n = f_.nodes[k.root];
  const Shape &ws = n.shape;
  int64_t C = ws[1], Kh = ws[2], Kw = ws[3];
  int64_t fb = plan_->channels, rowBlock = plan_->rows, perPass = plan_->pass;
  llvm::AllocaInst *acc = entryAlloca(llvm::ArrayType::get(vecTy(), fb * rowBlock * Kw), nullptr, "acc"); // registers
  auto c64 = [&](int64_t v) { return b_.getInt64(v); };
  // The nest over samples [bLo, bHi); `add`: w += the sums, else w = the sums.
  auto nest = [&](llvm::Value *bLo, llvm::Value *bHi, bool add) {
    loop(lo, hi, [&](llvm::Value *blk) {
      llvm::Value *f0 = b_.CreateMul(blk, c64(fb));
      loop(
          c64(0), c64(C),
          [&](llvm::Value *c) {
            for (int64_t u0 = 0; u0 < Kh; u0 += rowBlock) {
              int64_t ub = std::min(rowBlock, Kh - u0);
              SumAt sum = [&, ub](int64_t fo, int64_t uu, int64_t v) {
                return b_.CreateConstGEP1_64(vecTy(), acc, (fo * ub + uu) * Kw + v);
              };
              for (int64_t e = 0; e < fb * ub * Kw; ++e)
                b_.CreateStore(llvm::Constant::getNullValue(vecTy()), b_.CreateConstGEP1_64(vecTy(), acc, e));
              loop(
                  bLo, bHi, [&](llvm::Value *b) { perSample(b, f0, c, u0, ub, sum); }, true);
              for (int64_t fo = 0; fo < fb; ++fo)
                for (int64_t uu = 0; uu < ub; ++uu)
                  for (int64_t v = 0; v < Kw; ++v) {
                    std::vector<llvm::Value *> idx{b_.CreateAdd(f0, c64(fo)), c, c64(u0 + uu), c64(v)};
                    llvm::Value *total = b_.CreateFAddReduce(zero(), b_.CreateLoad(vecTy(), sum(fo, uu, v)));
                    store(k.root, idx, add ? b_.CreateFAdd(load(k.root, idx), total) : total);
                  }
            }
          },
          true);
    });
  };
  if (perPass == 0) {
    nest(c64(0), batch_, false);
    return;
  }
  // The items' filters zeroed, then every pass adds to them (a batch of any size: the last pass
  // may be short, or the only one); the nest is emitted once.
  int64_t filterFloats = fb * C * Kh * Kw;
  llvm::Value *w0 = b_.CreateGEP(f32_, slotPtr(k.root), b_.CreateMul(lo, c64(filterFloats)));
  loop(c64(0), b_.CreateMul(b_.CreateSub(hi, lo), c64(filterFloats)),
       [&](llvm::Value *e) { b_.CreateStore(zero(), b_.CreateGEP(f32_, w0, e)); });
  llvm::Value *passes = b_.CreateSDiv(b_.CreateAdd(batch_, c64(perPass - 1)), c64(perPass));
  loop(
      c64(0), passes,
      [&](llvm::Value *t) {
        llvm::Value *bLo = b_.CreateMul(t, c64(perPass)), *end = b_.CreateAdd(bLo, c64(perPass));
        nest(bLo, b_.CreateSelect(b_.CreateICmpSLT(end, batch_), end, batch_), true);
      },
      true);
}

} // namespace soma::codegen
