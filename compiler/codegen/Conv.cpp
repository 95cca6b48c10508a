// Convolutions and their data gradients: along rows, with channels or filters in the lanes, direct loops.
#include "codegen/Emitter.h"

#include <algorithm>
#include <cassert>

namespace soma::codegen {

using namespace ir;

// The outputs i in [0, outSize) whose input row i*stride + u - padding lies in [0, inSize), for
// a filter offset u in [0, kernel): loop bounds that make the inner loops free of checks.
std::pair<llvm::Value *, llvm::Value *> FunctionEmitter::validRange(llvm::Value *u, int64_t inSize, int64_t outSize,
                                                                    int64_t kernel, int64_t stride, int64_t padding) {
  // floor(a / stride) for a >= -kernel: shift a to be non-negative before the signed division.
  int64_t shift = kernel + 1;
  auto floorDiv = [&](llvm::Value *a) {
    llvm::Value *q = b_.CreateSDiv(b_.CreateAdd(a, b_.getInt64(stride * shift)), b_.getInt64(stride));
    return b_.CreateSub(q, b_.getInt64(shift));
  };
  llvm::Value *first = floorDiv(b_.CreateSub(b_.getInt64(padding + stride - 1), u)); // ceil((p - u) / s)
  llvm::Value *last = floorDiv(b_.CreateSub(b_.getInt64(inSize - 1 + padding), u));
  return clampRange(first, b_.CreateAdd(last, b_.getInt64(1)), outSize);
}

// Lanes of a vector at columns q = chunk * lanes + l (q < width) whose input column q + shift
// lies in [0, inWidth): a constant mask, as every extent but the batch is static.
std::vector<bool> FunctionEmitter::columnLanes(int64_t chunk, int64_t width, int64_t shift, int64_t inWidth) {
  std::vector<bool> on(lanes());
  for (unsigned l = 0; l < lanes(); ++l) {
    int64_t q = chunk * lanes() + l, col = q + shift;
    on[l] = q < width && col >= 0 && col < inWidth;
  }
  return on;
}

// The weights w [F, C, Kh, Kw] packed on the stack as [C, Kh, Kw, F] (once per call), so that
// the filters' weights for one tap are whole vectors.
llvm::AllocaInst *FunctionEmitter::filtersLast(int wNode) {
  const Shape &ws = f_.nodes[wNode].shape;
  int64_t F = ws[0], taps = ws[1] * ws[2] * ws[3];
  auto c64 = [&](int64_t v) { return b_.getInt64(v); };
  llvm::AllocaInst *packed = entryAlloca(f32_, c64(taps * F), "packed");
  packed->setAlignment(llvm::Align(64));
  loop(
      c64(0), c64(F),
      [&](llvm::Value *f) { // packed[tap][f] = w[f][tap]
        loop(c64(0), c64(taps), [&](llvm::Value *tap) {
          b_.CreateStore(
              b_.CreateLoad(f32_, b_.CreateGEP(f32_, slotPtr(wNode), b_.CreateAdd(b_.CreateMul(f, c64(taps)), tap))),
              b_.CreateGEP(f32_, packed, b_.CreateAdd(b_.CreateMul(tap, c64(F)), f)));
        });
      },
      true);
  return packed;
}

// A convolution with the output channels in the lanes, for images whose rows are narrower than
// a vector (LeNet's 10 columns would fill 10 of 16 lanes); `flipped`, the data gradient the same
// way: a correlation of dy with the flipped filter, "full" padding, the channels of dx in the
// lanes. For each block of a vector of output channels, the weights are packed as
// [I, Kh, Kw, lanes] on the stack, so that the block's weights for one tap are a vector; then
// for each sample, a block of output rows (each of Q positions, a vector of channels each) stays
// in registers, and each input value is loaded once per tap row, repeated in every lane, and
// multiplied by Kw weight vectors. Results (through the epilogue, if any) go to the channels'
// planes by squares of lanes x positions turned in registers.
// At a stride s, output row r's tap row u reads input row r * s + u - padH, and its columns the
// same way; a data gradient reads dy dilated by s (dy's row i at row i * s of the dilated rows,
// zeros between), so only the tap rows that meet one of dy's rows are multiplied (a branch per
// row and tap row), and only the columns of dy (known when emitting).
void FunctionEmitter::channelConv(const Kernel &k, int conv, llvm::Value *lo, llvm::Value *hi, bool flipped) {
  const Node &n = f_.nodes[conv];
  int xNode = n.operands[0], wNode = n.operands[1];
  const Shape os = n.shape, xs = f_.nodes[xNode].shape, ws = f_.nodes[wNode].shape;
  int64_t O = os[1], R = os[2], Q = os[3], C = xs[1], H = xs[2], W = xs[3], Kh = ws[2], Kw = ws[3];
  int64_t padH = flipped ? Kh - 1 - n.attrs.conv.padding : n.attrs.conv.padding;
  int64_t padW = flipped ? Kw - 1 - n.attrs.conv.padding : n.attrs.conv.padding, vl = lanes();
  int64_t s = n.attrs.conv.stride;
  int64_t step = flipped ? 1 : s;    // input rows (columns) from one output row to the next
  int64_t dilated = flipped ? s : 1; // the input's rows (columns) are this far apart
  int64_t Hd = (H - 1) * dilated + 1, Wd = (W - 1) * dilated + 1; // the input's extent as the taps see it
  llvm::Function *fn = b_.GetInsertBlock()->getParent();
  auto c64 = [&](int64_t v) { return b_.getInt64(v); };
  int64_t taps = C * Kh * Kw;
  llvm::AllocaInst *packed = entryAlloca(f32_, c64(taps * vl), "packed");
  packed->setAlignment(llvm::Align(64));
  // packed[(c, u, v)][l] = the weight of output channel o0 + l for input channel c at tap (u, v).
  auto pack = [&](llvm::Value *o0) {
    loop(
        c64(0), c64(vl),
        [&](llvm::Value *l) {
          llvm::Value *o = b_.CreateAdd(o0, l);
          loop(c64(0), c64(taps), [&](llvm::Value *tap) {
            llvm::Value *from;
            if (!flipped) { // w[o, c, u, v]: the taps of o are contiguous
              from = b_.CreateAdd(b_.CreateMul(o, c64(taps)), tap);
            } else { // w[c, o, Kh-1-u, Kw-1-v]: tap (c, u, v) of dx's channel o
              llvm::Value *c = b_.CreateSDiv(tap, c64(Kh * Kw)), *uv = b_.CreateSRem(tap, c64(Kh * Kw));
              from = b_.CreateAdd(b_.CreateMul(b_.CreateAdd(b_.CreateMul(c, c64(O)), o), c64(Kh * Kw)),
                                  b_.CreateSub(c64(Kh * Kw - 1), uv));
            }
            b_.CreateStore(b_.CreateLoad(f32_, b_.CreateGEP(f32_, slotPtr(wNode), from)),
                           b_.CreateGEP(f32_, packed, b_.CreateAdd(b_.CreateMul(tap, c64(vl)), l)));
          });
        },
        true);
  };
  int64_t rb = plan_->rows;                         // rows in registers
  int64_t qb = plan_->columns ? plan_->columns : Q; // columns of a row in registers
  llvm::AllocaInst *acc = entryAlloca(llvm::ArrayType::get(vecTy(), rb * qb), nullptr, "acc"); // registers
  bool padded = padH > 0 || (R - 1) * step + Kh - padH > Hd;
  // Output rows r0 .. r0 + rows - 1, columns q0 .. q0 + qn - 1.
  auto block = [&](llvm::Value *b, llvm::Value *o0, llvm::Value *r0, int64_t rows, int64_t q0, int64_t qn) {
    auto sum = [&](int64_t r, int64_t q) { return b_.CreateConstGEP1_64(vecTy(), acc, r * qb + q - q0); };
    for (int64_t e = 0; e < rows * qb; ++e)
      b_.CreateStore(llvm::Constant::getNullValue(vecTy()), b_.CreateConstGEP1_64(vecTy(), acc, e));
    auto [uLo, uHi] = tapRows(r0, rows, padH, Hd, Kh, step);
    // The row's products: each input column col - padW (of the dilated columns) meets the outputs
    // q with col = q * step + v for a tap v.
    auto rowProducts = [&](llvm::Value *row, int64_t r, const std::vector<llvm::Value *> &wv) {
      for (int64_t col = q0 * step; col < (q0 + qn - 1) * step + Kw; ++col) {
        int64_t at = col - padW;
        auto meets = [&](int64_t v) { // output col - v, if it is one of the block's
          int64_t d = col - v;
          return d >= q0 * step && d % step == 0 && d / step < q0 + qn;
        };
        bool used = false; // a stride above the filter's width skips some columns
        for (int64_t v = 0; v < Kw; ++v)
          used = used || meets(v);
        if (at < 0 || at >= Wd || at % dilated || !used)
          continue;
        llvm::Value *x = b_.CreateVectorSplat(static_cast<unsigned>(vl),
                                              b_.CreateLoad(f32_, b_.CreateConstGEP1_64(f32_, row, at / dilated)));
        for (int64_t v = 0; v < Kw; ++v)
          if (meets(v))
            b_.CreateStore(fma(x, wv[static_cast<size_t>(v)], b_.CreateLoad(vecTy(), sum(r, (col - v) / step))),
                           sum(r, (col - v) / step));
      }
    };
    loop(
        c64(0), c64(C),
        [&](llvm::Value *c) {
          loop(
              uLo, uHi,
              [&](llvm::Value *u) {
                llvm::Value *tapRow = b_.CreateMul(b_.CreateAdd(b_.CreateMul(c, c64(Kh)), u), c64(Kw));
                std::vector<llvm::Value *> wv;
                for (int64_t v = 0; v < Kw; ++v)
                  wv.push_back(b_.CreateAlignedLoad(
                      vecTy(), b_.CreateGEP(f32_, packed, b_.CreateMul(b_.CreateAdd(tapRow, c64(v)), c64(vl))),
                      llvm::Align(64)));
                for (int64_t r = 0; r < rows; ++r) {
                  llvm::Value *h =
                      b_.CreateSub(b_.CreateAdd(b_.CreateMul(b_.CreateAdd(r0, c64(r)), c64(step)), u), c64(padH));
                  if (dilated == 1) {
                    rowProducts(padded ? rowOrZeros(xNode, b, c, h, padW) : imageRow(xNode, b, c, h), r, wv);
                    continue;
                  }
                  // The dilated row h is dy's row h / s when s divides it and it lies in dy.
                  llvm::Value *meets =
                      b_.CreateAnd(b_.CreateAnd(b_.CreateICmpSGE(h, c64(0)), b_.CreateICmpSLT(h, c64(Hd))),
                                   b_.CreateICmpEQ(b_.CreateSRem(h, c64(s)), c64(0)));
                  auto *then = llvm::BasicBlock::Create(c_, "tap", fn),
                       *next = llvm::BasicBlock::Create(c_, "tap.next", fn);
                  b_.CreateCondBr(meets, then, next);
                  b_.SetInsertPoint(then);
                  rowProducts(imageRow(xNode, b, c, b_.CreateSDiv(h, c64(s))), r, wv);
                  b_.CreateBr(next);
                  b_.SetInsertPoint(next);
                }
              },
              true);
        },
        true);
    // The results (with the epilogue, when it writes one tensor) by squares of lanes x positions,
    // each turned in registers and its rows stored along the channels' planes: a scatter of
    // each vector of channels cost a fifth of a strided data gradient's time.
    if (k.root == conv || k.alsoRoots.empty()) {
      for (int64_t r = 0; r < rows; ++r)
        for (int64_t q = q0; q < q0 + qn; q += vl) {
          int64_t count = std::min(vl, q0 + qn - q);
          llvm::Value *row = b_.CreateAdd(r0, c64(r));
          std::vector<llvm::Value *> square;
          for (int64_t i = 0; i < vl; ++i) {
            if (i >= count) {
              square.push_back(llvm::Constant::getNullValue(vecTy()));
              continue;
            }
            llvm::Value *value = b_.CreateLoad(vecTy(), sum(r, q + i));
            square.push_back(k.root == conv
                                 ? value
                                 : epilogueValue(k, {b, o0, row, c64(q + i)}, value, static_cast<unsigned>(vl), 1));
          }
          transposeSquare(square); // square[l]: channel o0 + l at positions q ..
          for (int64_t l = 0; l < vl; ++l)
            storeVec(square[static_cast<size_t>(l)],
                     b_.CreateConstGEP1_64(f32_, imageRow(k.root, b, b_.CreateAdd(o0, c64(l)), row), q),
                     static_cast<unsigned>(count));
        }
      return;
    }
    for (int64_t r = 0; r < rows; ++r) // an epilogue that writes several tensors: vector by vector
      for (int64_t q = q0; q < q0 + qn; ++q)
        productEpilogueVec(k, {b, o0, b_.CreateAdd(r0, c64(r)), c64(q)}, b_.CreateLoad(vecTy(), sum(r, q)),
                           static_cast<unsigned>(vl), 1);
  };
  // Blocks of channels outermost, so that each block's weights are packed once per call.
  loop(
      c64(0), c64(O / vl),
      [&](llvm::Value *blk) {
        llvm::Value *o0 = b_.CreateMul(blk, c64(vl));
        pack(o0);
        loop(
            lo, hi,
            [&](llvm::Value *b) {
              auto columns = [&](llvm::Value *r0, int64_t rows) {
                for (int64_t q0 = 0; q0 < Q; q0 += qb)
                  block(b, o0, r0, rows, q0, std::min(qb, Q - q0));
              };
              if (R / rb > 0)
                loop(
                    c64(0), c64(R / rb), [&](llvm::Value *t) { columns(b_.CreateMul(t, c64(rb)), rb); }, true);
              if (R % rb)
                columns(c64(R - R % rb), R % rb);
            },
            true);
      },
      true);
}

// The data gradient with the filters in the lanes: dx[b, c, h, x] = sum over f, u, v of
// y[b, f, h + p - u, x + p - v] * w[f, c, u, v], over the taps that reach y only (no padding is
// multiplied). The weights are packed once per call as [C, Kh, Kw, F] and each sample's y is
// turned to [Ho, Wo, F] on the stack, so that the filters of a tap or a position are vectors.
// A block of nx positions of a row, for every channel, keeps C * nx vectors of sums in
// registers; laneSums adds their lanes.
void FunctionEmitter::channelBackData(const Kernel &k, llvm::Value *lo, llvm::Value *hi) {
  const Node &n = f_.nodes[k.root];
  int yNode = n.operands[0], wNode = n.operands[1];
  const Shape xs = n.shape, ys = f_.nodes[yNode].shape, ws = f_.nodes[wNode].shape;
  int64_t C = xs[1], H = xs[2], W = xs[3], F = ws[0], Kh = ws[2], Kw = ws[3], Ho = ys[2], Wo = ys[3];
  int64_t p = n.attrs.conv.padding, vl = lanes(), plane = Ho * Wo;
  int64_t nx = plan_->columns; // positions a block
  auto c64 = [&](int64_t v) { return b_.getInt64(v); };
  llvm::AllocaInst *packed = filtersLast(wNode);
  llvm::AllocaInst *yt = entryAlloca(f32_, c64(plane * F), "yt");
  yt->setAlignment(llvm::Align(64));
  llvm::AllocaInst *acc = entryAlloca(llvm::ArrayType::get(vecTy(), C * nx), nullptr, "acc"); // registers
  auto vecAt = [&](llvm::Value *base, llvm::Value *at) {
    return b_.CreateAlignedLoad(vecTy(), b_.CreateGEP(f32_, base, at), llvm::Align(64));
  };
  loop(lo, hi, [&](llvm::Value *b) {
    transposeImage(yNode, b, yt);
    loop(
        c64(0), c64(H),
        [&](llvm::Value *h) {
          // Filter rows u that reach y: h + p - u in [0, Ho).
          auto [uLo, uHi] = clampRange(b_.CreateAdd(h, c64(p - Ho + 1)), b_.CreateAdd(h, c64(p + 1)), Kh);
          for (int64_t x0 = 0; x0 < W; x0 += nx) {
            int64_t count = std::min(nx, W - x0);
            auto sum = [&](int64_t c, int64_t xi) { return b_.CreateConstGEP1_64(vecTy(), acc, c * nx + xi); };
            for (int64_t e = 0; e < C * nx; ++e)
              b_.CreateStore(llvm::Constant::getNullValue(vecTy()), b_.CreateConstGEP1_64(vecTy(), acc, e));
            loop(
                uLo, uHi,
                [&](llvm::Value *u) {
                  llvm::Value *yRow = b_.CreateMul(b_.CreateSub(b_.CreateAdd(h, c64(p)), u), c64(Wo * F));
                  llvm::Value *wRow = b_.CreateMul(u, c64(Kw * F));
                  for (int64_t f0 = 0; f0 < F; f0 += vl) {
                    std::map<int64_t, llvm::Value *> yv; // by column of y
                    for (int64_t v = 0; v < Kw; ++v) {
                      std::vector<llvm::Value *> wv(static_cast<size_t>(C));
                      for (int64_t xi = 0; xi < count; ++xi) {
                        int64_t j = x0 + xi + p - v;
                        if (j < 0 || j >= Wo)
                          continue;
                        if (!yv.count(j))
                          yv[j] = vecAt(yt, b_.CreateAdd(yRow, c64(j * F + f0)));
                        for (int64_t c = 0; c < C; ++c) {
                          llvm::Value *&wc = wv[static_cast<size_t>(c)];
                          if (!wc)
                            wc = vecAt(packed, b_.CreateAdd(wRow, c64((c * Kh * Kw + v) * F + f0)));
                          b_.CreateStore(fma(yv[j], wc, b_.CreateLoad(vecTy(), sum(c, xi))), sum(c, xi));
                        }
                      }
                    }
                  }
                },
                true);
            storeLaneSums(acc, C, nx, count, [&](int64_t c) {
              return b_.CreateGEP(f32_, slotPtr(k.root), offset(xs, {b, c64(c), h, c64(x0)}));
            });
          }
        },
        true);
  });
}

// y[b] ([F, Ho, Wo]) as [Ho * Wo, F] in `to`, by squares of lanes x lanes (the last square may
// have fewer positions); F is a whole number of vectors.
void FunctionEmitter::transposeImage(int yNode, llvm::Value *b, llvm::Value *to) {
  const Shape &ys = f_.nodes[yNode].shape;
  int64_t F = ys[1], plane = ys[2] * ys[3], vl = lanes();
  auto c64 = [&](int64_t v) { return b_.getInt64(v); };
  llvm::Value *yb = imageRow(yNode, b, c64(0), c64(0));
  // A loop over the vectors of filters, not unrolled: each square is 3 * lanes instructions or
  // more already, and unrolled over 128 filters they made the largest blocks the code generator
  // saw (a fifth of S1's compile time went to one filter gradient).
  auto square = [&](llvm::Value *pos0, int64_t count) {
    loop(
        c64(0), c64(F / vl),
        [&](llvm::Value *blk) {
          llvm::Value *f0 = b_.CreateMul(blk, c64(vl));
          llvm::Value *from = b_.CreateGEP(f32_, yb, b_.CreateAdd(pos0, b_.CreateMul(f0, c64(plane))));
          std::vector<llvm::Value *> rows;
          for (int64_t f = 0; f < vl; ++f)
            rows.push_back(loadVec(b_.CreateConstGEP1_64(f32_, from, f * plane), static_cast<unsigned>(count)));
          transposeSquare(rows);
          for (int64_t i = 0; i < count; ++i)
            b_.CreateAlignedStore(
                rows[static_cast<size_t>(i)],
                b_.CreateGEP(f32_, to, b_.CreateAdd(b_.CreateMul(b_.CreateAdd(pos0, c64(i)), c64(F)), f0)),
                llvm::Align(64));
        },
        true);
  };
  loop(
      c64(0), c64(plane / vl), [&](llvm::Value *t) { square(b_.CreateMul(t, c64(vl)), vl); }, true);
  if (plane % vl)
    square(c64(plane - plane % vl), plane % vl);
}

// For samples [lo, hi), blocks of ob channels (of O) and of rb rows (of R; the last block may
// have fewer): block(sample, first channel, first row, rows).
void FunctionEmitter::convBlocks(
    llvm::Value *lo, llvm::Value *hi, int64_t O, int64_t ob, int64_t R, int64_t rb,
    const std::function<void(llvm::Value *, llvm::Value *, llvm::Value *, int64_t)> &block) {
  auto c64 = [&](int64_t v) { return b_.getInt64(v); };
  loop(lo, hi, [&](llvm::Value *b) {
    loop(
        c64(0), c64(O / ob),
        [&](llvm::Value *blk) {
          llvm::Value *o0 = b_.CreateMul(blk, c64(ob));
          if (R / rb > 0)
            loop(
                c64(0), c64(R / rb), [&](llvm::Value *t) { block(b, o0, b_.CreateMul(t, c64(rb)), rb); }, true);
          if (R % rb)
            block(b, o0, c64(R - R % rb), R % rb);
        },
        true);
  });
}

// The filter rows [uLo, uHi) for which some output row r0 .. r0 + rows - 1 reads an input row
// (h = r * stride + u - pad in [0, H)): the others would only multiply rows of zeros.
std::pair<llvm::Value *, llvm::Value *> FunctionEmitter::tapRows(llvm::Value *r0, int64_t rows, int64_t pad, int64_t H,
                                                                 int64_t Kh, int64_t stride) {
  llvm::Value *first = b_.CreateMul(r0, b_.getInt64(stride));
  return clampRange(b_.CreateSub(b_.getInt64(pad - (rows - 1) * stride), first),
                    b_.CreateSub(b_.getInt64(H + pad), first), Kh);
}

// Row h of image (b, c) of `node`, or when h lies in the padding a row of zeros (with `pad`
// columns of margin).
llvm::Value *FunctionEmitter::rowOrZeros(int node, llvm::Value *b, llvm::Value *c, llvm::Value *h, int64_t pad) {
  const Shape &s = f_.nodes[node].shape;
  llvm::Value *inside = b_.CreateAnd(b_.CreateICmpSGE(h, b_.getInt64(0)), b_.CreateICmpSLT(h, b_.getInt64(s[2])));
  return b_.CreateSelect(inside, imageRow(node, b, c, h), zeroRow(s[3], pad));
}

// A row of zeros that a convolution reads in place of an input row in the padding: `width`
// elements, with `margin` more (and a vector) on each side for the shifted loads.
llvm::Value *FunctionEmitter::zeroRow(int64_t width, int64_t margin) {
  int64_t size = width + 2 * (margin + lanes());
  llvm::GlobalVariable *&global = zeroRows_[size];
  if (!global) {
    auto *ty = llvm::ArrayType::get(f32_, static_cast<uint64_t>(size));
    global = privateConstant(m_, "zero.row." + std::to_string(size), llvm::ConstantAggregateZero::get(ty), 64);
  }
  return b_.CreateConstGEP1_64(f32_, global, margin + lanes());
}

// out[b, o, r, q] = sum over i, u, v of weight(o, i, u, v) * in[b, i, r + u - padH, q + v - padW],
// rows of `out` (samples) in [lo, hi). Convolution: weight = w[o, i, u, v]; its data gradient:
// weight = w[i, o, Kh-1-u, Kw-1-v] (flipped). A block of ob output channels by rb output rows
// (each a few vectors) stays in registers over the whole sum: every input vector loaded serves
// ob channels, every weight broadcast rb rows. Rows outside the input (padding) load nothing.
// With an epilogue, each output row runs it on its registers (or, for what cannot run on
// vectors, from a buffer of one row).
void FunctionEmitter::rowConv(const Kernel &k, int outNode, int inNode, int wNode, bool flipped, int64_t padH,
                              int64_t padW, llvm::Value *lo, llvm::Value *hi) {
  const Shape os = f_.nodes[outNode].shape, is = f_.nodes[inNode].shape, ws = f_.nodes[wNode].shape;
  int64_t O = os[1], R = os[2], Q = os[3], I = is[1], Hin = is[2], Win = is[3], Kh = ws[2], Kw = ws[3];
  const ConvParams &cp = f_.nodes[outNode].attrs.conv;
  int64_t vl = lanes(), chunks = (Q + vl - 1) / vl, dh = cp.dilation[0], dw = cp.dilation[1];
  int64_t ob = plan_->channels, rb = plan_->rows; // the block in registers, its channels in one group
  int64_t Og = O / cp.groups, Ig = I / cp.groups; // each group's output and input channels
  llvm::AllocaInst *acc = entryAlloca(llvm::ArrayType::get(vecTy(), ob * rb * chunks), nullptr, "acc"); // registers
  bool vecEpilogue = plan_->vectorEpilogue;
  llvm::AllocaInst *rowBuffer = entryAlloca(f32_, b_.getInt64(chunks * vl), "row");
  auto c64 = [&](int64_t v) { return b_.getInt64(v); };
  // The weight of output channel o for input channel i (in o's group, whose first channels are
  // o0 and i0) at tap (u, v).
  auto weight = [&](llvm::Value *o, llvm::Value *o0, llvm::Value *i, llvm::Value *i0, llvm::Value *u, int64_t v) {
    if (!flipped)
      return load(wNode, {o, b_.CreateSub(i, i0), u, c64(v)});
    return load(wNode, {i, b_.CreateSub(o, o0), b_.CreateSub(c64(Kh - 1), u), c64(Kw - 1 - v)});
  };
  bool padded = padH > 0 || R + convSpan(Kh, dh) - 1 > Hin;
  // Output rows r0 .. r0 + rows - 1 of channels o0 .. o0 + ob - 1.
  auto block = [&](llvm::Value *b, llvm::Value *o0, llvm::Value *r0, int64_t rows) {
    auto sum = [&](int64_t o, int64_t r, int64_t ch) {
      return b_.CreateConstGEP1_64(vecTy(), acc, (o * rows + r) * chunks + ch);
    };
    for (int64_t e = 0; e < ob * rows * chunks; ++e)
      b_.CreateStore(llvm::Constant::getNullValue(vecTy()), b_.CreateConstGEP1_64(vecTy(), acc, e));
    // Dilated: every tap row (rows outside the input read zeros).
    auto [uLo, uHi] = dh == 1 ? tapRows(r0, rows, padH, Hin, Kh) : std::pair{c64(0), c64(Kh)};
    llvm::Value *group = b_.CreateUDiv(o0, c64(Og));
    llvm::Value *groupOut = b_.CreateMul(group, c64(Og)), *groupIn = b_.CreateMul(group, c64(Ig));
    loop(
        groupIn, b_.CreateAdd(groupIn, c64(Ig)),
        [&](llvm::Value *i) {
          loop(
              uLo, uHi,
              [&](llvm::Value *u) {
                std::vector<llvm::Value *> rowPtr;
                for (int64_t r = 0; r < rows; ++r) {
                  llvm::Value *h =
                      b_.CreateSub(b_.CreateAdd(r0, b_.CreateAdd(b_.CreateMul(u, c64(dh)), c64(r))), c64(padH));
                  rowPtr.push_back(padded ? rowOrZeros(inNode, b, i, h, padW) : imageRow(inNode, b, i, h));
                }
                for (int64_t v = 0; v < Kw; ++v) {
                  std::vector<llvm::Value *> wv;
                  for (int64_t o = 0; o < ob; ++o)
                    wv.push_back(b_.CreateVectorSplat(static_cast<unsigned>(vl),
                                                      weight(b_.CreateAdd(o0, c64(o)), groupOut, i, groupIn, u, v)));
                  for (int64_t ch = 0; ch < chunks; ++ch) {
                    std::vector<bool> on = columnLanes(ch, Q, v * dw - padW, Win);
                    if (std::none_of(on.begin(), on.end(), [](bool x) { return x; }))
                      continue;
                    for (int64_t r = 0; r < rows; ++r) {
                      llvm::Value *xv = maskedLoad(b_.CreateGEP(f32_, rowPtr[r], c64(ch * vl + v * dw - padW)), on);
                      for (int64_t o = 0; o < ob; ++o)
                        b_.CreateStore(fma(wv[static_cast<size_t>(o)], xv, b_.CreateLoad(vecTy(), sum(o, r, ch))),
                                       sum(o, r, ch));
                    }
                  }
                }
              },
              true);
        },
        true);
    for (int64_t o = 0; o < ob; ++o)
      for (int64_t r = 0; r < rows; ++r) {
        llvm::Value *oc = b_.CreateAdd(o0, c64(o)), *rr = b_.CreateAdd(r0, c64(r));
        for (int64_t ch = 0; ch < chunks; ++ch) {
          llvm::Value *value = b_.CreateLoad(vecTy(), sum(o, r, ch));
          auto count = static_cast<unsigned>(std::min(vl, Q - ch * vl));
          if (k.root == outNode)
            storeVec(value, b_.CreateGEP(f32_, imageRow(outNode, b, oc, rr), c64(ch * vl)), count);
          else if (vecEpilogue)
            productEpilogueVec(k, {b, oc, rr, c64(ch * vl)}, value, count);
          else
            storeVec(value, b_.CreateConstGEP1_64(f32_, rowBuffer, ch * vl), count);
        }
        if (k.root != outNode && !vecEpilogue)
          loop(c64(0), c64(Q), [&](llvm::Value *q) {
            productEpilogue(k, {b, oc, rr, q}, b_.CreateLoad(f32_, b_.CreateGEP(f32_, rowBuffer, q)));
          });
      }
  };
  convBlocks(lo, hi, O, ob, R, rb, block);
}

// Direct convolution in the three forms of Ops.def. The innermost loop runs along an output or
// input row (j), contiguous for stride 1, so it vectorizes; padding is handled by loop bounds.
void FunctionEmitter::directConv(const Kernel &k, llvm::Value *lo, llvm::Value *hi) {
  const Node &n = f_.nodes[k.root];
  int xNode = n.op == Op::Conv2DBackData ? k.root : n.operands[0];
  int wNode = n.op == Op::Conv2DBackFilter ? k.root : n.operands[1];
  int yNode = n.op == Op::Conv2D ? k.root : n.op == Op::Conv2DBackData ? n.operands[0] : n.operands[1];
  const Shape xs = f_.nodes[xNode].shape, ws = f_.nodes[wNode].shape, ys = f_.nodes[yNode].shape;
  int64_t H = xs[2], W = xs[3], F = ws[0], Kh = ws[2], Kw = ws[3], Ho = ys[2], Wo = ys[3];
  int64_t s = n.attrs.conv.stride, p = n.attrs.conv.padding, Cg = ws[1];
  int64_t dh = n.attrs.conv.dilation[0], dw = n.attrs.conv.dilation[1];
  int64_t Fg = F / n.attrs.conv.groups, spanH = convSpan(Kh, dh), spanW = convSpan(Kw, dw);
  auto c64 = [&](int64_t v) { return b_.getInt64(v); };
  // Filter f's group reads the channels from f / Fg * Cg on, Cg of them (all, in one group).
  auto groupBase = [&](llvm::Value *f) { return b_.CreateMul(b_.CreateUDiv(f, c64(Fg)), c64(Cg)); };
  auto inputAt = [&](llvm::Value *i, llvm::Value *u, int64_t d) { // i * s + u * d - p
    return b_.CreateSub(b_.CreateAdd(b_.CreateMul(i, c64(s)), b_.CreateMul(u, c64(d))), c64(p));
  };
  auto outputs = [&](llvm::Value *u, int64_t d, int64_t in, int64_t out, int64_t span) { // those tap u reaches
    return validRange(b_.CreateMul(u, c64(d)), in, out, span, s, p);
  };
  // for u, v in the filter: for i, j in the outputs they touch: body(c?, u, v, i, j, h, w)
  auto window = [&](const std::function<void(llvm::Value *, llvm::Value *, llvm::Value *, llvm::Value *, llvm::Value *,
                                             llvm::Value *)> &body) {
    loop(c64(0), c64(Kh), [&](llvm::Value *u) {
      auto [iLo, iHi] = outputs(u, dh, H, Ho, spanH);
      loop(c64(0), c64(Kw), [&](llvm::Value *v) {
        auto [jLo, jHi] = outputs(v, dw, W, Wo, spanW);
        loop(iLo, iHi, [&](llvm::Value *i) {
          llvm::Value *h = inputAt(i, u, dh);
          loop(jLo, jHi, [&](llvm::Value *j) { body(u, v, i, j, h, inputAt(j, v, dw)); });
        });
      });
    });
  };
  auto accumulate = [&](int node, const std::vector<llvm::Value *> &idx, llvm::Value *add) {
    store(node, idx, b_.CreateFAdd(load(node, idx), add));
  };
  switch (n.op) {
  case Op::Conv2D: // rows are samples: y[b] = sum over c and the window
    loop(lo, hi, [&](llvm::Value *b) {
      loop(c64(0), c64(F), [&](llvm::Value *f) {
        std::vector<llvm::Value *> idx{b, f};
        loopNest(ys, 2, idx, [&] { store(yNode, idx, zero()); });
        loop(c64(0), c64(Cg), [&](llvm::Value *c) {
          llvm::Value *xc = b_.CreateAdd(groupBase(f), c);
          window([&](llvm::Value *u, llvm::Value *v, llvm::Value *i, llvm::Value *j, llvm::Value *h, llvm::Value *w) {
            llvm::Value *wv = load(wNode, {f, c, u, v});
            accumulate(yNode, {b, f, i, j}, b_.CreateFMul(wv, load(xNode, {b, xc, h, w})));
          });
        });
      });
    });
    return;
  case Op::Conv2DBackData: // rows are samples: each y[b, f] scatters into x[b]
    loop(lo, hi, [&](llvm::Value *b) {
      std::vector<llvm::Value *> idx{b};
      loopNest(xs, 1, idx, [&] { store(xNode, idx, zero()); });
      loop(c64(0), c64(F), [&](llvm::Value *f) {
        loop(c64(0), c64(Cg), [&](llvm::Value *c) {
          llvm::Value *xc = b_.CreateAdd(groupBase(f), c);
          window([&](llvm::Value *u, llvm::Value *v, llvm::Value *i, llvm::Value *j, llvm::Value *h, llvm::Value *w) {
            llvm::Value *wv = load(wNode, {f, c, u, v});
            accumulate(xNode, {b, xc, h, w}, b_.CreateFMul(wv, load(yNode, {b, f, i, j})));
          });
        });
      });
    });
    return;
  case Op::Conv2DBackFilter: { // rows are filters: w[f] sums over the batch
    llvm::AllocaInst *acc = entryAlloca(f32_, nullptr, "acc");
    loop(lo, hi, [&](llvm::Value *f) {
      loop(c64(0), c64(Cg), [&](llvm::Value *c) {
        llvm::Value *xc = b_.CreateAdd(groupBase(f), c);
        loop(c64(0), c64(Kh), [&](llvm::Value *u) {
          auto [iLo, iHi] = outputs(u, dh, H, Ho, spanH);
          loop(c64(0), c64(Kw), [&](llvm::Value *v) {
            auto [jLo, jHi] = outputs(v, dw, W, Wo, spanW);
            b_.CreateStore(zero(), acc);
            loop(c64(0), batch_, [&](llvm::Value *b) {
              loop(iLo, iHi, [&](llvm::Value *i) {
                llvm::Value *h = inputAt(i, u, dh);
                loop(jLo, jHi, [&](llvm::Value *j) {
                  llvm::Value *prod =
                      b_.CreateFMul(load(yNode, {b, f, i, j}), load(xNode, {b, xc, h, inputAt(j, v, dw)}));
                  b_.CreateStore(b_.CreateFAdd(b_.CreateLoad(f32_, acc), prod), acc);
                });
              });
            });
            store(wNode, {f, c, u, v}, b_.CreateLoad(f32_, acc));
          });
        });
      });
    });
    return;
  }
  default:
    assert(false && "not a convolution");
  }
}

} // namespace soma::codegen
