// IR + schedule -> LLVM IR. Each kernel becomes a function `<fn>.k<i>(ctx, lo, hi)` running
// rows [lo, hi) of its outermost loop; the function `<fn>(ctx)` calls the kernels in order,
// through the runtime's soma_rt_parallel_for so that rows are split over threads.
// ctx is an array of 8-byte words: word 0 is the batch size, word 1 + s the pointer of slot s.
#pragma once
#include "ir/IR.h"
#include "transforms/Plan.h"

#include <memory>

namespace llvm {
class Constant;
class GlobalVariable;
class LLVMContext;
class Module;
} // namespace llvm

namespace soma::codegen {

struct FunctionToEmit {
  const ir::Function *function;
  const transforms::Schedule *schedule;
  const std::vector<transforms::KernelPlan> *plans; // one per kernel, planned for the same target
};

// Target attributes (cpu, features, preferred vector width) are set on every function.
struct TargetInfo {
  std::string triple, cpu, features, dataLayout;
  int preferVectorWidth = 512;
  int vectorRegisters = 32; // AVX-512 has 32, AVX2 16
  // A core's L2 cache: this machine's; for x86-64-v4 1 MB (AVX-512 parts), for x86-64-v3 512 KB.
  int64_t l2Bytes = int64_t{1} << 20;
};

// What the planner may assume of a target: its vector lanes (at least 4), registers and L2.
transforms::Machine machine(const TargetInfo &target);

std::unique_ptr<llvm::Module> emitModule(llvm::LLVMContext &ctx, const std::vector<FunctionToEmit> &fns,
                                         const TargetInfo &target);

// A private constant global of `m` named `name` (made through the module, not `new`: GCC's
// sanitizer builds misjudge GlobalVariable's placement operator new).
llvm::GlobalVariable *privateConstant(llvm::Module &m, const std::string &name, llvm::Constant *init, unsigned align);

} // namespace soma::codegen
