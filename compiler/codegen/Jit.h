// The LLVM side of Soma, behind a small interface: host target detection, the O3 pipeline
// (with libmvec's 16-lane math), the ORC LLJIT, and textual/object output for `soma emit`.
#pragma once
#include "codegen/KernelEmitter.h"

#include <memory>
#include <string>

namespace llvm {
class Module;
class LLVMContext;
} // namespace llvm

namespace soma::codegen {

// Host target: triple, cpu, features. Safe to call more than once.
TargetInfo hostTarget();

// Runs the O3 pipeline on `m` for `target`.
void optimize(llvm::Module &m, const TargetInfo &target);
std::string moduleText(const llvm::Module &m);
// Assembly for `m` as the host target would emit it.
std::string assemblyText(llvm::Module &m, const TargetInfo &target);

class Jit {
public:
  // Returns nullptr and sets `error` on failure.
  static std::unique_ptr<Jit> create(std::string &error);
  ~Jit();
  // Takes ownership of module and context. Returns "" or an error.
  std::string add(std::unique_ptr<llvm::Module> m, std::unique_ptr<llvm::LLVMContext> ctx);
  void *lookup(const std::string &name, std::string &error);

private:
  Jit();
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

} // namespace soma::codegen
