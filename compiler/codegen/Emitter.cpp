// Kernel emission. Values are computed by `expr`, which walks the inlined tree of a node at a
// multi-index: materialized nodes are loads, everything else is computed in registers. The
// switch in `expr` has no default: each op in Ops.def states how it is emitted.
#include "codegen/Emitter.h"

#include <llvm/Passes/PassBuilder.h>
#include <llvm/Transforms/IPO/MergeFunctions.h>

#include <llvm/Analysis/ValueTracking.h>
#include <llvm/IR/IRBuilder.h>
#include <llvm/IR/InstIterator.h>
#include <llvm/IR/IntrinsicInst.h>
#include <llvm/IR/Intrinsics.h>
#include <llvm/IR/MDBuilder.h>
#include <llvm/IR/Module.h>

#include <algorithm>
#include <cassert>
#include <functional>
#include <map>

namespace soma::codegen {

using namespace ir;
using transforms::Kernel;
using transforms::KernelPlan;
using transforms::Schedule;
using transforms::Strategy;

std::vector<FunctionEmitter::Emitted> FunctionEmitter::emitKernels() {
  auto *kernelTy = llvm::FunctionType::get(b_.getVoidTy(), {ptr_, i64_, i64_}, false);
  std::vector<Emitted> kernels;
  for (size_t k = 0; k < s_.kernels.size(); ++k) {
    plan_ = &plans_[k];
    if (s_.kernels[k].kind == Kernel::Kind::Loop) { // run by the pass itself (emitLoop)
      kernels.push_back({nullptr, plan_, {}});
      continue;
    }
    auto *fn =
        llvm::Function::Create(kernelTy, llvm::Function::InternalLinkage, f_.name + ".k" + std::to_string(k), m_);
    setAttrs(fn);
    // Only soma_rt_parallel_for takes a kernel's address, and never compares it: kernels that
    // MergeFunctions finds equal become one function, with no thunk left that O3 would inline.
    fn->setUnnamedAddr(llvm::GlobalValue::UnnamedAddr::Global);
    emitKernel(fn, s_.kernels[k]);
    kernels.push_back({fn, plan_, kernelSlots_});
  }
  return kernels;
}

void FunctionEmitter::emit() {
  std::vector<Emitted> kernels = emitKernels();
  auto *stepTy = llvm::FunctionType::get(b_.getVoidTy(), {ptr_}, false);
  auto *step = llvm::Function::Create(stepTy, llvm::Function::ExternalLinkage, f_.name, m_);
  setAttrs(step);
  // The pass itself is straight-line code that fills each kernel's context and calls it: nothing
  // in it is worth optimizing, and instruction selection at -O0 compiles it several times faster.
  step->addFnAttr(llvm::Attribute::OptimizeNone);
  step->addFnAttr(llvm::Attribute::NoInline);
  auto *entry = llvm::BasicBlock::Create(c_, "entry", step);
  b_.SetInsertPoint(entry);
  ctx_ = step->getArg(0);
  batch_ = b_.CreateLoad(i64_, ctx_, "batch");
  // A pass over no samples does nothing (the runtime never asks for one): kernels may then take
  // the batch as at least 1, and LLVM keeps no copy of their loops for an empty batch.
  auto *run = llvm::BasicBlock::Create(c_, "run", step), *done = llvm::BasicBlock::Create(c_, "done", step);
  b_.CreateCondBr(b_.CreateICmpSGE(batch_, b_.getInt64(1)), run, done);
  b_.SetInsertPoint(done);
  b_.CreateRetVoid();
  b_.SetInsertPoint(run);
  entry_ = entry;
  // Each kernel reads its buffers from a context of its own, numbered in the order it uses them,
  // so that the same computation on other buffers (a forward kernel of both the forward pass and
  // the training step) is the same function, compiled once (mergeKernels).
  for (size_t k = 0; k < kernels.size(); ++k) {
    if (kernels[k].fn)
      callKernel(kernels[k],
                 [&](int slot) { return b_.CreateLoad(ptr_, b_.CreateConstGEP1_64(i64_, ctx_, 1 + slot)); });
    else
      emitLoop(s_.kernels[k], *kernels[k].plan);
  }
  b_.CreateRetVoid();
}

void FunctionEmitter::callKernel(const Emitted &e, const std::function<llvm::Value *(int slot)> &pointer) {
  llvm::FunctionCallee parFor = m_.getOrInsertFunction(
      "soma_rt_parallel_for", llvm::FunctionType::get(b_.getVoidTy(), {ptr_, ptr_, i64_, i64_}, false));
  llvm::AllocaInst *local = llvm::IRBuilder<>(entry_->getTerminator())
                                .CreateAlloca(i64_, b_.getInt64(static_cast<int64_t>(1 + e.slots.size())), "ctx");
  b_.CreateStore(batch_, local);
  for (size_t j = 0; j < e.slots.size(); ++j)
    b_.CreateStore(pointer(e.slots[j]), b_.CreateConstGEP1_64(i64_, local, static_cast<int64_t>(1 + j)));
  auto [rows, costPerRow] = extent(*e.plan);
  b_.CreateCall(parFor, {e.fn, local, rows, costPerRow});
}

void FunctionEmitter::setAttrs(llvm::Function *fn) {
  fn->addFnAttr(llvm::Attribute::NoUnwind);
  if (!target_.cpu.empty())
    fn->addFnAttr("target-cpu", target_.cpu);
  if (!target_.features.empty())
    fn->addFnAttr("target-features", target_.features);
  fn->addFnAttr("prefer-vector-width", std::to_string(target_.preferVectorWidth));
}

// A plan's count at this call's batch size.
llvm::Value *FunctionEmitter::count(const transforms::Count &c) {
  llvm::Value *v = b_.getInt64(c.factor);
  for (int i = 0; i < c.batchPower; ++i)
    v = b_.CreateMul(v, batch_);
  if (c.divisor > 1)
    v = b_.CreateSDiv(b_.CreateAdd(v, b_.getInt64(c.divisor - 1)), b_.getInt64(c.divisor));
  return c.times > 1 ? b_.CreateMul(v, b_.getInt64(c.times)) : v;
}

// The plan's work items and the work of each (rounded up), for the thread split.
std::pair<llvm::Value *, llvm::Value *> FunctionEmitter::extent(const KernelPlan &p) {
  llvm::Value *items = count(p.items), *work = count(p.work);
  llvm::Value *some = b_.CreateSelect(b_.CreateICmpSGT(items, b_.getInt64(0)), items, b_.getInt64(1));
  return {items, b_.CreateSDiv(b_.CreateAdd(work, b_.CreateSub(some, b_.getInt64(1))), some)};
}

llvm::Value *FunctionEmitter::slotPtr(int node) {
  int slot = s_.slot[node];
  assert(slot >= 0);
  auto it = slotPtrs_.find(slot);
  if (it != slotPtrs_.end())
    return it->second;
  llvm::IRBuilderBase::InsertPointGuard guard(b_);
  b_.SetInsertPoint(entry_->getTerminator());             // hoisted: loaded once per call
  auto local = static_cast<int64_t>(kernelSlots_.size()); // the kernel's own numbering (emit)
  kernelSlots_.push_back(slot);
  llvm::Value *p = b_.CreateLoad(ptr_, b_.CreateConstGEP1_64(i64_, ctx_, 1 + local), "buffer" + std::to_string(local));
  slotPtrs_[slot] = p;
  return p;
}

llvm::Value *FunctionEmitter::offset(const Shape &shape, const std::vector<llvm::Value *> &idx) {
  if (flatOffset_ && !shape.empty()) // flatElementwise: every tensor has the loop's shape
    return flatOffset_;
  if (gather_.offset && shape == gather_.shape && idx == gather_.idx) // gatherElementwise, at the root's index
    return gather_.offset;
  if (trailing_.t && shape == trailing_.shape) { // along a run: the outer axes (if any), then the run
    if (trailing_.from == 0)
      return trailing_.t;
    llvm::Value *off = idx[0];
    for (size_t i = 1; i < trailing_.from; ++i)
      off = b_.CreateAdd(b_.CreateMul(off, dim(shape[i])), idx[i]);
    return b_.CreateAdd(b_.CreateMul(off, b_.getInt64(trailing_.run)), trailing_.t);
  }
  // Fewer indices than axes: the first spans the leading axes, as rows (a matmul's [B, T, k] is
  // B*T rows of k).
  size_t used = std::min(shape.size(), idx.size()), extra = shape.size() - used;
  llvm::Value *off = b_.getInt64(0);
  for (size_t i = 0; i < used; ++i)
    off = i == 0 ? idx[0] : b_.CreateAdd(b_.CreateMul(off, dim(shape[i + extra])), idx[i]);
  return off;
}

// In a vector epilogue (lane_ set), a tensor indexed by the lane index is read as a vector of
// lanes: contiguous when it is the last index, else gathered with the stride of its axis; any
// other tensor is read once and repeated in every lane.
llvm::Value *FunctionEmitter::load(int node, const std::vector<llvm::Value *> &idx) {
  llvm::Value *p = b_.CreateGEP(f32_, slotPtr(node), offset(f_.nodes[node].shape, idx));
  if (lane_) {
    if (int64_t stride = laneStride(node, idx); stride == 1)
      return loadVec(p, laneCount_);
    else if (stride > 1)
      return b_.CreateMaskedGather(vecTy(), lanePointers(p, stride), llvm::Align(4), mask(firstLanes(laneCount_)),
                                   llvm::Constant::getNullValue(vecTy()));
  }
  llvm::Value *v = b_.CreateLoad(f32_, p);
  return lane_ ? b_.CreateVectorSplat(lanes(), v) : v;
}

void FunctionEmitter::store(int node, const std::vector<llvm::Value *> &idx, llvm::Value *v) {
  llvm::Value *p = b_.CreateGEP(f32_, slotPtr(node), offset(f_.nodes[node].shape, idx));
  if (!lane_)
    b_.CreateStore(v, p);
  else if (int64_t stride = laneStride(node, idx); stride == 1)
    storeVec(v, p, laneCount_);
  else
    b_.CreateMaskedScatter(v, lanePointers(p, stride), llvm::Align(4), mask(firstLanes(laneCount_)));
}

// The distance between consecutive lanes of a vector epilogue in `node` read at idx: 1 when the
// lane index is the last, the product of the later extents otherwise, 0 when it is not there.
int64_t FunctionEmitter::laneStride(int node, const std::vector<llvm::Value *> &idx) const {
  const Shape &shape = f_.nodes[node].shape;
  if (trailing_.t && lane_ == trailing_.t && shape == trailing_.shape) // along the run: contiguous
    return 1;
  size_t extra = shape.size() - std::min(shape.size(), idx.size()); // as offset(): leading axes as rows
  for (size_t a = 0; a < idx.size(); ++a)
    if (idx[a] == lane_) {
      int64_t stride = 1;
      for (size_t later = a + 1 + extra; later < shape.size(); ++later)
        stride *= shape[later];
      return stride;
    }
  return 0;
}

llvm::Value *FunctionEmitter::lanePointers(llvm::Value *p, int64_t stride) {
  std::vector<llvm::Constant *> steps;
  for (unsigned l = 0; l < lanes(); ++l)
    steps.push_back(b_.getInt64(static_cast<int64_t>(l) * stride));
  return b_.CreateGEP(f32_, p, llvm::ConstantVector::get(steps));
}

// A float function of libm, or in a vector epilogue its vector variant in glibc's libmvec
// (the names of the x86-64 vector ABI: b = SSE, d = AVX2, e = AVX-512).
llvm::Value *FunctionEmitter::callMath(const char *name, llvm::Value *x) {
  std::string callee = name;
  if (lane_)
    callee = std::string(lanes() == 16 ? "_ZGVeN16v_" : lanes() == 8 ? "_ZGVdN8v_" : "_ZGVbN4v_") + name;
  llvm::FunctionCallee fn = m_.getOrInsertFunction(callee, llvm::FunctionType::get(elemTy(), {elemTy()}, false));
  if (auto *decl = llvm::dyn_cast<llvm::Function>(fn.getCallee())) {
    decl->setDoesNotAccessMemory(); // as with -fno-math-errno: lets the vectorizer use libmvec
    decl->setDoesNotThrow();
  }
  return b_.CreateCall(fn, {x});
}

// The value of node `v` at multi-index `idx`, computing inlined nodes in registers.
llvm::Value *FunctionEmitter::expr(int v, const std::vector<llvm::Value *> &idx, bool isRoot) {
  const Node &n = f_.nodes[v];
  if (v == fusedProduct_)
    return productValue_;
  if (auto it = computed_.find(v); it != computed_.end())
    return it->second;
  if (!isRoot && s_.materialized[v])
    return load(v, n.shape.empty() ? std::vector<llvm::Value *>{} : idx);
  auto operand = [&](int k) {
    int o = n.operands[k];
    return expr(o, f_.nodes[o].shape.empty() ? std::vector<llvm::Value *>{} : idx);
  };
  switch (n.op) {
  case Op::Input:
  case Op::MatMul:
  case Op::Conv2D:
  case Op::Conv2DBackData:
  case Op::Conv2DBackFilter:
  case Op::Reshape:
  case Op::ReduceSum:
  case Op::ReduceMax:
  case Op::SoftmaxXent:
  case Op::SoftmaxXentGrad:
  case Op::MaxPool2D:
  case Op::MaxPool2DBack:
  case Op::MaxPool2DShare:
  case Op::AvgPool2D:
  case Op::AvgPool2DBack:
  case Op::Loop:
  case Op::LoopResult:
    assert(false && "materialized ops are loaded, never inlined");
    return nullptr;
  case Op::Fill:
    return llvm::ConstantFP::get(elemTy(), n.attrs.value);
  case Op::Constant: { // a private global array, indexed like a buffer
    llvm::GlobalVariable *&global = constants_[v];
    if (!global) {
      std::vector<float> values(n.attrs.values.begin(), n.attrs.values.end());
      auto *init = llvm::ConstantDataArray::get(c_, values);
      global = privateConstant(m_, f_.name + ".const" + std::to_string(v), init, 4);
    }
    llvm::Value *p = b_.CreateGEP(f32_, global, offset(n.shape, idx));
    return b_.CreateLoad(f32_, p);
  }
  case Op::Neg:
    return b_.CreateFNeg(operand(0));
  case Op::Exp:
    return callMath("expf", operand(0));
  case Op::Log:
    return callMath("logf", operand(0));
  case Op::Sqrt:
    return b_.CreateUnaryIntrinsic(llvm::Intrinsic::sqrt, operand(0));
  case Op::Expm1:
    return callMath("expm1f", operand(0));
  case Op::Log1p:
    return callMath("log1pf", operand(0));
  case Op::Erf:
    return callMath("erff", operand(0));
  case Op::Erfc:
    return callMath("erfcf", operand(0));
  case Op::Sigmoid: // 1 / (1 + e^-x)
    return b_.CreateFDiv(one(), b_.CreateFAdd(one(), callMath("expf", b_.CreateFNeg(operand(0)))));
  case Op::Tanh: // glibc's (vector) tanhf: a few ulp everywhere, where 1 - 2 / (e^2x + 1) loses
                 // all relative accuracy near 0
    return callMath("tanhf", operand(0));
  case Op::Relu: {
    llvm::Value *x = operand(0);
    return b_.CreateSelect(b_.CreateFCmpOGT(x, zero()), x, zero());
  }
  case Op::Step:
    return select01(b_.CreateFCmpOGT(operand(0), zero()));
  case Op::Add:
    return b_.CreateFAdd(operand(0), operand(1));
  case Op::Sub:
    return b_.CreateFSub(operand(0), operand(1));
  case Op::Mul:
    return b_.CreateFMul(operand(0), operand(1));
  case Op::Div:
    return b_.CreateFDiv(operand(0), operand(1));
  case Op::Equal:
    return select01(b_.CreateFCmpOEQ(operand(0), operand(1)));
  case Op::Broadcast: {
    std::vector<llvm::Value *> inner;
    for (size_t i = 0; i < idx.size(); ++i)
      if (!(n.attrs.axes >> i & 1))
        inner.push_back(idx[i]);
    return expr(n.operands[0], inner);
  }
  case Op::Random: { // ir::randomUniform, on 32-bit integers
    llvm::Type *i32 = b_.getInt32Ty();
    auto c = [&](uint32_t v) { return llvm::ConstantInt::get(i32, v); };
    llvm::Value *position = b_.CreateTrunc(offset(n.shape, idx), i32);
    llvm::Value *seed = b_.CreateFPToUI(operand(0), i32);
    using H = RandomHash;
    llvm::Value *h =
        b_.CreateXor(b_.CreateXor(b_.CreateMul(position, c(H::kPosition)), b_.CreateMul(seed, c(H::kSeed))),
                     c(static_cast<uint32_t>(n.attrs.value) * H::kSalt));
    h = b_.CreateXor(h, b_.CreateLShr(h, 16));
    h = b_.CreateMul(h, c(H::kMix1));
    h = b_.CreateXor(h, b_.CreateLShr(h, 13));
    h = b_.CreateMul(h, c(H::kMix2));
    h = b_.CreateXor(h, b_.CreateLShr(h, 16));
    return b_.CreateFMul(b_.CreateUIToFP(b_.CreateLShr(h, 8), f32_), llvm::ConstantFP::get(f32_, 0x1.0p-24));
  }
  case Op::Transpose: {
    std::vector<llvm::Value *> from(idx.size());
    for (size_t k = 0; k < idx.size(); ++k)
      from[static_cast<size_t>(n.attrs.perm[k])] = idx[k];
    return expr(n.operands[0], from);
  }
  case Op::Slice: {
    std::vector<llvm::Value *> from = idx;
    size_t ax = static_cast<size_t>(n.attrs.axis);
    from[ax] = b_.CreateAdd(idx[ax], b_.getInt64(n.attrs.offset));
    return expr(n.operands[0], from);
  }
  case Op::Pad: { // the index is clamped into the operand, so the load is always in bounds
    std::vector<llvm::Value *> from = idx;
    size_t ax = static_cast<size_t>(n.attrs.axis);
    int64_t extent = f_.nodes[n.operands[0]].shape[ax];
    llvm::Value *j = b_.CreateSub(idx[ax], b_.getInt64(n.attrs.offset));
    llvm::Value *inside = b_.CreateAnd(b_.CreateICmpSGE(j, b_.getInt64(0)), b_.CreateICmpSLT(j, b_.getInt64(extent)));
    from[ax] = b_.CreateSelect(inside, j, b_.getInt64(0));
    return b_.CreateSelect(inside, expr(n.operands[0], from), zero());
  }
  case Op::SpaceToDepth: { // (n, (c*p + a)*p + e, r, q) reads (n, c, r*s + a, q*s + e)
    int64_t s = n.attrs.stride, p = n.attrs.offset;
    llvm::Value *ch = idx[1], *pp = b_.getInt64(p);
    llvm::Value *c = b_.CreateSDiv(ch, b_.getInt64(p * p)), *a = b_.CreateSRem(b_.CreateSDiv(ch, pp), pp),
                *e = b_.CreateSRem(ch, pp);
    return expr(n.operands[0], {idx[0], c, b_.CreateAdd(b_.CreateMul(idx[2], b_.getInt64(s)), a),
                                b_.CreateAdd(b_.CreateMul(idx[3], b_.getInt64(s)), e)});
  }
  case Op::DepthToSpace: { // (n, c, h, w) reads phase (h % s, w % s) when it is kept, else 0
    int64_t s = n.attrs.stride, p = n.attrs.offset;
    llvm::Value *ss = b_.getInt64(s), *pp = b_.getInt64(p);
    llvm::Value *a = b_.CreateSRem(idx[2], ss), *e = b_.CreateSRem(idx[3], ss);
    llvm::Value *inside = b_.CreateAnd(b_.CreateICmpSLT(a, pp), b_.CreateICmpSLT(e, pp));
    llvm::Value *last = b_.getInt64(p - 1); // a kept phase for the index, read only when inside
    a = b_.CreateSelect(inside, a, last);
    e = b_.CreateSelect(inside, e, last);
    llvm::Value *ch = b_.CreateAdd(b_.CreateMul(b_.CreateAdd(b_.CreateMul(idx[1], pp), a), pp), e);
    llvm::Value *v = expr(n.operands[0], {idx[0], ch, b_.CreateSDiv(idx[2], ss), b_.CreateSDiv(idx[3], ss)});
    return b_.CreateSelect(inside, v, zero());
  }
  case Op::Gather: { // row ids[..] of the table; 0 for an id that names no row (NaN included)
    std::vector<llvm::Value *> at(idx.begin(), idx.end() - 1);
    llvm::Value *id = expr(n.operands[0], at);
    llvm::Value *last = llvm::ConstantFP::get(f32_, static_cast<double>(f_.nodes[n.operands[1]].shape[0] - 1));
    llvm::Value *inside = b_.CreateAnd(b_.CreateFCmpOGE(id, zero()), b_.CreateFCmpOLE(id, last));
    llvm::Value *row = b_.CreateFPToSI(b_.CreateSelect(inside, id, zero()), b_.getInt64Ty()); // never poison
    llvm::Value *whole = b_.CreateFCmpOEQ(b_.CreateSIToFP(row, f32_), id);
    return b_.CreateSelect(b_.CreateAnd(inside, whole), expr(n.operands[1], {row, idx.back()}), zero());
  }
  case Op::OneHot: {
    std::vector<llvm::Value *> at(idx.begin(), idx.end() - 1); // the class is the last index
    llvm::Value *label = expr(n.operands[0], at);
    return select01(b_.CreateFCmpOEQ(label, b_.CreateSIToFP(idx.back(), f32_)));
  }
  }
  return nullptr;
}

// for (iv = lo; iv < hi; ++iv) body(iv)
// `keep`: the loop is left as written (not vectorized): for micro-kernels that are vector code
// already. No loop is unrolled by LLVM (optimize() turns unrolling off).
void FunctionEmitter::loop(llvm::Value *lo, llvm::Value *hi, const std::function<void(llvm::Value *)> &body,
                           bool keep) {
  llvm::Function *fn = b_.GetInsertBlock()->getParent();
  llvm::BasicBlock *pre = b_.GetInsertBlock();
  auto *header = llvm::BasicBlock::Create(c_, "loop", fn);
  auto *bodyBB = llvm::BasicBlock::Create(c_, "body", fn);
  auto *exit = llvm::BasicBlock::Create(c_, "exit", fn);
  b_.CreateCondBr(b_.CreateICmpSLT(lo, hi), header, exit);
  b_.SetInsertPoint(header);
  llvm::PHINode *iv = b_.CreatePHI(i64_, 2, "i");
  iv->addIncoming(lo, pre);
  b_.CreateBr(bodyBB);
  b_.SetInsertPoint(bodyBB);
  body(iv);
  llvm::Value *next = b_.CreateAdd(iv, b_.getInt64(1), "", true, true);
  iv->addIncoming(next, b_.GetInsertBlock());
  llvm::BranchInst *latch = b_.CreateCondBr(b_.CreateICmpSLT(next, hi), header, exit);
  if (keep) {
    llvm::Metadata *vectorize = llvm::MDNode::get(
        c_, {llvm::MDString::get(c_, "llvm.loop.vectorize.enable"), llvm::ConstantAsMetadata::get(b_.getFalse())});
    llvm::MDNode *id = llvm::MDNode::getDistinct(c_, {nullptr, vectorize});
    id->replaceOperandWith(0, id);
    latch->setMetadata(llvm::LLVMContext::MD_loop, id);
  }
  b_.SetInsertPoint(exit);
}

// Nested loops over `shape` (from axis `from`), outermost first.
void FunctionEmitter::loopNest(const Shape &shape, size_t from, std::vector<llvm::Value *> &idx,
                               const std::function<void()> &body) {
  if (from == shape.size()) {
    body();
    return;
  }
  loop(b_.getInt64(0), dim(shape[from]), [&](llvm::Value *iv) {
    idx.push_back(iv);
    loopNest(shape, from + 1, idx, body);
    idx.pop_back();
  });
}

llvm::AllocaInst *FunctionEmitter::entryAlloca(llvm::Type *ty, llvm::Value *count, const char *name) {
  llvm::IRBuilderBase::InsertPointGuard guard(b_);
  b_.SetInsertPoint(entry_->getTerminator());
  return b_.CreateAlloca(ty, count, name);
}

void FunctionEmitter::emitKernel(llvm::Function *fn, const Kernel &k) {
  slotPtrs_.clear();
  kernelSlots_.clear();
  fusedProduct_ = -1;
  laneBuffer_ = nullptr;
  entry_ = llvm::BasicBlock::Create(c_, "entry", fn);
  auto *start = llvm::BasicBlock::Create(c_, "start", fn);
  b_.SetInsertPoint(entry_);
  ctx_ = fn->getArg(0);
  batch_ = b_.CreateLoad(i64_, ctx_, "batch");
  b_.CreateAssumption(b_.CreateICmpSGE(batch_, b_.getInt64(1))); // the pass returns before an empty batch
  b_.CreateBr(start);
  b_.SetInsertPoint(start);
  llvm::Value *lo = fn->getArg(1), *hi = fn->getArg(2);
  const Node &root = f_.nodes[k.root];
  int product = k.product >= 0 ? k.product : k.root;
  const Node &n = f_.nodes[product]; // a product's, convolution's or pooling's node
  switch (plan_->strategy) {
  case Strategy::Scalar:
    storeRoots(k, {});
    break;
  case Strategy::Flat:
    flatElementwise(k, lo, hi);
    break;
  case Strategy::Gather:
    gatherElementwise(k, lo, hi);
    break;
  case Strategy::Trailing:
    trailingFlat(k, lo, hi, plan_->from);
    break;
  case Strategy::Nest:
    loop(lo, hi, [&](llvm::Value *i) {
      std::vector<llvm::Value *> idx{i};
      loopNest(root.shape, 1, idx, [&] { storeRoots(k, idx); });
    });
    break;
  case Strategy::ReduceNest:
  case Strategy::ReduceRuns:
  case Strategy::ReduceTrailing:
    emitReduce(k, lo, hi);
    break;
  case Strategy::ReduceLeading:
    leadingReduce(k, lo, hi, plan_->from);
    break;
  case Strategy::ReduceColumns:
    columnsReduce(k, lo, hi);
    break;
  case Strategy::SoftmaxRows:
    emitRow(k, lo, hi);
    break;
  case Strategy::PoolLanes:
    emitWindow(k, lo, hi);
    break;
  case Strategy::PoolRows:
    poolRows(k, lo, hi);
    break;
  case Strategy::PoolBackRows:
    poolBackRows(k, lo, hi);
    break;
  case Strategy::MatMulTiled:
    tiledMatMul(k, lo, hi);
    break;
  case Strategy::MatMulPacked:
    packedMatMul(k, lo, hi);
    break;
  case Strategy::MatMulDot:
    dotMatMul(k, lo, hi);
    break;
  case Strategy::MatMulLoops:
    generalMatMul(k, lo, hi);
    break;
  case Strategy::ConvChannelLanes:
    channelConv(k, product, lo, hi, false);
    break;
  case Strategy::ConvDataChannelLanes:
    channelConv(k, product, lo, hi, true);
    break;
  case Strategy::ConvRows:
    rowConv(k, product, n.operands[0], n.operands[1], false, n.attrs.conv.padding, n.attrs.conv.padding, lo, hi);
    break;
  case Strategy::ConvDataFilterLanes:
    channelBackData(k, lo, hi);
    break;
  case Strategy::ConvDataRows: { // a correlation with the flipped filter and "full" padding
    const Shape &ws = f_.nodes[n.operands[1]].shape;
    const ConvParams &c = n.attrs.conv;
    rowConv(k, product, n.operands[0], n.operands[1], true, (ws[2] - 1) * c.dilation[0] - c.padding,
            (ws[3] - 1) * c.dilation[1] - c.padding, lo, hi);
    break;
  }
  case Strategy::ConvFilterLanes:
    channelBackFilter(k, lo, hi);
    break;
  case Strategy::ConvFilterPlanes:
    planeBackFilter(k, lo, hi);
    break;
  case Strategy::ConvFilterRows:
    rowBackFilter(k, lo, hi);
    break;
  case Strategy::ConvGemm:
    gemmConv(k, product, lo, hi, false);
    break;
  case Strategy::ConvDataGemm:
    gemmConv(k, product, lo, hi, true);
    break;
  case Strategy::ConvFilterGemm:
    gemmBackFilter(k, lo, hi);
    break;
  case Strategy::ConvDepthwise:
    depthwiseConv(k, lo, hi);
    break;
  case Strategy::ConvDataDepthwise:
    depthwiseBackData(k, lo, hi);
    break;
  case Strategy::ConvFilterDepthwise:
    depthwiseBackFilter(k, lo, hi);
    break;
  case Strategy::LoopSteps:
    assert(false && "a loop runs in the pass itself");
    break;
  case Strategy::ConvLoops:
    directConv(k, lo, hi);
    break;
  }
  b_.CreateRetVoid();
  addAliasScopes(fn);
}

// Tells LLVM what the schedule knows: the buffers of different slots never overlap (the
// arena gives every slot live during a kernel its own range; bound inputs are separate
// allocations), and the context that holds their addresses is none of them. Every access to
// memory gets the scope of its slot and is declared apart from every other scope. Without this,
// loops over small rows are unrolled behind runtime overlap checks (and compile slowly).
void FunctionEmitter::addAliasScopes(llvm::Function *fn) {
  std::map<const llvm::Value *, int> slotOf; // a slot's base address -> its slot; the context is -1
  for (auto [slot, p] : slotPtrs_)
    slotOf[p] = slot;
  slotOf[ctx_] = -1;
  llvm::MDBuilder mdb(c_);
  llvm::MDNode *domain = mdb.createAnonymousAliasScopeDomain(fn->getName());
  std::map<int, llvm::MDNode *> scopes;
  std::vector<std::pair<llvm::Instruction *, int>> accesses;
  for (llvm::Instruction &inst : llvm::instructions(*fn)) {
    llvm::Value *ptr = nullptr;
    if (auto *ld = llvm::dyn_cast<llvm::LoadInst>(&inst))
      ptr = ld->getPointerOperand();
    else if (auto *st = llvm::dyn_cast<llvm::StoreInst>(&inst))
      ptr = st->getPointerOperand();
    else if (auto *call = llvm::dyn_cast<llvm::IntrinsicInst>(&inst)) {
      if (call->getIntrinsicID() == llvm::Intrinsic::masked_load)
        ptr = call->getArgOperand(0);
      else if (call->getIntrinsicID() == llvm::Intrinsic::masked_store)
        ptr = call->getArgOperand(1);
    }
    if (!ptr)
      continue;
    auto it = slotOf.find(llvm::getUnderlyingObject(ptr, 0));
    if (it == slotOf.end()) // allocas and constant arrays: LLVM sees them apart already
      continue;
    if (!scopes.count(it->second))
      scopes[it->second] = mdb.createAnonymousAliasScope(domain);
    accesses.push_back({&inst, it->second});
  }
  for (auto [inst, slot] : accesses) {
    std::vector<llvm::Metadata *> others;
    for (auto [s, scope] : scopes)
      if (s != slot)
        others.push_back(scope);
    inst->setMetadata(llvm::LLVMContext::MD_alias_scope, llvm::MDNode::get(c_, {scopes[slot]}));
    inst->setMetadata(llvm::LLVMContext::MD_noalias, llvm::MDNode::get(c_, others));
  }
}

// An elementwise kernel's values at idx: its other roots first (kept in registers for the root,
// which reads them), then the root; stores after every value is computed, so that an update in
// place never reads what this element already wrote.
void FunctionEmitter::storeRoots(const Kernel &k, const std::vector<llvm::Value *> &idx) {
  std::vector<llvm::Value *> values;
  for (int r : k.alsoRoots) {
    values.push_back(expr(r, idx, true));
    computed_[r] = values.back();
  }
  llvm::Value *root = expr(k.root, idx, true);
  for (size_t i = 0; i < k.alsoRoots.size(); ++i)
    store(k.alsoRoots[i], idx, values[i]);
  store(k.root, idx, root);
  computed_.clear();
}

llvm::GlobalVariable *privateConstant(llvm::Module &m, const std::string &name, llvm::Constant *init, unsigned align) {
  auto *g = llvm::cast<llvm::GlobalVariable>(m.getOrInsertGlobal(name, init->getType()));
  g->setInitializer(init);
  g->setConstant(true);
  g->setLinkage(llvm::GlobalValue::PrivateLinkage);
  g->setAlignment(llvm::Align(align));
  return g;
}

// Kernels that are the same function (the forward pass's and the training step's convolution of
// a layer, reading their buffers from contexts of their own) become one, before the optimizer:
// each is compiled once.
namespace {
void mergeKernels(llvm::Module &m) {
  llvm::LoopAnalysisManager lam;
  llvm::FunctionAnalysisManager fam;
  llvm::CGSCCAnalysisManager cgam;
  llvm::ModuleAnalysisManager mam;
  llvm::PassBuilder pb;
  pb.registerModuleAnalyses(mam);
  pb.registerCGSCCAnalyses(cgam);
  pb.registerFunctionAnalyses(fam);
  pb.registerLoopAnalyses(lam);
  pb.crossRegisterProxies(lam, fam, cgam, mam);
  llvm::ModulePassManager mpm;
  mpm.addPass(llvm::MergeFunctionsPass());
  mpm.run(m, mam);
}
} // namespace

transforms::Machine machine(const TargetInfo &target) {
  return {std::max(4, target.preferVectorWidth / 32), target.vectorRegisters, target.l2Bytes};
}

std::unique_ptr<llvm::Module> emitModule(llvm::LLVMContext &ctx, const std::vector<FunctionToEmit> &fns,
                                         const TargetInfo &target) {
  auto m = std::make_unique<llvm::Module>("soma", ctx);
  if (!target.triple.empty())
    m->setTargetTriple(target.triple);
  if (!target.dataLayout.empty())
    m->setDataLayout(target.dataLayout);
  for (const FunctionToEmit &f : fns)
    FunctionEmitter(*m, *f.function, *f.schedule, *f.plans, target).emit();
  mergeKernels(*m);
  return m;
}

} // namespace soma::codegen
