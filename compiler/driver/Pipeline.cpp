// The stages in order; each `if (stop(...))` is a place `soma emit` can print.
#include "driver/Pipeline.h"

#include "frontend/Parser.h"
#include "transforms/CSE.h"

#include <chrono>
#include <filesystem>
#include <llvm/IR/LLVMContext.h>
#include <llvm/IR/Module.h>
#include <ostream>

namespace soma {

std::optional<Stage> stageFromName(const std::string &name) {
  static const std::pair<const char *, Stage> names[] = {{"ast", Stage::Ast},         {"ir", Stage::Ir},
                                                         {"grad", Stage::Grad},       {"opt", Stage::Opt},
                                                         {"kernels", Stage::Kernels},
                                                         {"llvm", Stage::Llvm},       {"asm", Stage::Asm}};
  for (auto [n, s] : names)
    if (name == n)
      return s;
  return std::nullopt;
}

std::unique_ptr<CompiledModel> compile(const CompileOptions &opts, std::ostream &out, std::ostream &errs) {
  SourceManager sm;
  DiagnosticEngine diags(sm, errs);
  std::string readError;
  uint32_t file = sm.addFile(opts.path, readError);
  if (!file) {
    errs << opts.path << ": error: " << readError << "\n";
    return nullptr;
  }
  auto stop = [&](Stage s) { return opts.stopAfter == s; };
  auto last = std::chrono::steady_clock::now();
  auto mark = [&](const char *stage) { // --time-passes
    auto now = std::chrono::steady_clock::now();
    if (opts.passTimes)
      opts.passTimes->push_back({stage, std::chrono::duration<double, std::milli>(now - last).count()});
    last = now;
  };

  // 1. Parse.
  std::optional<ast::File> tree = parseFile(file, sm, diags);
  if (!tree)
    return nullptr;
  mark("parse");
  if (stop(Stage::Ast)) {
    if (opts.emit)
      ast::print(*tree, sm, out);
    return std::make_unique<CompiledModel>();
  }

  // 2. Check names, arguments and shapes.
  std::string dir = std::filesystem::path(opts.path).parent_path().string();
  std::optional<Program> program = checkFile(*tree, dir.empty() ? "." : dir, diags);
  if (!program)
    return nullptr;
  mark("check");
  auto cm = std::make_unique<CompiledModel>();
  cm->program = std::move(*program);
  if (stop(Stage::Check))
    return cm;

  // 3. Lower to the tensor IR: forward pass and loss.
  cm->lowered = lowerModel(cm->program);
  assert(verify(cm->lowered.forward).empty());
  mark("lower");
  if (stop(Stage::Ir)) {
    if (opts.emit)
      ir::print(cm->lowered.forward, out);
    return cm;
  }

  // 4. Training step: reverse-mode AD and the optimizer update.
  bool training = cm->program.train.has_value();
  if (training) {
    lowerTraining(cm->lowered, cm->program);
    assert(verify(cm->lowered.train).empty());
    mark("autodiff and optimizer");
  }
  if (stop(Stage::Grad)) {
    if (opts.emit)
      ir::print(training ? cm->lowered.train : cm->lowered.forward, out);
    return cm;
  }

  // 5. Simplification: shared subexpressions computed once, unused nodes dropped.
  cm->lowered.forward = transforms::eliminateCommonSubexpressions(cm->lowered.forward);
  assert(verify(cm->lowered.forward).empty());
  if (training) {
    cm->lowered.train = transforms::eliminateCommonSubexpressions(cm->lowered.train);
    assert(verify(cm->lowered.train).empty());
  }
  mark("common subexpressions");
  if (stop(Stage::Opt)) {
    if (opts.emit) {
      ir::print(cm->lowered.forward, out);
      if (training)
        ir::print(cm->lowered.train, out);
    }
    return cm;
  }

  // 6. Fusion into kernels and buffer slots.
  cm->forwardSchedule = transforms::schedule(cm->lowered.forward);
  if (training)
    cm->trainSchedule = transforms::schedule(cm->lowered.train);
  mark("fusion");
  if (stop(Stage::Kernels)) {
    if (opts.emit) {
      out << "forward:\n";
      transforms::print(cm->lowered.forward, cm->forwardSchedule, out);
      if (training) {
        out << "train_step:\n";
        transforms::print(cm->lowered.train, cm->trainSchedule, out);
      }
    }
    return cm;
  }

  // 7. LLVM IR, optimized for the host.
  auto start = std::chrono::steady_clock::now();
  auto ctx = std::make_unique<llvm::LLVMContext>();
  codegen::TargetInfo target = codegen::hostTarget();
  std::vector<codegen::FunctionToEmit> fns = {{&cm->lowered.forward, &cm->forwardSchedule}};
  if (training)
    fns.push_back({&cm->lowered.train, &cm->trainSchedule});
  std::unique_ptr<llvm::Module> module = codegen::emitModule(*ctx, fns, target);
  mark("LLVM IR");
  codegen::optimize(*module, target);
  mark("LLVM O3");
  if (stop(Stage::Llvm)) {
    if (opts.emit)
      out << codegen::moduleText(*module);
    return cm;
  }
  if (stop(Stage::Asm)) {
    if (opts.emit)
      out << codegen::assemblyText(*module, target);
    return cm;
  }

  // 8. Machine code in this process.
  std::string error;
  cm->jit = codegen::Jit::create(error);
  if (cm->jit)
    error = cm->jit->add(std::move(module), std::move(ctx));
  if (error.empty())
    cm->forwardEntry = reinterpret_cast<void (*)(void *)>(cm->jit->lookup("forward", error));
  if (error.empty() && training)
    cm->trainEntry = reinterpret_cast<void (*)(void *)>(cm->jit->lookup("train_step", error));
  if (!error.empty()) {
    errs << "soma: error: JIT compilation failed: " << error << "\n";
    return nullptr;
  }
  cm->jitMs = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
  mark("machine code (JIT)");
  return cm;
}

} // namespace soma
