// THE pipeline: source -> AST -> checked Program -> IR -> IR with gradients -> kernels ->
// LLVM IR -> machine code. `compile` runs the stages in order and can stop after any of them,
// printing it (`soma emit <stage>`).
#pragma once
#include "ast/Sema.h"
#include "codegen/Jit.h"
#include "lowering/Lower.h"
#include "support/Diagnostics.h"
#include "transforms/Schedule.h"

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
  std::unique_ptr<codegen::Jit> jit; // set when compiled to Stage::Jit
  void (*forwardEntry)(void *) = nullptr;
  void (*trainEntry)(void *) = nullptr;
  double jitMs = 0; // codegen + optimization + JIT
};

struct CompileOptions {
  std::string path;
  Stage stopAfter = Stage::Jit;
  bool emit = false; // print the last stage to `out`
  // When set, each stage's wall-clock milliseconds, in order (`--time-passes`).
  std::vector<std::pair<std::string, double>> *passTimes = nullptr;
};

// Diagnostics go to `errs`. Returns nullptr when compilation failed (errors were reported).
std::unique_ptr<CompiledModel> compile(const CompileOptions &opts, std::ostream &out, std::ostream &errs);

} // namespace soma
