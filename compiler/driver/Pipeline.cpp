// The stages in order; each `if (stop(...))` is a place `soma emit` can print.
#include "driver/Pipeline.h"

#include "codegen/Package.h"
#include "driver/Cache.h"
#include "frontend/Parser.h"
#include "transforms/CSE.h"
#include "transforms/Phases.h"

#include <cctype>
#include <chrono>
#include <filesystem>
#include <llvm/IR/LLVMContext.h>
#include <llvm/IR/Module.h>
#include <ostream>

namespace soma {

std::optional<Stage> stageFromName(const std::string &name) {
  static const std::pair<const char *, Stage> names[] = {
      {"ast", Stage::Ast},         {"ir", Stage::Ir},     {"grad", Stage::Grad}, {"opt", Stage::Opt},
      {"kernels", Stage::Kernels}, {"llvm", Stage::Llvm}, {"asm", Stage::Asm}};
  for (auto [n, s] : names)
    if (name == n)
      return s;
  return std::nullopt;
}

std::string libraryName(const std::string &modelName) {
  std::string s;
  for (char c : modelName)
    s += std::isalnum(static_cast<unsigned char>(c)) ? static_cast<char>(std::tolower(static_cast<unsigned char>(c)))
                                                     : '_';
  if (s.empty() || std::isdigit(static_cast<unsigned char>(s[0])))
    s = "model_" + s;
  return s;
}

rt::ModelInfo describeModel(const CompiledModel &m) {
  const ModelSpec &spec = m.program.model;
  rt::ModelInfo info;
  info.name = spec.name;
  info.inputName = spec.inputName;
  info.inputDims = spec.inputDims;
  info.outputDims = spec.outputDims();
  info.outputs = m.lowered.outputs;
  // A single output is a probability, or a logit when binary cross-entropy reads it directly.
  const std::optional<TrainSpec> &t = m.program.train;
  bool logit = t && t->mainLoss().kind == LossKind::BinaryCrossEntropy && t->mainLoss().output < 0 &&
               !spec.outputIs(LayerKind::Sigmoid);
  info.threshold = logit ? 0.0f : 0.5f;
  for (const ParamInfo &p : m.lowered.params)
    info.params.push_back(p.info());
  for (const ParamInfo &p : m.lowered.state)
    info.state.push_back(p.info());
  for (const ParamInfo &p : m.lowered.buffers)
    info.buffers.push_back(p.info());
  if (t)
    info.config = static_cast<const rt::TrainConfig &>(*t);
  if (!m.forwardSchedule.slot.empty()) // scheduled (Stage::Kernels and later)
    info.forward = transforms::layout(m.lowered.forward, m.forwardSchedule, m.forwardPlans);
  if (t && !m.trainSchedule.slot.empty())
    info.train = transforms::layout(m.lowered.train, m.trainSchedule, m.trainPlans);
  return info;
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
  cm->info = describeModel(*cm);
  if (stop(Stage::Grad)) {
    if (opts.emit)
      ir::print(training ? cm->lowered.train : cm->lowered.forward, out);
    return cm;
  }

  // 5. Simplification: strided convolutions without a kernel of their own on the target run over
  // phases; shared subexpressions computed once, unused nodes dropped.
  codegen::TargetInfo target = opts.target ? *opts.target : codegen::hostTarget();
  transforms::Machine machine = codegen::machine(target);
  cm->lowered.forward = transforms::splitStrides(cm->lowered.forward, machine);
  if (training)
    cm->lowered.train = transforms::splitStrides(cm->lowered.train, machine);
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

  // 6. Fusion into kernels and buffer slots, then each kernel's plan for the target: its
  // strategy, tile and work split.
  cm->forwardSchedule = transforms::schedule(cm->lowered.forward);
  int64_t batch = cm->program.train ? cm->program.train->batch : transforms::kDefaultPlanBatch;
  cm->forwardPlans = transforms::planKernels(cm->lowered.forward, cm->forwardSchedule, machine, batch);
  if (training) {
    cm->trainSchedule = transforms::schedule(cm->lowered.train);
    cm->trainPlans = transforms::planKernels(cm->lowered.train, cm->trainSchedule, machine, batch);
  }
  cm->info = describeModel(*cm);
  mark("fusion and kernel plans");
  if (stop(Stage::Kernels)) {
    if (opts.emit) {
      out << "forward:\n";
      transforms::print(cm->lowered.forward, cm->forwardSchedule, cm->forwardPlans, out);
      if (training) {
        out << "train_step:\n";
        transforms::print(cm->lowered.train, cm->trainSchedule, cm->trainPlans, out);
      }
    }
    return cm;
  }

  // 7. LLVM IR for the target; for a program or a library, with the model's description and
  // its entry points (main, or the C functions).
  auto start = std::chrono::steady_clock::now();
  auto ctx = std::make_unique<llvm::LLVMContext>();
  std::vector<codegen::FunctionToEmit> fns = {{&cm->lowered.forward, &cm->forwardSchedule, &cm->forwardPlans}};
  if (training)
    fns.push_back({&cm->lowered.train, &cm->trainSchedule, &cm->trainPlans});
  auto emit = [&](llvm::LLVMContext &c) { return codegen::emitModule(c, fns, target); };
  std::unique_ptr<llvm::Module> module = emit(*ctx);
  if (opts.artifact != Artifact::Jit) {
    // A built program runs from any directory: its data paths are absolute.
    rt::ModelInfo built = cm->info;
    if (built.config)
      for (std::optional<rt::DataSpec> *set : {&built.config->train, &built.config->test})
        if (*set)
          for (std::string *path : {&(*set)->images, &(*set)->labels})
            if (!path->empty())
              *path = std::filesystem::absolute(*path).lexically_normal().string();
    codegen::addProgram(*module, rt::serializeModel(built), training,
                        opts.artifact == Artifact::Executable ? codegen::ProgramKind::Executable
                                                              : codegen::ProgramKind::Library,
                        cm->libName = opts.libName.empty() ? libraryName(cm->program.model.name) : opts.libName);
  }
  mark("LLVM IR");
  if (stop(Stage::Llvm) || stop(Stage::Asm)) {
    codegen::optimize(*module, target);
    mark("LLVM O3");
    if (opts.emit)
      out << (stop(Stage::Llvm) ? codegen::moduleText(*module) : codegen::assemblyText(*module, target));
    return cm;
  }

  // 8. Machine code: from the cache when this IR was compiled for this target before. The JIT
  // compiles on every core, each thread a part of the kernels; a program or library is one
  // object, whose kernels stay local symbols.
  std::string error;
  unsigned parts = opts.artifact == Artifact::Jit ? codegen::compileThreads() : 1;
  std::string key = codegen::cacheKey(*module, target, parts);
  mark("cache key");
  if (opts.cache && readCachedObjects(key, cm->objects)) {
    cm->cached = true;
    mark("machine code (cached)");
  } else {
    cm->objects = codegen::objectCodes(
        *module, emit, target, parts, [&] { mark("LLVM O3"); }, error);
    if (!error.empty()) {
      errs << "soma: error: code generation failed: " << error << "\n";
      return nullptr;
    }
    if (opts.cache)
      writeCachedObjects(key, cm->objects);
    mark("machine code");
  }
  if (opts.artifact == Artifact::Jit) {
    cm->jit = codegen::Jit::create(error);
    for (size_t i = 0; cm->jit && error.empty() && i < cm->objects.size(); ++i)
      error = cm->jit->addObject(cm->objects[i]);
    if (error.empty())
      cm->entries.forward = reinterpret_cast<rt::EntryFn>(cm->jit->lookup("forward", error));
    if (error.empty() && training)
      cm->entries.train = reinterpret_cast<rt::EntryFn>(cm->jit->lookup("train_step", error));
    if (!error.empty()) {
      errs << "soma: error: JIT compilation failed: " << error << "\n";
      return nullptr;
    }
    mark("JIT loading");
  }
  cm->jitMs = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
  return cm;
}

} // namespace soma
