// The kernel emitter: one class, its methods in one file per family of strategies.
//   Emitter.cpp     the core: values at an index (expr), loads and stores, loops, vectors,
//                   epilogues, the dispatch on each kernel's strategy, the module
//   Pointwise.cpp   elementwise kernels, reductions, softmax rows, max pooling
//   MatMul.cpp      matrix products: register tiles, packed panels, dot-product tiles, loops
//   Conv.cpp        convolutions and their data gradients: along rows, with channels or
//                   filters in the lanes, direct loops
//   ConvFilter.cpp  filter gradients: along rows, along planes, with the filters in the lanes
//   ConvGemm.cpp    1x1 convolutions, all three forms, as matrix products per sample
//   Loop.cpp        loops over time: the body's kernels called once per step by the pass
// Every method emits LLVM IR for the kernel being emitted (plan_) as its plan says; none chooses
// a strategy or a tile (transforms/Plan.cpp does). Internal to codegen/.
#pragma once
#include "codegen/KernelEmitter.h"

#include <llvm/IR/IRBuilder.h>
#include <llvm/IR/Module.h>

#include <functional>
#include <map>
#include <vector>

namespace soma::codegen {

using ir::Function;
using ir::kBatch;
using ir::Node;
using ir::Shape;
using transforms::Kernel;
using transforms::KernelPlan;
using transforms::Schedule;

class FunctionEmitter {
public:
  FunctionEmitter(llvm::Module &m, const Function &f, const Schedule &s, const std::vector<KernelPlan> &plans,
                  const TargetInfo &t)
      : m_(m), c_(m.getContext()), b_(c_), f_(f), s_(s), plans_(plans), target_(t) {
    llvm::FastMathFlags fmf;
    fmf.setAllowReassoc();
    fmf.setAllowContract();
    fmf.setAllowReciprocal();
    fmf.setApproxFunc();
    fmf.setNoSignedZeros(); // NaN and Inf stay: a diverging loss must be seen
    b_.setFastMathFlags(fmf);
    i64_ = b_.getInt64Ty();
    f32_ = b_.getFloatTy();
    ptr_ = b_.getPtrTy();
  }

  void emit();

private:
  struct Emitted {
    llvm::Function *fn; // nullptr: a loop, which the pass runs itself
    const KernelPlan *plan;
    std::vector<int> slots; // the kernel's context: the batch, then these slots' pointers
  };
  std::vector<Emitted> emitKernels();
  // In the pass: fills the kernel's context with `pointer` of each of its slots and runs it on
  // the threads.
  void callKernel(const Emitted &e, const std::function<llvm::Value *(int slot)> &pointer);

  // ---- Loop.cpp
  void emitLoop(const Kernel &k, const KernelPlan &p);
  void copyRows(llvm::Value *dst, llvm::Value *dstStride, llvm::Value *src, llvm::Value *srcStride, llvm::Value *rows,
                llvm::Value *n);

  // ---- Emitter.cpp
  llvm::Value *dim(int64_t d) { return d == kBatch ? batch_ : b_.getInt64(d); }
  // The rows of a matrix operand: every axis but the last ([B, T, k]: B*T rows of k).
  llvm::Value *matRows(const Shape &s) {
    llvm::Value *r = b_.getInt64(1);
    for (size_t i = 0; i + 1 < s.size(); ++i)
      r = b_.CreateMul(r, dim(s[i]));
    return r;
  }
  // The element type of expr's values: a float, or in a vector epilogue a vector of floats.
  llvm::Type *elemTy() { return lane_ ? static_cast<llvm::Type *>(vecTy()) : f32_; }
  llvm::Value *one() { return llvm::ConstantFP::get(elemTy(), 1.0); }
  llvm::Value *zero() { return llvm::ConstantFP::get(elemTy(), 0.0); }
  llvm::Value *select01(llvm::Value *cond) { return b_.CreateSelect(cond, one(), zero()); }
  llvm::FixedVectorType *vecTy() { return llvm::FixedVectorType::get(f32_, lanes()); }
  unsigned lanes() const { return static_cast<unsigned>(machine(target_).lanes); }
  llvm::Value *loadVec(llvm::Value *p, unsigned count) { return maskedLoad(p, firstLanes(count)); }
  // A filter gradient's sum of filter fo, filter row uu, tap v (filterBlocks).
  using SumAt = std::function<llvm::Value *(int64_t fo, int64_t uu, int64_t v)>;
  void setAttrs(llvm::Function *fn);
  llvm::Value *count(const transforms::Count &c);
  std::pair<llvm::Value *, llvm::Value *> extent(const KernelPlan &p);
  llvm::Value *slotPtr(int node);
  llvm::Value *offset(const Shape &shape, const std::vector<llvm::Value *> &idx);
  llvm::Value *load(int node, const std::vector<llvm::Value *> &idx);
  void store(int node, const std::vector<llvm::Value *> &idx, llvm::Value *v);
  int64_t laneStride(int node, const std::vector<llvm::Value *> &idx) const;
  llvm::Value *lanePointers(llvm::Value *p, int64_t stride);
  llvm::Value *callMath(const char *name, llvm::Value *x);
  llvm::Value *expr(int v, const std::vector<llvm::Value *> &idx, bool isRoot = false);
  void loop(llvm::Value *lo, llvm::Value *hi, const std::function<void(llvm::Value *)> &body, bool keep = false);
  void loopNest(const Shape &shape, size_t from, std::vector<llvm::Value *> &idx, const std::function<void()> &body);
  llvm::AllocaInst *entryAlloca(llvm::Type *ty, llvm::Value *count, const char *name);
  void emitKernel(llvm::Function *fn, const Kernel &k);
  void addAliasScopes(llvm::Function *fn);
  void storeRoots(const Kernel &k, const std::vector<llvm::Value *> &idx);
  llvm::Value *concat(std::vector<llvm::Value *> parts);
  llvm::Value *pickLanes(llvm::Value *v, int64_t start, int64_t step);
  llvm::Value *epilogueValue(const Kernel &k, std::vector<llvm::Value *> idx, llvm::Value *value, unsigned count,
                             size_t laneAxis);
  void productEpilogueVec(const Kernel &k, std::vector<llvm::Value *> idx, llvm::Value *value, unsigned count);
  void productEpilogueVec(const Kernel &k, std::vector<llvm::Value *> idx, llvm::Value *value, unsigned count,
                          size_t laneAxis);
  llvm::Value *laneIndex(std::vector<llvm::Value *> &idx, size_t axis);
  void productEpilogue(const Kernel &k, const std::vector<llvm::Value *> &idx, llvm::Value *value);
  std::vector<bool> firstLanes(unsigned count);
  llvm::Constant *mask(const std::vector<bool> &on);
  llvm::Value *maskedLoad(llvm::Value *p, const std::vector<bool> &on);
  void storeVec(llvm::Value *v, llvm::Value *p, unsigned count);
  llvm::Value *imageRow(int node, llvm::Value *b, llvm::Value *c, llvm::Value *h);
  llvm::Value *fma(llvm::Value *a, llvm::Value *b, llvm::Value *c);
  std::vector<llvm::Value *> laneSums(std::vector<llvm::Value *> vs);
  void storeLaneSums(llvm::AllocaInst *acc, int64_t groups, int64_t width, int64_t count,
                     const std::function<llvm::Value *(int64_t)> &at);
  void transposeSquare(std::vector<llvm::Value *> &rows);
  std::pair<llvm::Value *, llvm::Value *> clampRange(llvm::Value *lo, llvm::Value *hi, int64_t n);

  // ---- Pointwise.cpp
  void trailingFlat(const Kernel &k, llvm::Value *lo, llvm::Value *hi, size_t from);
  void flatElementwise(const Kernel &k, llvm::Value *lo, llvm::Value *hi);
  void gatherElementwise(const Kernel &k, llvm::Value *lo, llvm::Value *hi);
  void emitReduce(const Kernel &k, llvm::Value *lo, llvm::Value *hi);
  void leadingReduce(const Kernel &k, llvm::Value *lo, llvm::Value *hi, size_t leading);
  void columnsReduce(const Kernel &k, llvm::Value *lo, llvm::Value *hi);
  void emitRow(const Kernel &k, llvm::Value *lo, llvm::Value *hi);

  // ---- Pool.cpp
  using WindowChunk =
      std::function<void(llvm::Value *b, llvm::Value *c, llvm::Value *i, llvm::Value *q, int64_t count)>;
  struct WindowRow {
    std::vector<llvm::Value *> parts, masks;
    llvm::Value *at; // the row's first column of the windows
  };
  void emitWindow(const Kernel &k, llvm::Value *lo, llvm::Value *hi);
  void poolRows(const Kernel &k, llvm::Value *lo, llvm::Value *hi);
  void poolBackRows(const Kernel &k, llvm::Value *lo, llvm::Value *hi);
  void poolResult(const Kernel &k, llvm::Value *v, const std::vector<llvm::Value *> &at, unsigned count);
  void windowLoops(llvm::Value *lo, llvm::Value *hi, int64_t C, int64_t Ho, int64_t Wo, const WindowChunk &chunk,
                   const std::function<void(llvm::Value *, llvm::Value *)> &plane = nullptr);
  WindowRow windowRow(int node, const ir::Pool2D &p, llvm::Value *b, llvm::Value *c, llvm::Value *i, int64_t u,
                      llvm::Value *q, unsigned count, double fill);
  llvm::Value *poolDivisors(int node, const Shape &xs, llvm::Value *i, llvm::Value *q);
  void addShares(WindowRow &row, llvm::Value *shares, int64_t v, int64_t stride);
  void storeWindowRow(const WindowRow &row);

  // ---- Depthwise.cpp
  void depthwiseConv(const Kernel &k, llvm::Value *lo, llvm::Value *hi);
  void depthwiseBackData(const Kernel &k, llvm::Value *lo, llvm::Value *hi);
  void depthwiseBackFilter(const Kernel &k, llvm::Value *lo, llvm::Value *hi);
  std::vector<llvm::Value *> filterTaps(int wNode, llvm::Value *f);

  // ---- MatMul.cpp
  void rowBlocks(llvm::Value *lo, llvm::Value *hi, int64_t block, llvm::Value *m, int64_t groups, int64_t columns,
                 const std::function<void(llvm::Value *, llvm::Value *, llvm::Value *)> &rows);
  llvm::Value *clampRow(llvm::Value *i0, int64_t r, llvm::Value *count);
  void ifRealRow(int64_t r, llvm::Value *count, const std::function<void()> &body);
  void rowsEpilogue(const Kernel &k, llvm::AllocaInst *rows, llvm::Value *i0, llvm::Value *count, int64_t n,
                    llvm::Value *c0 = nullptr, int64_t columns = 0);
  void tiledMatMul(const Kernel &k, llvm::Value *lo, llvm::Value *hi);
  void packedMatMul(const Kernel &k, llvm::Value *lo, llvm::Value *hi);
  void dotMatMul(const Kernel &k, llvm::Value *lo, llvm::Value *hi);
  void generalMatMul(const Kernel &k, llvm::Value *lo, llvm::Value *hi);

  // ---- Conv.cpp
  std::pair<llvm::Value *, llvm::Value *> validRange(llvm::Value *u, int64_t inSize, int64_t outSize, int64_t kernel,
                                                     int64_t stride, int64_t padding);
  std::vector<bool> columnLanes(int64_t chunk, int64_t width, int64_t shift, int64_t inWidth);
  llvm::AllocaInst *filtersLast(int wNode);
  void channelConv(const Kernel &k, int conv, llvm::Value *lo, llvm::Value *hi, bool flipped);
  void channelBackData(const Kernel &k, llvm::Value *lo, llvm::Value *hi);
  void transposeImage(int yNode, llvm::Value *b, llvm::Value *to);
  void convBlocks(llvm::Value *lo, llvm::Value *hi, int64_t O, int64_t ob, int64_t R, int64_t rb,
                  const std::function<void(llvm::Value *, llvm::Value *, llvm::Value *, int64_t)> &block);
  std::pair<llvm::Value *, llvm::Value *> tapRows(llvm::Value *r0, int64_t rows, int64_t pad, int64_t H, int64_t Kh,
                                                  int64_t stride = 1);
  llvm::Value *rowOrZeros(int node, llvm::Value *b, llvm::Value *c, llvm::Value *h, int64_t pad);
  llvm::Value *zeroRow(int64_t width, int64_t margin);
  void rowConv(const Kernel &k, int outNode, int inNode, int wNode, bool flipped, int64_t padH, int64_t padW,
               llvm::Value *lo, llvm::Value *hi);
  void directConv(const Kernel &k, llvm::Value *lo, llvm::Value *hi);

  // ---- ConvGemm.cpp
  void gemmConv(const Kernel &k, int conv, llvm::Value *lo, llvm::Value *hi, bool flipped);
  void gemmBackFilter(const Kernel &k, llvm::Value *lo, llvm::Value *hi);

  // ---- ConvFilter.cpp
  void planeBackFilter(const Kernel &k, llvm::Value *lo, llvm::Value *hi);
  void channelBackFilter(const Kernel &k, llvm::Value *lo, llvm::Value *hi);
  void rowBackFilter(const Kernel &k, llvm::Value *lo, llvm::Value *hi);
  void filterBlocks(const Kernel &k, llvm::Value *lo, llvm::Value *hi,
                    const std::function<void(llvm::Value *b, llvm::Value *f0, llvm::Value *c, int64_t u0, int64_t ub,
                                             const SumAt &sum)> &perSample);

  llvm::Module &m_;
  llvm::LLVMContext &c_;
  llvm::IRBuilder<> b_;
  const Function &f_;
  const Schedule &s_;
  const std::vector<KernelPlan> &plans_;
  const KernelPlan *plan_ = nullptr; // the kernel being emitted
  const TargetInfo &target_;
  llvm::Type *i64_, *f32_, *ptr_;
  llvm::BasicBlock *entry_ = nullptr;
  llvm::Value *ctx_ = nullptr, *batch_ = nullptr;
  std::map<int, llvm::Value *> slotPtrs_;
  std::vector<int> kernelSlots_;                    // the kernel's buffers, in its context's order: slots
  std::map<int, llvm::GlobalVariable *> constants_; // Constant nodes' arrays
  llvm::AllocaInst *laneBuffer_ = nullptr;          // a kernel's one vector of results taken lane by lane (pooling)
  std::map<std::pair<int, int>, llvm::GlobalVariable *> poolDivisors_; // avg pooling's divisors per (node, axis)
  std::map<int64_t, llvm::GlobalVariable *> zeroRows_;                 // zeroRow's arrays, by size
  int fusedProduct_ = -1;
  llvm::Value *productValue_ = nullptr;
  llvm::Value *flatOffset_ = nullptr; // flatElementwise: the element's offset in every tensor
  struct Gather {
    Shape shape;                    // the root's
    std::vector<llvm::Value *> idx; // its index, taken apart from the offset
    llvm::Value *offset = nullptr;  // the offset of a tensor of the root's shape read at idx
  } gather_;                        // gatherElementwise
  struct Trailing {
    Shape shape;                          // the root's
    size_t from = 0;                      // its axes from here on are one run
    int64_t run = 0;                      // of this many elements
    llvm::Value *t = nullptr;             // the position in the run
  } trailing_;                            // trailingFlat
  llvm::Value *lane_ = nullptr;           // a vector epilogue: the column of its first lane
  unsigned laneCount_ = 0;                // and how many lanes are columns of C
  std::map<int, llvm::Value *> computed_; // storeRoots: the kernel's other roots at this element
};

} // namespace soma::codegen
