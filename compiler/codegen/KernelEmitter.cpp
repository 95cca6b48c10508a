// Kernel emission. Values are computed by `expr`, which walks the inlined tree of a node at a
// multi-index: materialized nodes are loads, everything else is computed in registers. The
// switch in `expr` has no default: each op in Ops.def states how it is emitted.
#include "codegen/KernelEmitter.h"

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

namespace {

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

  void emit() {
    auto *kernelTy = llvm::FunctionType::get(b_.getVoidTy(), {ptr_, i64_, i64_}, false);
    llvm::FunctionCallee parFor = m_.getOrInsertFunction(
        "soma_rt_parallel_for", llvm::FunctionType::get(b_.getVoidTy(), {ptr_, ptr_, i64_, i64_}, false));
    std::vector<std::pair<llvm::Function *, const KernelPlan *>> kernels;
    for (size_t k = 0; k < s_.kernels.size(); ++k) {
      auto *fn =
          llvm::Function::Create(kernelTy, llvm::Function::InternalLinkage, f_.name + ".k" + std::to_string(k), m_);
      setAttrs(fn);
      plan_ = &plans_[k];
      emitKernel(fn, s_.kernels[k]);
      kernels.push_back({fn, plan_});
    }
    auto *stepTy = llvm::FunctionType::get(b_.getVoidTy(), {ptr_}, false);
    auto *step = llvm::Function::Create(stepTy, llvm::Function::ExternalLinkage, f_.name, m_);
    setAttrs(step);
    b_.SetInsertPoint(llvm::BasicBlock::Create(c_, "entry", step));
    ctx_ = step->getArg(0);
    batch_ = b_.CreateLoad(i64_, ctx_, "batch");
    for (auto [fn, p] : kernels) {
      auto [rows, costPerRow] = extent(*p);
      b_.CreateCall(parFor, {fn, ctx_, rows, costPerRow});
    }
    b_.CreateRetVoid();
  }

private:
  void setAttrs(llvm::Function *fn) {
    fn->addFnAttr(llvm::Attribute::NoUnwind);
    if (!target_.cpu.empty())
      fn->addFnAttr("target-cpu", target_.cpu);
    if (!target_.features.empty())
      fn->addFnAttr("target-features", target_.features);
    fn->addFnAttr("prefer-vector-width", std::to_string(target_.preferVectorWidth));
  }

  llvm::Value *dim(int64_t d) { return d == kBatch ? batch_ : b_.getInt64(d); }

  // A plan's count at this call's batch size.
  llvm::Value *count(const transforms::Count &c) {
    llvm::Value *v = b_.getInt64(c.factor);
    for (int i = 0; i < c.batchPower; ++i)
      v = b_.CreateMul(v, batch_);
    if (c.divisor > 1)
      v = b_.CreateSDiv(b_.CreateAdd(v, b_.getInt64(c.divisor - 1)), b_.getInt64(c.divisor));
    return c.times > 1 ? b_.CreateMul(v, b_.getInt64(c.times)) : v;
  }

  // The plan's work items and the work of each (rounded up), for the thread split.
  std::pair<llvm::Value *, llvm::Value *> extent(const KernelPlan &p) {
    llvm::Value *items = count(p.items), *work = count(p.work);
    llvm::Value *some = b_.CreateSelect(b_.CreateICmpSGT(items, b_.getInt64(0)), items, b_.getInt64(1));
    return {items, b_.CreateSDiv(b_.CreateAdd(work, b_.CreateSub(some, b_.getInt64(1))), some)};
  }

  llvm::Value *slotPtr(int node) {
    int slot = s_.slot[node];
    assert(slot >= 0);
    auto it = slotPtrs_.find(slot);
    if (it != slotPtrs_.end())
      return it->second;
    llvm::IRBuilderBase::InsertPointGuard guard(b_);
    b_.SetInsertPoint(entry_->getTerminator()); // hoisted: loaded once per call
    llvm::Value *p = b_.CreateLoad(ptr_, b_.CreateConstGEP1_64(i64_, ctx_, 1 + slot), "slot" + std::to_string(slot));
    slotPtrs_[slot] = p;
    return p;
  }

  llvm::Value *offset(const Shape &shape, const std::vector<llvm::Value *> &idx) {
    if (flatOffset_ && !shape.empty()) // flatElementwise: every tensor has the loop's shape
      return flatOffset_;
    if (trailing_.t && shape == trailing_.shape) { // trailingFlat: the outer axes, then the run
      llvm::Value *off = idx[0];
      for (size_t i = 1; i < trailing_.from; ++i)
        off = b_.CreateAdd(b_.CreateMul(off, dim(shape[i])), idx[i]);
      return b_.CreateAdd(b_.CreateMul(off, b_.getInt64(trailing_.run)), trailing_.t);
    }
    llvm::Value *off = b_.getInt64(0);
    for (size_t i = 0; i < shape.size(); ++i)
      off = i == 0 ? idx[0] : b_.CreateAdd(b_.CreateMul(off, dim(shape[i])), idx[i]);
    return off;
  }

  // In a vector epilogue (lane_ set), a tensor indexed by the lane index is read as a vector of
  // lanes: contiguous when it is the last index, else gathered with the stride of its axis; any
  // other tensor is read once and repeated in every lane.
  llvm::Value *load(int node, const std::vector<llvm::Value *> &idx) {
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

  void store(int node, const std::vector<llvm::Value *> &idx, llvm::Value *v) {
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
  int64_t laneStride(int node, const std::vector<llvm::Value *> &idx) const {
    const Shape &shape = f_.nodes[node].shape;
    for (size_t a = 0; a < idx.size(); ++a)
      if (idx[a] == lane_) {
        int64_t stride = 1;
        for (size_t later = a + 1; later < shape.size(); ++later)
          stride *= shape[later];
        return stride;
      }
    return 0;
  }
  llvm::Value *lanePointers(llvm::Value *p, int64_t stride) {
    std::vector<llvm::Constant *> steps;
    for (unsigned l = 0; l < lanes(); ++l)
      steps.push_back(b_.getInt64(static_cast<int64_t>(l) * stride));
    return b_.CreateGEP(f32_, p, llvm::ConstantVector::get(steps));
  }

  // The element type of expr's values: a float, or in a vector epilogue a vector of floats.
  llvm::Type *elemTy() { return lane_ ? static_cast<llvm::Type *>(vecTy()) : f32_; }

  // A float function of libm, or in a vector epilogue its vector variant in glibc's libmvec
  // (the names of the x86-64 vector ABI: b = SSE, d = AVX2, e = AVX-512).
  llvm::Value *callMath(const char *name, llvm::Value *x) {
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

  llvm::Value *one() { return llvm::ConstantFP::get(elemTy(), 1.0); }
  llvm::Value *zero() { return llvm::ConstantFP::get(elemTy(), 0.0); }
  llvm::Value *select01(llvm::Value *cond) { return b_.CreateSelect(cond, one(), zero()); }

  // The value of node `v` at multi-index `idx`, computing inlined nodes in registers.
  llvm::Value *expr(int v, const std::vector<llvm::Value *> &idx, bool isRoot = false) {
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
    case Op::OneHot: {
      std::vector<llvm::Value *> at(idx.begin(), idx.end() - 1); // the class is the last index
      llvm::Value *label = expr(n.operands[0], at);
      return select01(b_.CreateFCmpOEQ(label, b_.CreateSIToFP(idx.back(), f32_)));
    }
    }
    return nullptr;
  }

  // for (iv = lo; iv < hi; ++iv) body(iv)
  // `keep`: the loop is left as written (no unrolling, no vectorizing): for micro-kernels that
  // are vector code already, where unrolling only costs compile time.
  // A loop over a long constant run (an image's H * W): vectorized, never fully unrolled (LLVM
  // would unroll 784 iterations into one block of thousands of instructions, which its schedulers
  // take seconds over).
  void runLoop(int64_t n, const std::function<void(llvm::Value *)> &body) {
    loop(b_.getInt64(0), b_.getInt64(n), body, false, true);
  }

  void loop(llvm::Value *lo, llvm::Value *hi, const std::function<void(llvm::Value *)> &body, bool keep = false,
            bool noUnroll = false) {
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
    if (keep || noUnroll) {
      llvm::Metadata *unroll = llvm::MDNode::get(c_, {llvm::MDString::get(c_, "llvm.loop.unroll.disable")});
      llvm::Metadata *vectorize = llvm::MDNode::get(
          c_, {llvm::MDString::get(c_, "llvm.loop.vectorize.enable"), llvm::ConstantAsMetadata::get(b_.getFalse())});
      // The vectorized loop inherits unroll.disable (LLVM's follow-up rule), not the vectorizer's hint.
      llvm::MDNode *id = keep ? llvm::MDNode::getDistinct(c_, {nullptr, unroll, vectorize})
                              : llvm::MDNode::getDistinct(c_, {nullptr, unroll});
      id->replaceOperandWith(0, id);
      latch->setMetadata(llvm::LLVMContext::MD_loop, id);
    }
    b_.SetInsertPoint(exit);
  }

  // Nested loops over `shape` (from axis `from`), outermost first.
  void loopNest(const Shape &shape, size_t from, std::vector<llvm::Value *> &idx, const std::function<void()> &body) {
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

  llvm::AllocaInst *entryAlloca(llvm::Type *ty, llvm::Value *count, const char *name) {
    llvm::IRBuilderBase::InsertPointGuard guard(b_);
    b_.SetInsertPoint(entry_->getTerminator());
    return b_.CreateAlloca(ty, count, name);
  }

  void emitKernel(llvm::Function *fn, const Kernel &k) {
    slotPtrs_.clear();
    fusedProduct_ = -1;
    entry_ = llvm::BasicBlock::Create(c_, "entry", fn);
    auto *start = llvm::BasicBlock::Create(c_, "start", fn);
    b_.SetInsertPoint(entry_);
    ctx_ = fn->getArg(0);
    batch_ = b_.CreateLoad(i64_, ctx_, "batch");
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
    case Strategy::SoftmaxRows:
      emitRow(k, lo, hi);
      break;
    case Strategy::PoolLanes:
      emitWindow(k, lo, hi);
      break;
    case Strategy::MatMulTiled:
      tiledMatMul(k, lo, hi);
      break;
    case Strategy::MatMulDot:
      dotMatMul(k, lo, hi);
      break;
    case Strategy::MatMulLoops:
      generalMatMul(k, lo, hi);
      break;
    case Strategy::ConvChannelLanes:
      channelConv(k, product, lo, hi);
      break;
    case Strategy::ConvRows:
      rowConv(k, product, n.operands[0], n.operands[1], false, n.attrs.padding, n.attrs.padding, lo, hi);
      break;
    case Strategy::ConvDataFilterLanes:
      channelBackData(k, lo, hi);
      break;
    case Strategy::ConvDataRows: { // a correlation with the flipped filter and "full" padding
      const Shape &ws = f_.nodes[n.operands[1]].shape;
      rowConv(k, product, n.operands[0], n.operands[1], true, ws[2] - 1 - n.attrs.padding, ws[3] - 1 - n.attrs.padding,
              lo, hi);
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
  void addAliasScopes(llvm::Function *fn) {
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
  void storeRoots(const Kernel &k, const std::vector<llvm::Value *> &idx) {
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

  // Axes [from, n) as one loop: each tensor of the root's shape is at (outer offset) * run + t.
  void trailingFlat(const Kernel &k, llvm::Value *lo, llvm::Value *hi, size_t from) {
    const Shape &shape = f_.nodes[k.root].shape;
    Shape outer(shape.begin(), shape.begin() + static_cast<std::ptrdiff_t>(from));
    int64_t run = numElements(Shape(shape.begin() + static_cast<std::ptrdiff_t>(from), shape.end()), 1);
    loop(lo, hi, [&](llvm::Value *i) {
      std::vector<llvm::Value *> idx{i};
      loopNest(outer, 1, idx, [&] {
        runLoop(run, [&](llvm::Value *t) {
          std::vector<llvm::Value *> full = idx;
          full.resize(shape.size(), t); // read only through offset(), which uses t
          trailing_ = {shape, from, run, t};
          storeRoots(k, full);
          trailing_ = {};
        });
      });
    });
  }

  void flatElementwise(const Kernel &k, llvm::Value *lo, llvm::Value *hi) {
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

  // out[o] = sum (or max) over the reduced axes of x[o + r], x's tree inlined.
  // Output rows [lo, hi) (the whole output when it is a scalar); each output element is summed in
  // the same order whichever thread computes it.
  void emitReduce(const Kernel &k, llvm::Value *lo, llvm::Value *hi) {
    const Node &root = f_.nodes[k.root];
    int x = root.operands[0];
    const Shape &xs = f_.nodes[x].shape;
    bool isMax = root.op == Op::ReduceMax;
    // reduce.runs: x's last axes, all summed, are one contiguous run per index of the others,
    // summed by one loop that vectorizes (bias gradients: [B, C, H, W] over B, H, W).
    // reduce.trailing: the same run of an inlined tree that reads its tensors at x's own index or
    // broadcasts them over the run (batchnorm's gradients: sums over B, H, W of dy (x - mean) / std).
    bool contiguous = plan_->strategy == Strategy::ReduceRuns, flatTree = plan_->strategy == Strategy::ReduceTrailing;
    size_t run = contiguous || flatTree ? plan_->from : xs.size();
    int64_t runLength = 1;
    for (size_t i = run; i < xs.size(); ++i)
      runLength *= xs[i];
    Shape reduced;
    for (size_t i = 0; i < (contiguous || flatTree ? run : xs.size()); ++i)
      if (root.attrs.axes >> i & 1)
        reduced.push_back(xs[i]);
    llvm::AllocaInst *acc = entryAlloca(f32_, nullptr, "acc");
    std::vector<llvm::Value *> outIdx;
    auto element = [&] {
      b_.CreateStore(isMax ? llvm::ConstantFP::getInfinity(f32_, true) : zero(), acc);
      std::vector<llvm::Value *> redIdx;
      loopNest(reduced, 0, redIdx, [&] {
        std::vector<llvm::Value *> idx;
        size_t o = 0, r = 0;
        for (size_t i = 0; i < xs.size(); ++i)
          idx.push_back(i >= run && (contiguous || flatTree) ? b_.getInt64(0)
                        : root.attrs.axes >> i & 1           ? redIdx[r++]
                                                             : outIdx[o++]);
        if (contiguous) {
          llvm::Value *start = b_.CreateGEP(f32_, slotPtr(x), offset(xs, idx));
          // A plain sum: LLVM may unroll it whole (a few vector adds per 784 floats, faster than
          // a rolled loop's one chain of additions).
          loop(b_.getInt64(0), b_.getInt64(runLength), [&](llvm::Value *t) {
            llvm::Value *v = b_.CreateLoad(f32_, b_.CreateGEP(f32_, start, t));
            b_.CreateStore(b_.CreateFAdd(b_.CreateLoad(f32_, acc), v), acc);
          });
          return;
        }
        if (flatTree) {
          idx.resize(run);
          runLoop(runLength, [&](llvm::Value *t) {
            std::vector<llvm::Value *> full = idx;
            full.resize(xs.size(), t); // read only through offset(), which uses t
            trailing_ = {xs, run, runLength, t};
            llvm::Value *v = expr(x, full), *a = b_.CreateLoad(f32_, acc);
            trailing_ = {};
            b_.CreateStore(isMax ? b_.CreateSelect(b_.CreateFCmpOGT(v, a), v, a) : b_.CreateFAdd(a, v), acc);
          });
          return;
        }
        llvm::Value *v = expr(x, idx), *a = b_.CreateLoad(f32_, acc);
        b_.CreateStore(isMax ? b_.CreateSelect(b_.CreateFCmpOGT(v, a), v, a) : b_.CreateFAdd(a, v), acc);
      });
      store(k.root, outIdx, b_.CreateLoad(f32_, acc));
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
  void leadingReduce(const Kernel &k, llvm::Value *lo, llvm::Value *hi, size_t leading) {
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

  // softmax_xent and its gradient, a row of K classes at a time (rows [lo, hi) of the first axis):
  // the row's maximum; the sums of exp(z - max), of the targets and of t (z - max); then the loss,
  // T log S - sum t (z - max), or each class's gradient, g (exp(z - max) T / S - t).
  void emitRow(const Kernel &k, llvm::Value *lo, llvm::Value *hi) {
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

  // Vectors `parts` side by side, as one vector of their lanes (padded to a power of two parts).
  llvm::Value *concat(std::vector<llvm::Value *> parts) {
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
  llvm::Value *pickLanes(llvm::Value *v, int64_t start, int64_t step) {
    std::vector<int> picks(lanes());
    for (unsigned l = 0; l < lanes(); ++l)
      picks[l] = static_cast<int>(start + step * l);
    return b_.CreateShuffleVector(v, picks);
  }

  // Max pooling, k x k windows with stride k, rows [lo, hi) of the batch. A chunk of V output
  // columns reads k vectors of each of its k input rows: the forward pass takes their maximum
  // down the rows, then across each window's k neighbours (lanes picked every k-th); the backward
  // pass compares each input vector with y repeated k times per lane, counts each window's
  // maxima the same way, and writes the share dy / count where x is maximal, 0 elsewhere.
  // With an epilogue (k.product the pooling op), the elementwise consumer runs on each vector.
  void emitWindow(const Kernel &k, llvm::Value *lo, llvm::Value *hi) {
    int pool = k.product >= 0 ? k.product : k.root;
    const Node &n = f_.nodes[pool];
    bool back = n.op == Op::MaxPool2DBack;
    int xNode = n.operands[0], yNode = back ? n.operands[1] : pool;
    bool vecEpilogue = plan_->vectorEpilogue;
    llvm::AllocaInst *buffer = entryAlloca(f32_, b_.getInt64(lanes()), "lanes");
    // The result's `count` lanes at (b, c, row, col..): stored, or through the epilogue.
    auto result = [&](llvm::Value *v, llvm::Value *b, llvm::Value *c, llvm::Value *row, llvm::Value *col,
                      unsigned count) {
      if (k.root == pool) {
        storeVec(v, b_.CreateGEP(f32_, imageRow(pool, b, c, row), col), count);
      } else if (vecEpilogue) {
        productEpilogueVec(k, {b, c, row, col}, v, count);
      } else {
        storeVec(v, buffer, count);
        for (unsigned l = 0; l < count; ++l)
          productEpilogue(k, {b, c, row, b_.CreateAdd(col, b_.getInt64(l))},
                          b_.CreateLoad(f32_, b_.CreateConstGEP1_64(f32_, buffer, l)));
      }
    };
    const Shape xs = f_.nodes[xNode].shape;
    int64_t kk = n.attrs.stride, C = xs[1], Ho = xs[2] / kk, Wo = xs[3] / kk, V = lanes();
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
    loop(lo, hi, [&](llvm::Value *b) {
      loop(
          c64(0), c64(C),
          [&](llvm::Value *c) {
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

  // C = op(A) op(B), rows [lo, hi), then the elementwise epilogue up to the kernel's root. With a
  // static number of columns the product is computed in register tiles (matmul.tiled, or
  // matmul.dot when B is transposed) into a buffer of rows, which the epilogue then reads; other
  // shapes take the plain loop nest (matmul.loops).

  // The epilogue on `count` lanes from index idx, the lanes along the axis whose index is `lane`
  // (by default the last): `value` holds the product there.
  void productEpilogueVec(const Kernel &k, const std::vector<llvm::Value *> &idx, llvm::Value *value, unsigned count,
                          llvm::Value *lane = nullptr) {
    lane_ = lane ? lane : idx.back();
    laneCount_ = count;
    productEpilogue(k, idx, value);
    lane_ = nullptr;
  }

  // The kernel's elementwise tree above its product (k.product) at idx, where the product is
  // `value`. With other roots (a one-pass optimizer update), those are computed and stored too.
  void productEpilogue(const Kernel &k, const std::vector<llvm::Value *> &idx, llvm::Value *value) {
    fusedProduct_ = k.product;
    productValue_ = value;
    if (k.alsoRoots.empty())
      store(k.root, idx, expr(k.root, idx, k.root != k.product));
    else
      storeRoots(k, idx);
    fusedProduct_ = -1;
  }

  llvm::FixedVectorType *vecTy() { return llvm::FixedVectorType::get(f32_, lanes()); }
  unsigned lanes() const { return static_cast<unsigned>(machine(target_).lanes); }
  // The first `count` lanes.
  std::vector<bool> firstLanes(unsigned count) {
    std::vector<bool> on(lanes());
    for (unsigned l = 0; l < lanes(); ++l)
      on[l] = l < count;
    return on;
  }
  llvm::Constant *mask(const std::vector<bool> &on) {
    std::vector<llvm::Constant *> bits;
    for (bool b : on)
      bits.push_back(b_.getInt1(b));
    return llvm::ConstantVector::get(bits);
  }
  // A vector from p, only the lanes that are on (the others read nothing and are 0).
  llvm::Value *maskedLoad(llvm::Value *p, const std::vector<bool> &on) {
    if (std::all_of(on.begin(), on.end(), [](bool b) { return b; }))
      return b_.CreateAlignedLoad(vecTy(), p, llvm::Align(4));
    return b_.CreateMaskedLoad(vecTy(), p, llvm::Align(4), mask(on), llvm::Constant::getNullValue(vecTy()));
  }
  llvm::Value *loadVec(llvm::Value *p, unsigned count) { return maskedLoad(p, firstLanes(count)); }
  void storeVec(llvm::Value *v, llvm::Value *p, unsigned count) {
    if (count == lanes())
      b_.CreateAlignedStore(v, p, llvm::Align(4));
    else
      b_.CreateMaskedStore(v, p, llvm::Align(4), mask(firstLanes(count)));
  }
  // The start of row (b, c, h) of a [B, C, H, W] buffer.
  llvm::Value *imageRow(int node, llvm::Value *b, llvm::Value *c, llvm::Value *h) {
    return b_.CreateGEP(f32_, slotPtr(node), offset(f_.nodes[node].shape, {b, c, h, b_.getInt64(0)}));
  }
  llvm::Value *fma(llvm::Value *a, llvm::Value *b, llvm::Value *c) {
    return b_.CreateIntrinsic(llvm::Intrinsic::fmuladd, {a->getType()}, {a, b, c});
  }

  // Work items [lo, hi): blocks of `block` rows of C (m rows in all), each cut into `groups`
  // groups of `columns` columns; rows(i0, count, c0) runs one. The last block may be short: the
  // tile code repeats its last row (clampRow), computed but not stored, so that one variant
  // serves every block.
  void rowBlocks(llvm::Value *lo, llvm::Value *hi, int64_t block, llvm::Value *m, int64_t groups, int64_t columns,
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
  llvm::Value *clampRow(llvm::Value *i0, int64_t r, llvm::Value *count) {
    llvm::Value *rv = b_.getInt64(r);
    llvm::Value *last = b_.CreateSub(count, b_.getInt64(1));
    return b_.CreateAdd(i0, b_.CreateSelect(b_.CreateICmpSLT(rv, count), rv, last));
  }

  // The epilogue of rows i0.. i0+count, whose products are in `rows` (n floats a row).
  void rowsEpilogue(const Kernel &k, llvm::AllocaInst *rows, llvm::Value *i0, llvm::Value *count, int64_t n,
                    llvm::Value *c0 = nullptr, int64_t columns = 0) {
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
  void tiledMatMul(const Kernel &k, llvm::Value *lo, llvm::Value *hi) {
    const int64_t kRows = plan_->rows;
    const Node &mm = f_.nodes[k.product];
    int a = mm.operands[0], bm = mm.operands[1];
    const Shape &as = f_.nodes[a].shape;
    bool ta = mm.attrs.transA;
    llvm::Value *kDim = dim(ta ? as[0] : as[1]);
    int64_t n = mm.shape[1], vl = lanes();
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
    auto tile = [&](llvm::Value *i0, llvm::Value *count, llvm::Value *j0, int64_t cols, int64_t mr,
                    llvm::Value *slot0) {
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
              llvm::Value *av = b_.CreateVectorSplat(static_cast<unsigned>(vl),
                                                     load(a, ta ? std::vector{kv, i} : std::vector{i, kv}));
              for (int64_t q = 0; q < vectors; ++q) {
                llvm::Value *slot = b_.CreateConstGEP1_64(vecTy(), acc, r * vectors + q);
                b_.CreateStore(fma(av, bv[q], b_.CreateLoad(vecTy(), slot)), slot);
              }
            }
          },
          true);
      if (vecEpilogue) { // straight from the registers, for the rows that are real
        llvm::Function *fn = b_.GetInsertBlock()->getParent();
        for (int64_t r = 0; r < mr; ++r) {
          llvm::BasicBlock *next = nullptr;
          if (r > 0) {
            auto *then = llvm::BasicBlock::Create(c_, "row.real", fn);
            next = llvm::BasicBlock::Create(c_, "row.next", fn);
            b_.CreateCondBr(b_.CreateICmpSLT(b_.getInt64(r), count), then, next);
            b_.SetInsertPoint(then);
          }
          for (int64_t q = 0; q < vectors; ++q)
            productEpilogueVec(k, {rowIndex[static_cast<size_t>(r)], b_.CreateAdd(j0, b_.getInt64(q * vl))},
                               b_.CreateLoad(vecTy(), b_.CreateConstGEP1_64(vecTy(), acc, r * vectors + q)),
                               lanesOf(q));
          if (next) {
            b_.CreateBr(next);
            b_.SetInsertPoint(next);
          }
        }
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
    rowBlocks(lo, hi, kRows, dim(mm.shape[0]), groups, columns,
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

  // Lane l of result g is the sum of the lanes of vs[g * lanes + l] (vs padded with zeros to a
  // whole number of vectors). Level by level, pairs of vectors are cut into halves of their
  // groups of lanes and the halves added: the same tree as CreateFAddReduce's (lane i + lane
  // i + lanes/2 first), so each sum is the same bit for bit, for about a third of the work.
  std::vector<llvm::Value *> laneSums(std::vector<llvm::Value *> vs) {
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
        next.push_back(b_.CreateFAdd(b_.CreateShuffleVector(vs[p], vs[p + 1], low),
                                     b_.CreateShuffleVector(vs[p], vs[p + 1], high)));
      vs = next;
    }
    return vs;
  }

  // The lane sums of the vectors acc[0 .. groups * width), a group at a time: the sums of group
  // g's first `count` vectors (acc[g * width ..]) as one store at at(g).
  void storeLaneSums(llvm::AllocaInst *acc, int64_t groups, int64_t width, int64_t count,
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
  void transposeSquare(std::vector<llvm::Value *> &rows) {
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

  // C = A B^T with A [M, K] and B [N, K] row-major, K and N static: each element a dot product
  // along contiguous k, in tiles of 4 x 4 elements whose partial sums (a vector each) stay in
  // registers; the lanes are added at the end.
  void dotMatMul(const Kernel &k, llvm::Value *lo, llvm::Value *hi) {
    const int64_t kTile = plan_->rows;
    const Node &mm = f_.nodes[k.product];
    int a = mm.operands[0], bm = mm.operands[1];
    int64_t kk = f_.nodes[a].shape[1], n = mm.shape[1], vl = lanes();
    llvm::AllocaInst *rows = entryAlloca(f32_, b_.getInt64(kTile * n), "rows");
    llvm::AllocaInst *acc = entryAlloca(llvm::ArrayType::get(vecTy(), kTile * kTile), nullptr, "acc"); // registers
    llvm::Value *aBase = slotPtr(a), *bBase = slotPtr(bm);
    const int64_t mr = kTile;
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
    rowBlocks(lo, hi, kTile, dim(mm.shape[0]), 1, n, [&](llvm::Value *i0, llvm::Value *count, llvm::Value *) {
      if (n / kTile > 0)
        loop(
            b_.getInt64(0), b_.getInt64(n / kTile),
            [&](llvm::Value *t) { tile(i0, count, b_.CreateMul(t, b_.getInt64(kTile)), kTile); }, true);
      if (n % kTile)
        tile(i0, count, b_.getInt64(n - n % kTile), n % kTile);
      rowsEpilogue(k, rows, i0, count, n);
    });
  }

  // Any layout and shape: a row of C accumulated in a stack buffer (the j loop vectorizes), or
  // with transposed B each element a dot product over k.
  void generalMatMul(const Kernel &k, llvm::Value *lo, llvm::Value *hi) {
    const Node &mm = f_.nodes[k.product];
    int a = mm.operands[0], bm = mm.operands[1];
    const Shape &as = f_.nodes[a].shape;
    bool ta = mm.attrs.transA, tb = mm.attrs.transB;
    llvm::Value *kDim = dim(ta ? as[0] : as[1]);
    llvm::Value *nDim = dim(mm.shape[1]);
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

  // The outputs i in [0, outSize) whose input row i*stride + u - padding lies in [0, inSize), for
  // a filter offset u in [0, kernel): loop bounds that make the inner loops free of checks.
  std::pair<llvm::Value *, llvm::Value *> validRange(llvm::Value *u, int64_t inSize, int64_t outSize, int64_t kernel,
                                                     int64_t stride, int64_t padding) {
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

  // The filter gradient of planeBackFilter's kind: y's plane [Ho * Wo] is contiguous, so its
  // vectors are full (LeNet's 10-wide rows fill 10 of 16 lanes one row at a time). The x values
  // a vector of y meets for tap (u, v) lie on the one to three rows its lanes span: a masked load
  // from each, added (the other lanes are zeros). Blocks of filters by filter rows as in
  // rowBackFilter; the sums run in lanes of 16 positions and are added at the end.
  void planeBackFilter(const Kernel &k, llvm::Value *lo, llvm::Value *hi) {
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
              yv.push_back(
                  loadVec(b_.CreateGEP(f32_, imageRow(yNode, b, b_.CreateAdd(f0, c64(fo)), c64(0)), c64(t * vl)),
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

  // Lanes of a vector at columns q = chunk * lanes + l (q < width) whose input column q + shift
  // lies in [0, inWidth): a constant mask, as every extent but the batch is static.
  std::vector<bool> columnLanes(int64_t chunk, int64_t width, int64_t shift, int64_t inWidth) {
    std::vector<bool> on(lanes());
    for (unsigned l = 0; l < lanes(); ++l) {
      int64_t q = chunk * lanes() + l, col = q + shift;
      on[l] = q < width && col >= 0 && col < inWidth;
    }
    return on;
  }

  // The weights w [F, C, Kh, Kw] packed on the stack as [C, Kh, Kw, F] (once per call), so that
  // the filters' weights for one tap are whole vectors.
  llvm::AllocaInst *filtersLast(int wNode) {
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
  // a vector (LeNet's 10 columns would fill 10 of 16 lanes). The weights are packed once per call
  // as [C, Kh, Kw, O], so that the filters' weights for one tap are a vector. A block of output
  // rows (each of Q positions, a vector of channels each) stays in registers; each input value is
  // loaded once per tap row, repeated in every lane, and multiplied by Kw weight vectors.
  // Results go to the channels' planes (a scatter), or through the epilogue.
  void channelConv(const Kernel &k, int conv, llvm::Value *lo, llvm::Value *hi) {
    const Node &n = f_.nodes[conv];
    int xNode = n.operands[0], wNode = n.operands[1];
    const Shape os = n.shape, xs = f_.nodes[xNode].shape, ws = f_.nodes[wNode].shape;
    int64_t O = os[1], R = os[2], Q = os[3], C = xs[1], H = xs[2], W = xs[3], Kh = ws[2], Kw = ws[3];
    int64_t p = n.attrs.padding, vl = lanes();
    auto c64 = [&](int64_t v) { return b_.getInt64(v); };
    llvm::AllocaInst *packed = filtersLast(wNode);
    int64_t rb = plan_->rows;                                                                   // rows in registers
    llvm::AllocaInst *acc = entryAlloca(llvm::ArrayType::get(vecTy(), rb * Q), nullptr, "acc"); // registers
    bool padded = p > 0 || R + Kh - 1 > H;
    auto block = [&](llvm::Value *b, llvm::Value *o0, llvm::Value *r0, int64_t rows) {
      auto sum = [&](int64_t r, int64_t q) { return b_.CreateConstGEP1_64(vecTy(), acc, r * Q + q); };
      for (int64_t e = 0; e < rows * Q; ++e)
        b_.CreateStore(llvm::Constant::getNullValue(vecTy()), b_.CreateConstGEP1_64(vecTy(), acc, e));
      auto [uLo, uHi] = tapRows(r0, rows, p, H, Kh);
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
                        vecTy(),
                        b_.CreateGEP(f32_, packed,
                                     b_.CreateAdd(b_.CreateMul(b_.CreateAdd(tapRow, c64(v)), c64(O)), o0)),
                        llvm::Align(4)));
                  for (int64_t r = 0; r < rows; ++r) {
                    llvm::Value *h = b_.CreateSub(b_.CreateAdd(r0, b_.CreateAdd(u, c64(r))), c64(p));
                    llvm::Value *row = padded ? rowOrZeros(xNode, b, c, h, p) : imageRow(xNode, b, c, h);
                    for (int64_t col = 0; col < Q + Kw - 1; ++col) { // input column col - p
                      if (col - p < 0 || col - p >= W)
                        continue;
                      llvm::Value *x = b_.CreateVectorSplat(
                          static_cast<unsigned>(vl), b_.CreateLoad(f32_, b_.CreateConstGEP1_64(f32_, row, col - p)));
                      for (int64_t v = 0; v < Kw; ++v)
                        if (int64_t q = col - v; q >= 0 && q < Q)
                          b_.CreateStore(fma(x, wv[static_cast<size_t>(v)], b_.CreateLoad(vecTy(), sum(r, q))),
                                         sum(r, q));
                    }
                  }
                },
                true);
          },
          true);
      for (int64_t r = 0; r < rows; ++r)
        for (int64_t q = 0; q < Q; ++q) {
          std::vector<llvm::Value *> idx{b, o0, b_.CreateAdd(r0, c64(r)), c64(q)};
          llvm::Value *value = b_.CreateLoad(vecTy(), sum(r, q));
          if (k.root != conv) {
            productEpilogueVec(k, idx, value, static_cast<unsigned>(vl), o0);
          } else {
            lane_ = o0;
            laneCount_ = static_cast<unsigned>(vl);
            store(conv, idx, value);
            lane_ = nullptr;
          }
        }
    };
    convBlocks(lo, hi, O, vl, R, rb, block);
  }

  // The data gradient with the filters in the lanes: dx[b, c, h, x] = sum over f, u, v of
  // y[b, f, h + p - u, x + p - v] * w[f, c, u, v], over the taps that reach y only (no padding is
  // multiplied). The weights are packed once per call as [C, Kh, Kw, F] and each sample's y is
  // turned to [Ho, Wo, F] on the stack, so that the filters of a tap or a position are vectors.
  // A block of nx positions of a row, for every channel, keeps C * nx vectors of sums in
  // registers; laneSums adds their lanes.
  void channelBackData(const Kernel &k, llvm::Value *lo, llvm::Value *hi) {
    const Node &n = f_.nodes[k.root];
    int yNode = n.operands[0], wNode = n.operands[1];
    const Shape xs = n.shape, ys = f_.nodes[yNode].shape, ws = f_.nodes[wNode].shape;
    int64_t C = xs[1], H = xs[2], W = xs[3], F = ws[0], Kh = ws[2], Kw = ws[3], Ho = ys[2], Wo = ys[3];
    int64_t p = n.attrs.padding, vl = lanes(), plane = Ho * Wo;
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

  // dw[f, c, u, v] = sum over b, i, j of y[b, f, i, j] * x[b, c, i + u - p, j + v - p] with the
  // filters in the lanes: each sample's y is turned to [Ho, Wo, F] on the stack (transposeImage)
  // and each x value, repeated in every lane, meets the y vectors of the positions of the row it
  // serves (the pattern of channelConv). Each work item (filter row) keeps Kw vectors of sums, in
  // registers for a sample and in a stack array between samples; its lanes go to w by a scatter.
  void channelBackFilter(const Kernel &k, llvm::Value *lo, llvm::Value *hi) {
    const Node &n = f_.nodes[k.root];
    int xNode = n.operands[0], yNode = n.operands[1];
    const Shape xs = f_.nodes[xNode].shape, ys = f_.nodes[yNode].shape, ws = n.shape;
    int64_t C = xs[1], H = xs[2], W = xs[3], F = ws[0], Kh = ws[2], Kw = ws[3], Ho = ys[2], Wo = ys[3];
    int64_t p = n.attrs.padding, vl = lanes(), plane = Ho * Wo;
    int64_t nj = plan_->columns; // y vectors of a row in registers
    auto c64 = [&](int64_t v) { return b_.getInt64(v); };
    llvm::AllocaInst *yt = entryAlloca(f32_, c64(plane * F), "yt");
    yt->setAlignment(llvm::Align(64));
    llvm::AllocaInst *kept = entryAlloca(vecTy(), c64(F / vl * C * Kh * Kw), "kept");       // per work item
    llvm::AllocaInst *acc = entryAlloca(llvm::ArrayType::get(vecTy(), Kw), nullptr, "acc"); // registers
    auto keptAt = [&](llvm::Value *item, int64_t v) {
      return b_.CreateGEP(vecTy(), kept, b_.CreateAdd(b_.CreateMul(item, c64(Kw)), c64(v)));
    };
    // Work item -> (first filter, channel, filter row).
    auto decode = [&](llvm::Value *item) {
      return std::array<llvm::Value *, 3>{b_.CreateMul(b_.CreateSDiv(item, c64(C * Kh)), c64(vl)),
                                          b_.CreateSRem(b_.CreateSDiv(item, c64(Kh)), c64(C)),
                                          b_.CreateSRem(item, c64(Kh))};
    };
    loop(lo, hi, [&](llvm::Value *item) {
      for (int64_t v = 0; v < Kw; ++v)
        b_.CreateStore(llvm::Constant::getNullValue(vecTy()), keptAt(item, v));
    });
    loop(
        c64(0), batch_,
        [&](llvm::Value *b) {
          transposeImage(yNode, b, yt);
          loop(
              lo, hi,
              [&](llvm::Value *item) {
                auto [f0, c, u] = decode(item);
                for (int64_t v = 0; v < Kw; ++v)
                  b_.CreateStore(b_.CreateLoad(vecTy(), keptAt(item, v)), b_.CreateConstGEP1_64(vecTy(), acc, v));
                // The output rows i whose x row i + u - p lies in x.
                auto [iLo, iHi] = clampRange(b_.CreateSub(c64(p), u), b_.CreateSub(c64(H + p), u), Ho);
                loop(
                    iLo, iHi,
                    [&](llvm::Value *i) {
                      llvm::Value *row = imageRow(xNode, b, c, b_.CreateSub(b_.CreateAdd(i, u), c64(p)));
                      for (int64_t j0 = 0; j0 < Wo; j0 += nj) {
                        int64_t count = std::min(nj, Wo - j0);
                        std::vector<llvm::Value *> yv;
                        for (int64_t jj = 0; jj < count; ++jj)
                          yv.push_back(b_.CreateAlignedLoad(
                              vecTy(),
                              b_.CreateGEP(
                                  f32_, yt,
                                  b_.CreateAdd(
                                      b_.CreateMul(b_.CreateAdd(b_.CreateMul(i, c64(Wo)), c64(j0 + jj)), c64(F)), f0)),
                              llvm::Align(64)));
                        for (int64_t col = std::max<int64_t>(0, j0 - p); col < std::min(W, j0 + count + Kw - 1 - p);
                             ++col) {
                          llvm::Value *xv = b_.CreateVectorSplat(
                              static_cast<unsigned>(vl), b_.CreateLoad(f32_, b_.CreateConstGEP1_64(f32_, row, col)));
                          for (int64_t jj = 0; jj < count; ++jj)
                            if (int64_t v = col + p - (j0 + jj); v >= 0 && v < Kw) {
                              llvm::Value *slot = b_.CreateConstGEP1_64(vecTy(), acc, v);
                              b_.CreateStore(fma(yv[static_cast<size_t>(jj)], xv, b_.CreateLoad(vecTy(), slot)), slot);
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
    loop(lo, hi, [&](llvm::Value *item) { // w[f0 + l, c, u, v] from lane l
      auto [f0, c, u] = decode(item);
      for (int64_t v = 0; v < Kw; ++v)
        b_.CreateMaskedScatter(
            b_.CreateLoad(vecTy(), keptAt(item, v)),
            lanePointers(b_.CreateGEP(f32_, slotPtr(k.root), offset(ws, {f0, c, u, c64(v)})), C * Kh * Kw),
            llvm::Align(4), mask(firstLanes(lanes())));
    });
  }

  // y[b] ([F, Ho, Wo]) as [Ho * Wo, F] in `to`, by squares of lanes x lanes (the last square may
  // have fewer positions); F is a whole number of vectors.
  void transposeImage(int yNode, llvm::Value *b, llvm::Value *to) {
    const Shape &ys = f_.nodes[yNode].shape;
    int64_t F = ys[1], plane = ys[2] * ys[3], vl = lanes();
    auto c64 = [&](int64_t v) { return b_.getInt64(v); };
    llvm::Value *yb = imageRow(yNode, b, c64(0), c64(0));
    auto square = [&](llvm::Value *pos0, int64_t count) {
      for (int64_t f0 = 0; f0 < F; f0 += vl) {
        std::vector<llvm::Value *> rows;
        for (int64_t f = f0; f < f0 + vl; ++f)
          rows.push_back(
              loadVec(b_.CreateGEP(f32_, yb, b_.CreateAdd(pos0, c64(f * plane))), static_cast<unsigned>(count)));
        transposeSquare(rows);
        for (int64_t i = 0; i < count; ++i)
          b_.CreateAlignedStore(
              rows[static_cast<size_t>(i)],
              b_.CreateGEP(f32_, to, b_.CreateAdd(b_.CreateMul(b_.CreateAdd(pos0, c64(i)), c64(F)), c64(f0))),
              llvm::Align(64));
      }
    };
    loop(
        c64(0), c64(plane / vl), [&](llvm::Value *t) { square(b_.CreateMul(t, c64(vl)), vl); }, true);
    if (plane % vl)
      square(c64(plane - plane % vl), plane % vl);
  }

  // For samples [lo, hi), blocks of ob channels (of O) and of rb rows (of R; the last block may
  // have fewer): block(sample, first channel, first row, rows).
  void convBlocks(llvm::Value *lo, llvm::Value *hi, int64_t O, int64_t ob, int64_t R, int64_t rb,
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

  // [lo, hi) cut to [0, n).
  std::pair<llvm::Value *, llvm::Value *> clampRange(llvm::Value *lo, llvm::Value *hi, int64_t n) {
    return {b_.CreateSelect(b_.CreateICmpSGT(lo, b_.getInt64(0)), lo, b_.getInt64(0)),
            b_.CreateSelect(b_.CreateICmpSLT(hi, b_.getInt64(n)), hi, b_.getInt64(n))};
  }

  // The filter rows [uLo, uHi) for which some output row r0 .. r0 + rows - 1 reads an input row
  // (h = r + u - pad in [0, H)): the others would only multiply rows of zeros.
  std::pair<llvm::Value *, llvm::Value *> tapRows(llvm::Value *r0, int64_t rows, int64_t pad, int64_t H, int64_t Kh) {
    return clampRange(b_.CreateSub(b_.getInt64(pad - rows + 1), r0), b_.CreateSub(b_.getInt64(H + pad), r0), Kh);
  }

  // Row h of image (b, c) of `node`, or when h lies in the padding a row of zeros (with `pad`
  // columns of margin).
  llvm::Value *rowOrZeros(int node, llvm::Value *b, llvm::Value *c, llvm::Value *h, int64_t pad) {
    const Shape &s = f_.nodes[node].shape;
    llvm::Value *inside = b_.CreateAnd(b_.CreateICmpSGE(h, b_.getInt64(0)), b_.CreateICmpSLT(h, b_.getInt64(s[2])));
    return b_.CreateSelect(inside, imageRow(node, b, c, h), zeroRow(s[3], pad));
  }

  // A row of zeros that a convolution reads in place of an input row in the padding: `width`
  // elements, with `margin` more (and a vector) on each side for the shifted loads.
  llvm::Value *zeroRow(int64_t width, int64_t margin) {
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
  void rowConv(const Kernel &k, int outNode, int inNode, int wNode, bool flipped, int64_t padH, int64_t padW,
               llvm::Value *lo, llvm::Value *hi) {
    const Shape os = f_.nodes[outNode].shape, is = f_.nodes[inNode].shape, ws = f_.nodes[wNode].shape;
    int64_t O = os[1], R = os[2], Q = os[3], I = is[1], Hin = is[2], Win = is[3], Kh = ws[2], Kw = ws[3];
    int64_t vl = lanes(), chunks = (Q + vl - 1) / vl;
    int64_t ob = plan_->channels, rb = plan_->rows; // the block in registers
    llvm::AllocaInst *acc = entryAlloca(llvm::ArrayType::get(vecTy(), ob * rb * chunks), nullptr, "acc"); // registers
    bool vecEpilogue = plan_->vectorEpilogue;
    llvm::AllocaInst *rowBuffer = entryAlloca(f32_, b_.getInt64(chunks * vl), "row");
    auto c64 = [&](int64_t v) { return b_.getInt64(v); };
    auto weight = [&](llvm::Value *o, llvm::Value *i, llvm::Value *u, int64_t v) {
      if (!flipped)
        return load(wNode, {o, i, u, c64(v)});
      return load(wNode, {i, o, b_.CreateSub(c64(Kh - 1), u), c64(Kw - 1 - v)});
    };
    bool padded = padH > 0 || R + Kh - 1 > Hin;
    // Output rows r0 .. r0 + rows - 1 of channels o0 .. o0 + ob - 1.
    auto block = [&](llvm::Value *b, llvm::Value *o0, llvm::Value *r0, int64_t rows) {
      auto sum = [&](int64_t o, int64_t r, int64_t ch) {
        return b_.CreateConstGEP1_64(vecTy(), acc, (o * rows + r) * chunks + ch);
      };
      for (int64_t e = 0; e < ob * rows * chunks; ++e)
        b_.CreateStore(llvm::Constant::getNullValue(vecTy()), b_.CreateConstGEP1_64(vecTy(), acc, e));
      auto [uLo, uHi] = tapRows(r0, rows, padH, Hin, Kh);
      loop(
          c64(0), c64(I),
          [&](llvm::Value *i) {
            loop(
                uLo, uHi,
                [&](llvm::Value *u) {
                  std::vector<llvm::Value *> rowPtr;
                  for (int64_t r = 0; r < rows; ++r) {
                    llvm::Value *h = b_.CreateSub(b_.CreateAdd(r0, b_.CreateAdd(u, c64(r))), c64(padH));
                    rowPtr.push_back(padded ? rowOrZeros(inNode, b, i, h, padW) : imageRow(inNode, b, i, h));
                  }
                  for (int64_t v = 0; v < Kw; ++v) {
                    std::vector<llvm::Value *> wv;
                    for (int64_t o = 0; o < ob; ++o)
                      wv.push_back(
                          b_.CreateVectorSplat(static_cast<unsigned>(vl), weight(b_.CreateAdd(o0, c64(o)), i, u, v)));
                    for (int64_t ch = 0; ch < chunks; ++ch) {
                      std::vector<bool> on = columnLanes(ch, Q, v - padW, Win);
                      if (std::none_of(on.begin(), on.end(), [](bool x) { return x; }))
                        continue;
                      for (int64_t r = 0; r < rows; ++r) {
                        llvm::Value *xv = maskedLoad(b_.CreateGEP(f32_, rowPtr[r], c64(ch * vl + v - padW)), on);
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

  // dw[f, c, u, v] = sum over b, i, j of y[b, f, i, j] * x[b, c, i + u - p, j + v - p], blocks of
  // filters [lo, hi): for each (block, c) and each block of filter rows, the sums of its taps are
  // vectors in registers along the output rows; the lanes are added at the end.
  void rowBackFilter(const Kernel &k, llvm::Value *lo, llvm::Value *hi) {
    const Node &n = f_.nodes[k.root];
    int xNode = n.operands[0], yNode = n.operands[1], wNode = k.root;
    const Shape xs = f_.nodes[xNode].shape, ys = f_.nodes[yNode].shape, ws = f_.nodes[wNode].shape;
    int64_t H = xs[2], W = xs[3], Kw = ws[3], Ho = ys[2], Wo = ys[3];
    int64_t p = n.attrs.padding, vl = lanes(), chunks = (Wo + vl - 1) / vl, fb = plan_->channels;
    auto c64 = [&](int64_t v) { return b_.getInt64(v); };
    llvm::Function *fn = b_.GetInsertBlock()->getParent();
    filterBlocks(
        k, lo, hi, [&](llvm::Value *b, llvm::Value *f0, llvm::Value *c, int64_t u0, int64_t ub, const SumAt &sum) {
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
                  llvm::Value *h = b_.CreateAdd(i, c64(u0 + uu - p));
                  auto *then = llvm::BasicBlock::Create(c_, "tap", fn),
                       *next = llvm::BasicBlock::Create(c_, "tap.next", fn);
                  b_.CreateCondBr(b_.CreateAnd(b_.CreateICmpSGE(h, c64(0)), b_.CreateICmpSLT(h, c64(H))), then, next);
                  b_.SetInsertPoint(then);
                  llvm::Value *xRow = imageRow(xNode, b, c, h);
                  for (int64_t v = 0; v < Kw; ++v) {
                    std::vector<llvm::Value *> sums;
                    for (int64_t fo = 0; fo < fb; ++fo)
                      sums.push_back(b_.CreateLoad(vecTy(), sum(fo, uu, v)));
                    for (int64_t ch = 0; ch < chunks; ++ch) {
                      std::vector<bool> on = columnLanes(ch, Wo, v - p, W);
                      if (std::none_of(on.begin(), on.end(), [](bool x) { return x; }))
                        continue;
                      llvm::Value *xv = maskedLoad(b_.CreateGEP(f32_, xRow, c64(ch * vl + v - p)), on);
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
  // zeroed, `perSample` adds each sample's products to them, and their lanes go into w.
  using SumAt = std::function<llvm::Value *(int64_t fo, int64_t uu, int64_t v)>;
  void filterBlocks(const Kernel &k, llvm::Value *lo, llvm::Value *hi,
                    const std::function<void(llvm::Value *b, llvm::Value *f0, llvm::Value *c, int64_t u0, int64_t ub,
                                             const SumAt &sum)> &perSample) {
    const Node &n = f_.nodes[k.root];
    const Shape &ws = n.shape;
    int64_t C = ws[1], Kh = ws[2], Kw = ws[3];
    int64_t fb = plan_->channels, rowBlock = plan_->rows;
    llvm::AllocaInst *acc = entryAlloca(llvm::ArrayType::get(vecTy(), fb * rowBlock * Kw), nullptr, "acc"); // registers
    auto c64 = [&](int64_t v) { return b_.getInt64(v); };
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
                  c64(0), batch_, [&](llvm::Value *b) { perSample(b, f0, c, u0, ub, sum); }, true);
              for (int64_t fo = 0; fo < fb; ++fo)
                for (int64_t uu = 0; uu < ub; ++uu)
                  for (int64_t v = 0; v < Kw; ++v)
                    store(k.root, {b_.CreateAdd(f0, c64(fo)), c, c64(u0 + uu), c64(v)},
                          b_.CreateFAddReduce(zero(), b_.CreateLoad(vecTy(), sum(fo, uu, v))));
            }
          },
          true);
    });
  }

  // Direct convolution in the three forms of Ops.def. The innermost loop runs along an output or
  // input row (j), contiguous for stride 1, so it vectorizes; padding is handled by loop bounds.
  void directConv(const Kernel &k, llvm::Value *lo, llvm::Value *hi) {
    const Node &n = f_.nodes[k.root];
    int xNode = n.op == Op::Conv2DBackData ? k.root : n.operands[0];
    int wNode = n.op == Op::Conv2DBackFilter ? k.root : n.operands[1];
    int yNode = n.op == Op::Conv2D ? k.root : n.op == Op::Conv2DBackData ? n.operands[0] : n.operands[1];
    const Shape xs = f_.nodes[xNode].shape, ws = f_.nodes[wNode].shape, ys = f_.nodes[yNode].shape;
    int64_t C = xs[1], H = xs[2], W = xs[3], F = ws[0], Kh = ws[2], Kw = ws[3], Ho = ys[2], Wo = ys[3];
    int64_t s = n.attrs.stride, p = n.attrs.padding;
    auto c64 = [&](int64_t v) { return b_.getInt64(v); };
    auto inputAt = [&](llvm::Value *i, llvm::Value *u) { // i * s + u - p
      return b_.CreateSub(b_.CreateAdd(b_.CreateMul(i, c64(s)), u), c64(p));
    };
    // for u, v in the filter: for i, j in the outputs they touch: body(c?, u, v, i, j, h, w)
    auto window = [&](const std::function<void(llvm::Value *, llvm::Value *, llvm::Value *, llvm::Value *,
                                               llvm::Value *, llvm::Value *)> &body) {
      loop(c64(0), c64(Kh), [&](llvm::Value *u) {
        auto [iLo, iHi] = validRange(u, H, Ho, Kh, s, p);
        loop(c64(0), c64(Kw), [&](llvm::Value *v) {
          auto [jLo, jHi] = validRange(v, W, Wo, Kw, s, p);
          loop(iLo, iHi, [&](llvm::Value *i) {
            llvm::Value *h = inputAt(i, u);
            loop(jLo, jHi, [&](llvm::Value *j) { body(u, v, i, j, h, inputAt(j, v)); });
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
          loop(c64(0), c64(C), [&](llvm::Value *c) {
            window([&](llvm::Value *u, llvm::Value *v, llvm::Value *i, llvm::Value *j, llvm::Value *h, llvm::Value *w) {
              llvm::Value *wv = load(wNode, {f, c, u, v});
              accumulate(yNode, {b, f, i, j}, b_.CreateFMul(wv, load(xNode, {b, c, h, w})));
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
          loop(c64(0), c64(C), [&](llvm::Value *c) {
            window([&](llvm::Value *u, llvm::Value *v, llvm::Value *i, llvm::Value *j, llvm::Value *h, llvm::Value *w) {
              llvm::Value *wv = load(wNode, {f, c, u, v});
              accumulate(xNode, {b, c, h, w}, b_.CreateFMul(wv, load(yNode, {b, f, i, j})));
            });
          });
        });
      });
      return;
    case Op::Conv2DBackFilter: { // rows are filters: w[f] sums over the batch
      llvm::AllocaInst *acc = entryAlloca(f32_, nullptr, "acc");
      loop(lo, hi, [&](llvm::Value *f) {
        loop(c64(0), c64(C), [&](llvm::Value *c) {
          loop(c64(0), c64(Kh), [&](llvm::Value *u) {
            auto [iLo, iHi] = validRange(u, H, Ho, Kh, s, p);
            loop(c64(0), c64(Kw), [&](llvm::Value *v) {
              auto [jLo, jHi] = validRange(v, W, Wo, Kw, s, p);
              b_.CreateStore(zero(), acc);
              loop(c64(0), batch_, [&](llvm::Value *b) {
                loop(iLo, iHi, [&](llvm::Value *i) {
                  llvm::Value *h = inputAt(i, u);
                  loop(jLo, jHi, [&](llvm::Value *j) {
                    llvm::Value *prod = b_.CreateFMul(load(yNode, {b, f, i, j}), load(xNode, {b, c, h, inputAt(j, v)}));
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
  std::map<int, llvm::GlobalVariable *> constants_;    // Constant nodes' arrays
  std::map<int64_t, llvm::GlobalVariable *> zeroRows_; // zeroRow's arrays, by size
  int fusedProduct_ = -1;
  llvm::Value *productValue_ = nullptr;
  llvm::Value *flatOffset_ = nullptr; // flatElementwise: the element's offset in every tensor
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

} // namespace

llvm::GlobalVariable *privateConstant(llvm::Module &m, const std::string &name, llvm::Constant *init, unsigned align) {
  auto *g = llvm::cast<llvm::GlobalVariable>(m.getOrInsertGlobal(name, init->getType()));
  g->setInitializer(init);
  g->setConstant(true);
  g->setLinkage(llvm::GlobalValue::PrivateLinkage);
  g->setAlignment(llvm::Align(align));
  return g;
}

transforms::Machine machine(const TargetInfo &target) {
  return {std::max(4, target.preferVectorWidth / 32), target.vectorRegisters};
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
  return m;
}

} // namespace soma::codegen
