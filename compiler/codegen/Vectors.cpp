// The emitters' vector helpers (vectors joined and picked from, masks, masked loads and stores,
// sums across lanes, squares turned) and the epilogue of a product on the vectors of its result.
#include "codegen/Emitter.h"

#include <llvm/IR/IRBuilder.h>
#include <llvm/IR/Intrinsics.h>

#include <algorithm>

namespace soma::codegen {

using namespace ir;
using transforms::Kernel;

// Vectors `parts` side by side, as one vector of their lanes (padded to a power of two parts).
llvm::Value *FunctionEmitter::concat(std::vector<llvm::Value *> parts) {
  while (parts.size() > 1) {
    if (parts.size() % 2)
      parts.push_back(llvm::Constant::getNullValue(parts[0]->getType()));
    std::vector<llvm::Value *> next;
    unsigned n = llvm::cast<llvm::FixedVectorType>(parts[0]->getType())->getNumElements();
    std::vector<int> both(2 * n);
    for (unsigned l = 0; l < 2 * n; ++l)
      both[l] = static_cast<int>(l);
    for (size_t i = 0; i < parts.size(); i += 2)
      next.push_back(b_.CreateShuffleVector(parts[i], parts[i + 1], both));
    parts = next;
  }
  return parts[0];
}

// A vector of lanes start, start + step, ... of `v`.
llvm::Value *FunctionEmitter::pickLanes(llvm::Value *v, int64_t start, int64_t step) {
  std::vector<int> picks(lanes());
  for (unsigned l = 0; l < lanes(); ++l)
    picks[l] = static_cast<int>(start + step * l);
  return b_.CreateShuffleVector(v, picks);
}

// C = op(A) op(B), rows [lo, hi), then the elementwise epilogue up to the kernel's root. With a
// static number of columns the product is computed in register tiles (matmul.tiled, or
// matmul.dot when B is transposed) into a buffer of rows, which the epilogue then reads; other
// shapes take the plain loop nest (matmul.loops).

// The lanes of a vector epilogue run along idx[axis]: the epilogue finds that axis in the
// indices of every tensor it reads by its Value. Where another axis holds the same Value (output
// row 8 and the vector of columns from 8 are one constant), the lane's gets a copy of its own
// (a freeze, which folds away later). A run along the plane (trailing_) is found by its own.
llvm::Value *FunctionEmitter::laneIndex(std::vector<llvm::Value *> &idx, size_t axis) {
  if (trailing_.t)
    return idx[axis];
  for (size_t a = 0; a < idx.size(); ++a)
    if (a != axis && idx[a] == idx[axis]) {
      idx[axis] = b_.CreateFreeze(idx[axis]);
      break;
    }
  return idx[axis];
}

// The epilogue on `count` lanes from index idx, the lanes along axis `laneAxis` (by default the
// last): `value` holds the product there.
void FunctionEmitter::productEpilogueVec(const Kernel &k, std::vector<llvm::Value *> idx, llvm::Value *value,
                                         unsigned count) {
  size_t last = idx.size() - 1;
  productEpilogueVec(k, std::move(idx), value, count, last);
}
void FunctionEmitter::productEpilogueVec(const Kernel &k, std::vector<llvm::Value *> idx, llvm::Value *value,
                                         unsigned count, size_t laneAxis) {
  lane_ = laneIndex(idx, laneAxis);
  laneCount_ = count;
  productEpilogue(k, idx, value);
  lane_ = nullptr;
}

// The value of the kernel's one root (its elementwise tree above the product) at idx, on a
// vector of `count` lanes along axis `laneAxis`, where the product is `value`; not stored.
llvm::Value *FunctionEmitter::epilogueValue(const Kernel &k, std::vector<llvm::Value *> idx, llvm::Value *value,
                                            unsigned count, size_t laneAxis) {
  lane_ = laneIndex(idx, laneAxis);
  laneCount_ = count;
  fusedProduct_ = k.product;
  productValue_ = value;
  llvm::Value *out = expr(k.root, idx, k.root != k.product);
  fusedProduct_ = -1;
  lane_ = nullptr;
  return out;
}

// The kernel's elementwise tree above its product (k.product) at idx, where the product is
// `value`. With other roots (a one-pass optimizer update), those are computed and stored too.
void FunctionEmitter::productEpilogue(const Kernel &k, const std::vector<llvm::Value *> &idx, llvm::Value *value) {
  fusedProduct_ = k.product;
  productValue_ = value;
  if (k.alsoRoots.empty())
    store(k.root, idx, expr(k.root, idx, k.root != k.product));
  else
    storeRoots(k, idx);
  fusedProduct_ = -1;
}

// The first `count` lanes.
std::vector<bool> FunctionEmitter::firstLanes(unsigned count) {
  std::vector<bool> on(lanes());
  for (unsigned l = 0; l < lanes(); ++l)
    on[l] = l < count;
  return on;
}

llvm::Constant *FunctionEmitter::mask(const std::vector<bool> &on) {
  std::vector<llvm::Constant *> bits;
  for (bool b : on)
    bits.push_back(b_.getInt1(b));
  return llvm::ConstantVector::get(bits);
}

// A vector from p, only the lanes that are on (the others read nothing and are 0).
llvm::Value *FunctionEmitter::maskedLoad(llvm::Value *p, const std::vector<bool> &on) {
  if (std::all_of(on.begin(), on.end(), [](bool b) { return b; }))
    return b_.CreateAlignedLoad(vecTy(), p, llvm::Align(4));
  return b_.CreateMaskedLoad(vecTy(), p, llvm::Align(4), mask(on), llvm::Constant::getNullValue(vecTy()));
}

void FunctionEmitter::storeVec(llvm::Value *v, llvm::Value *p, unsigned count) {
  if (count == lanes())
    b_.CreateAlignedStore(v, p, llvm::Align(4));
  else
    b_.CreateMaskedStore(v, p, llvm::Align(4), mask(firstLanes(count)));
}

// The start of row (b, c, h) of a [B, C, H, W] buffer.
llvm::Value *FunctionEmitter::imageRow(int node, llvm::Value *b, llvm::Value *c, llvm::Value *h) {
  return b_.CreateGEP(f32_, slotPtr(node), offset(f_.nodes[node].shape, {b, c, h, b_.getInt64(0)}));
}

llvm::Value *FunctionEmitter::fma(llvm::Value *a, llvm::Value *b, llvm::Value *c) {
  return b_.CreateIntrinsic(llvm::Intrinsic::fmuladd, {a->getType()}, {a, b, c});
}

// Lane l of result g is the sum of the lanes of vs[g * lanes + l] (vs padded with zeros to a
// whole number of vectors). Level by level, pairs of vectors are cut into halves of their
// groups of lanes and the halves added: the same tree as CreateFAddReduce's (lane i + lane
// i + lanes/2 first), so each sum is the same bit for bit, for about a third of the work.
std::vector<llvm::Value *> FunctionEmitter::laneSums(std::vector<llvm::Value *> vs) {
  int64_t vl = lanes();
  while (vs.size() % static_cast<size_t>(vl))
    vs.push_back(llvm::Constant::getNullValue(vecTy()));
  for (int64_t g = vl / 2; g >= 1; g /= 2) { // each vector: groups of 2g partial sums
    std::vector<int> low, high;
    for (int64_t half = 0; half < 2; ++half) // lanes of the first operand, then the second's
      for (int64_t j = 0; j < vl / (2 * g); ++j)
        for (int64_t i = 0; i < g; ++i) {
          low.push_back(static_cast<int>(half * vl + j * 2 * g + i));
          high.push_back(static_cast<int>(half * vl + j * 2 * g + g + i));
        }
    std::vector<llvm::Value *> next;
    for (size_t p = 0; p + 1 < vs.size(); p += 2)
      next.push_back(
          b_.CreateFAdd(b_.CreateShuffleVector(vs[p], vs[p + 1], low), b_.CreateShuffleVector(vs[p], vs[p + 1], high)));
    vs = next;
  }
  return vs;
}

// The lane sums of the vectors acc[0 .. groups * width), a group at a time: the sums of group
// g's first `count` vectors (acc[g * width ..]) as one store at at(g).
void FunctionEmitter::storeLaneSums(llvm::AllocaInst *acc, int64_t groups, int64_t width, int64_t count,
                                    const std::function<llvm::Value *(int64_t)> &at) {
  int64_t vl = lanes();
  std::vector<llvm::Value *> partial;
  for (int64_t e = 0; e < groups * width; ++e)
    partial.push_back(b_.CreateLoad(vecTy(), b_.CreateConstGEP1_64(vecTy(), acc, e)));
  std::vector<llvm::Value *> sums = laneSums(partial);
  for (int64_t g = 0; g < groups; ++g) {
    llvm::Value *v = llvm::PoisonValue::get(llvm::FixedVectorType::get(f32_, static_cast<unsigned>(count)));
    for (int64_t i = 0; i < count; ++i) {
      int64_t e = g * width + i;
      v = b_.CreateInsertElement(v, b_.CreateExtractElement(sums[static_cast<size_t>(e / vl)], e % vl), i);
    }
    b_.CreateAlignedStore(v, at(g), llvm::Align(4));
  }
}

// Transposes a square of lanes x lanes floats held as its rows: level by level, rows r and
// r + g (g = lanes/2 .. 1) exchange the upper half of each group of 2g lanes of the first with
// the lower half of the second's.
void FunctionEmitter::transposeSquare(std::vector<llvm::Value *> &rows) {
  int64_t vl = lanes();
  for (int64_t g = vl / 2; g >= 1; g /= 2) {
    std::vector<int> low, high;
    for (int64_t j = 0; j < vl / (2 * g); ++j)
      for (int64_t half = 0; half < 2; ++half) // g lanes of the first row, then g of the second's
        for (int64_t i = 0; i < g; ++i) {
          low.push_back(static_cast<int>(half * vl + j * 2 * g + i));
          high.push_back(static_cast<int>(half * vl + j * 2 * g + g + i));
        }
    for (int64_t r = 0; r < vl; ++r)
      if (!(r & g)) {
        llvm::Value *p = rows[static_cast<size_t>(r)], *q = rows[static_cast<size_t>(r + g)];
        rows[static_cast<size_t>(r)] = b_.CreateShuffleVector(p, q, low);
        rows[static_cast<size_t>(r + g)] = b_.CreateShuffleVector(p, q, high);
      }
  }
}

// [lo, hi) cut to [0, n).
std::pair<llvm::Value *, llvm::Value *> FunctionEmitter::clampRange(llvm::Value *lo, llvm::Value *hi, int64_t n) {
  return {b_.CreateSelect(b_.CreateICmpSGT(lo, b_.getInt64(0)), lo, b_.getInt64(0)),
          b_.CreateSelect(b_.CreateICmpSLT(hi, b_.getInt64(n)), hi, b_.getInt64(n))};
}

} // namespace soma::codegen
