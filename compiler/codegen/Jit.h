// The LLVM side of Soma, behind a small interface: host target detection, the O3 pipeline
// (with libmvec's 16-lane math), the ORC LLJIT, and textual/object output for `soma emit`.
#pragma once
#include "codegen/KernelEmitter.h"

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace llvm {
class Module;
class LLVMContext;
} // namespace llvm

namespace soma::codegen {

// Host target: triple, cpu, features. Safe to call more than once.
TargetInfo hostTarget();
// `--target`: native (this machine), x86-64-v3 (AVX2, FMA) or x86-64-v4 (AVX-512). Returns
// nullopt for another name.
std::optional<TargetInfo> namedTarget(const std::string &name);

// Runs the O3 pipeline on `m` for `target`.
void optimize(llvm::Module &m, const TargetInfo &target);
std::string moduleText(const llvm::Module &m);
// Assembly for `m` as the host target would emit it.
std::string assemblyText(llvm::Module &m, const TargetInfo &target);
// An ELF object of the optimized `m`; sets `error` on failure.
std::string objectCode(llvm::Module &m, const TargetInfo &target, std::string &error);
// Optimizes and compiles the unoptimized `m` into `parts` ELF objects, one thread each: the
// kernels (the module's local functions) are spread over the parts by size, and every other
// definition stays in the first. `emit` builds `m` again in another context, for each other part.
// The kernels become external symbols, so the objects are for one JIT, not for a library. Sets
// `error` on failure. `optimized` is called once the first part is optimized (for --time-passes).
std::vector<std::string> objectCodes(llvm::Module &m,
                                     const std::function<std::unique_ptr<llvm::Module>(llvm::LLVMContext &)> &emit,
                                     const TargetInfo &target, unsigned parts, const std::function<void()> &optimized,
                                     std::string &error);
// How many parts objectCodes should make here: one per core, at most 8.
unsigned compileThreads();
// A digest of the unoptimized `m`, the target, the number of parts and the compiler: what the
// object code depends on.
std::string cacheKey(const llvm::Module &m, const TargetInfo &target, unsigned parts);

class Jit {
public:
  // Returns nullptr and sets `error` on failure.
  static std::unique_ptr<Jit> create(std::string &error);
  ~Jit();
  // Loads an object made by objectCode. Returns "" or an error.
  std::string addObject(const std::string &object);
  void *lookup(const std::string &name, std::string &error);

private:
  Jit();
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

} // namespace soma::codegen
