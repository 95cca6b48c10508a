// THE pipeline: source -> AST -> checked Program -> IR -> IR with gradients -> kernels ->
// LLVM IR -> machine code. `compile` runs the stages in order and can stop after any of them,
// printing it (`soma emit <stage>`).
#pragma once
#include "ast/Sema.h"
#include "codegen/Jit.h"
#include "lowering/Lower.h"
#include "soma/Session.h"
#include "support/Diagnostics.h"
#include "transforms/Plan.h"

#include <iosfwd>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace soma {

enum class Stage { Ast, Check, Ir, Grad, Opt, Kernels, Llvm, Asm, Jit };
std::optional<Stage> stageFromName(const std::string &name);

struct CompiledModel {
  Program program;
  LoweredModel lowered;
  transforms::Schedule forwardSchedule, trainSchedule;
  std::vector<transforms::KernelPlan> forwardPlans, trainPlans; // one per kernel
  rt::ModelInfo info;                // what the runtime needs (layouts from Stage::Kernels on)
  std::unique_ptr<codegen::Jit> jit; // set when compiled to Stage::Jit for this process
  rt::Entries entries;               // the JIT's functions
  // Stage::Jit: the machine code, ELF objects (one for a program or library; for the JIT, one
  // per compile thread)
  std::vector<std::string> objects;
  bool cached = false; // the objects came from the cache
  std::string libName; // Artifact::Library: the prefix of its C functions
  double jitMs = 0;    // code generation (or the cache) + loading
};

// What Stage::Jit makes: code loaded in this process, or an object for a program or library.
enum class Artifact { Jit, Executable, Library };

struct CompileOptions {
  std::string path;
  Stage stopAfter = Stage::Jit;
  bool emit = false; // print the last stage to `out`
  // When set, each stage's wall-clock milliseconds, in order (`--time-passes`).
  std::vector<std::pair<std::string, double>> *passTimes = nullptr;
  Artifact artifact = Artifact::Jit;
  std::string libName;                       // Library: the prefix of its C functions
  std::optional<codegen::TargetInfo> target; // default: this machine
  bool cache = true;                         // reuse machine code compiled before from the same IR and target
};

// The C identifier a model's name makes (Digits -> digits).
std::string libraryName(const std::string &modelName);

// The runtime's description of a lowered model (layouts once scheduled).
rt::ModelInfo describeModel(const CompiledModel &m);

// Diagnostics go to `errs`. Returns nullptr when compilation failed (errors were reported).
std::unique_ptr<CompiledModel> compile(const CompileOptions &opts, std::ostream &out, std::ostream &errs);

} // namespace soma
