// Loops over time (Op::Loop). The pass runs them itself: before the first step each carry's first
// value is copied into a buffer of the loop's own; every step copies its slice of each sequence
// into a contiguous buffer, calls the body's kernels (emitted by an emitter of the body, each with
// its plan, on the same threads), then copies the body's results out: a carry into its buffer
// (unless the body updated it there in place) and into its stacked result, a step's output into
// its stacked result. The copies move a step's values (B x features), a small part of the step's
// products.
#include "codegen/Emitter.h"

#include <cassert>

namespace soma::codegen {

using ir::LoopAttrs;

namespace {

// A step's value of shape `s` holds rows of this many floats: one row per sample when s has a
// batch axis (first), else one row.
int64_t rowFloats(const Shape &s) { return ir::numElements(s, 1); }
bool batched(const Shape &s) { return !s.empty() && s[0] == kBatch; }

} // namespace

// rows times: n floats from src + r * srcStride to dst + r * dstStride (an internal function of
// the module, optimized as the kernels are).
void FunctionEmitter::copyRows(llvm::Value *dst, llvm::Value *dstStride, llvm::Value *src, llvm::Value *srcStride,
                               llvm::Value *rows, llvm::Value *n) {
  llvm::Function *fn = m_.getFunction("soma.copy_rows");
  if (!fn) {
    auto *ty = llvm::FunctionType::get(b_.getVoidTy(), {ptr_, i64_, ptr_, i64_, i64_, i64_}, false);
    fn = llvm::Function::Create(ty, llvm::Function::InternalLinkage, "soma.copy_rows", m_);
    setAttrs(fn);
    llvm::IRBuilderBase::InsertPointGuard guard(b_);
    auto *entry = llvm::BasicBlock::Create(c_, "entry", fn), *head = llvm::BasicBlock::Create(c_, "head", fn),
         *row = llvm::BasicBlock::Create(c_, "row", fn), *done = llvm::BasicBlock::Create(c_, "done", fn);
    b_.SetInsertPoint(entry);
    b_.CreateBr(head);
    b_.SetInsertPoint(head);
    llvm::PHINode *r = b_.CreatePHI(i64_, 2, "r");
    r->addIncoming(b_.getInt64(0), entry);
    b_.CreateCondBr(b_.CreateICmpSLT(r, fn->getArg(4)), row, done);
    b_.SetInsertPoint(row);
    llvm::Value *to = b_.CreateGEP(f32_, fn->getArg(0), b_.CreateMul(r, fn->getArg(1)));
    llvm::Value *from = b_.CreateGEP(f32_, fn->getArg(2), b_.CreateMul(r, fn->getArg(3)));
    b_.CreateMemCpy(to, llvm::MaybeAlign(4), from, llvm::MaybeAlign(4), b_.CreateMul(fn->getArg(5), b_.getInt64(4)));
    r->addIncoming(b_.CreateAdd(r, b_.getInt64(1)), row);
    b_.CreateBr(head);
    b_.SetInsertPoint(done);
    b_.CreateRetVoid();
  }
  b_.CreateCall(fn, {dst, dstStride, src, srcStride, rows, n});
}

void FunctionEmitter::emitLoop(const Kernel &k, const KernelPlan &p) {
  const Node &n = f_.nodes[k.root];
  const LoopAttrs &la = n.attrs.loop;
  auto bi = static_cast<size_t>(la.body);
  const Function &body = f_.bodies[bi];
  const Schedule &bs = s_.bodies[bi];
  const transforms::LoopSlots &ls = s_.loopSlots[bi];
  auto nc = static_cast<size_t>(la.carries), ns = static_cast<size_t>(la.sequences);
  size_t nr = body.results.size();
  std::vector<Emitted> kernels = FunctionEmitter(m_, body, bs, p.body, target_).emitKernels();

  auto word = [&](int slot) -> llvm::Value * {
    return b_.CreateLoad(ptr_, b_.CreateConstGEP1_64(i64_, ctx_, 1 + slot));
  };
  auto rowsOf = [&](const Shape &s) -> llvm::Value * { return batched(s) ? batch_ : b_.getInt64(1); };
  auto whole = [&](llvm::Value *dst, llvm::Value *src, const Shape &s) { // a contiguous copy
    llvm::Value *count = b_.CreateMul(rowsOf(s), b_.getInt64(rowFloats(s)));
    copyRows(dst, count, src, count, b_.getInt64(1), count);
  };
  auto marker = [&](const char *name) { // the loop is one kernel to --profile
    b_.CreateCall(m_.getOrInsertFunction(name, llvm::FunctionType::get(b_.getVoidTy(), {}, false)));
  };
  marker("soma_rt_loop_begin");
  std::vector<int> resultSlot(nr + nc, -1); // the live loop_result nodes' buffers
  for (int r : k.alsoRoots)
    resultSlot[static_cast<size_t>(f_.nodes[r].attrs.offset)] = s_.slot[r];
  std::vector<llvm::Value *> carry(nc);
  for (size_t j = 0; j < nc; ++j) {
    carry[j] = word(ls.carries[j]);
    whole(carry[j], word(s_.slot[n.operands[j]]), body.nodes[j].shape);
  }

  // for (s = 0; s < steps; ++s), step t = s or steps - 1 - s
  llvm::Function *fn = b_.GetInsertBlock()->getParent();
  llvm::AllocaInst *counter = llvm::IRBuilder<>(entry_->getTerminator()).CreateAlloca(i64_, nullptr, "step");
  b_.CreateStore(b_.getInt64(0), counter);
  auto *head = llvm::BasicBlock::Create(c_, "loop.head", fn), *each = llvm::BasicBlock::Create(c_, "loop.step", fn),
       *exit = llvm::BasicBlock::Create(c_, "loop.exit", fn);
  b_.CreateBr(head);
  b_.SetInsertPoint(head);
  llvm::Value *s = b_.CreateLoad(i64_, counter);
  b_.CreateCondBr(b_.CreateICmpSLT(s, b_.getInt64(la.steps)), each, exit);
  b_.SetInsertPoint(each);
  llvm::Value *t = la.reverse ? b_.CreateSub(b_.getInt64(la.steps - 1), s) : s;
  // Step t of a stacked value whose step has shape `step`, and the stride between its rows.
  auto at = [&](llvm::Value *stacked, const Shape &step) {
    int64_t n = rowFloats(step);
    return std::pair{b_.CreateGEP(f32_, stacked, b_.CreateMul(t, b_.getInt64(n))), b_.getInt64(la.steps * n)};
  };
  std::vector<llvm::Value *> slice(ns);
  for (size_t q = 0; q < ns; ++q) {
    const Shape &step = body.nodes[nc + q].shape;
    slice[q] = word(ls.slices[q]);
    auto [from, stride] = at(word(s_.slot[n.operands[nc + q]]), step);
    copyRows(slice[q], b_.getInt64(rowFloats(step)), from, stride, rowsOf(step), b_.getInt64(rowFloats(step)));
  }
  // The body's buffers: its inputs are this step's values, the rest buffers of the loop.
  auto bodyPointer = [&](int bslot) -> llvm::Value * {
    int node = bs.slotNode[static_cast<size_t>(bslot)];
    assert(node >= 0 && "a body kernel reads or writes a buffer that exists");
    if (ls.body[static_cast<size_t>(bslot)] >= 0)
      return word(ls.body[static_cast<size_t>(bslot)]);
    auto input = static_cast<size_t>(node); // the body's inputs are its first nodes
    return input < nc ? carry[input] : input < nc + ns ? slice[input - nc] : word(s_.slot[n.operands[input]]);
  };
  for (const Emitted &e : kernels) {
    assert(e.fn && "a loop body holds no loop");
    callKernel(e, bodyPointer);
  }
  for (size_t r = 0; r < nr; ++r) {
    int value = body.results[r].value;
    int bslot = bs.slot[static_cast<size_t>(value)];
    const Shape &shape = body.nodes[static_cast<size_t>(value)].shape;
    llvm::Value *src = bodyPointer(bslot);
    auto stack = [&](int slot) {
      if (slot < 0)
        return;
      auto [to, stride] = at(word(slot), shape);
      copyRows(to, stride, src, b_.getInt64(rowFloats(shape)), rowsOf(shape), b_.getInt64(rowFloats(shape)));
    };
    if (r < nc) {
      stack(resultSlot[nr + r]);
      if (bs.slotNode[static_cast<size_t>(bslot)] != static_cast<int>(r)) // else updated in place
        whole(carry[r], src, shape);
    } else
      stack(resultSlot[r]);
  }
  b_.CreateStore(b_.CreateAdd(s, b_.getInt64(1)), counter);
  b_.CreateBr(head);
  b_.SetInsertPoint(exit);
  for (size_t j = 0; j < nc; ++j)
    if (resultSlot[j] >= 0)
      whole(word(resultSlot[j]), carry[j], body.nodes[j].shape);
  marker("soma_rt_loop_end");
}

} // namespace soma::codegen
