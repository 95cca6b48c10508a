// The `soma` command line: run, check, emit, gradcheck. Flag errors exit with 2, compile and
// data errors with 1.
#include "driver/Build.h"
#include "driver/GradCheck.h"
#include "driver/Pipeline.h"
#include "soma/Format.h"
#include "soma/Train.h"

#include <algorithm>
#include <charconv>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <string>
#include <vector>

using namespace soma;

namespace {

const char *kUsage = R"(usage: soma <command> [options] FILE

commands:
  run FILE             JIT-compile the model, train it and evaluate after every epoch
  build FILE -o OUT    compile the model into a native executable OUT (train, eval, predict)
  build --lib FILE -o DIR
                       compile it into DIR/lib<name>.a and DIR/<name>.h, a C library
  check FILE           report errors, then print each layer's output shape and parameters
  emit STAGE FILE      print a compiler stage: ast, ir, grad, opt, kernels, llvm, asm
  gradcheck FILE       compare the derived gradients with finite differences

options for run (each overrides the file's train block):
%s  --eval-only          with --weights or --resume: evaluate on the test data, no training
  --predict INPUT      with --weights: each sample's class and its probability (INPUT: an IDX,
                       CSV or .npy file of samples), as a built program's `predict` prints them
  --output FILE.npy    with --predict: every output, to a NumPy file, instead of the classes

options for build:
  -o PATH              the executable, or with --lib the output directory
  --lib                a static library and a C header instead of an executable
  --shared             with --lib: a shared library (lib<name>.so) instead
  --name NAME          with --lib: the library's name and C prefix (default: the model's name)
  --target T           what the code may assume: native (this machine's CPU, the default; for
                       programs built and run on one machine), x86-64-v3 (AVX2 and FMA, most
                       x86 machines since 2015) or x86-64-v4 (AVX-512)

options for every command:
  --time-passes        compile time per stage, on stderr
  --no-cache           compile again instead of reusing machine code from the cache
                       ($SOMA_CACHE_DIR, else ~/.cache/soma)

options for gradcheck:
  --tolerance X        largest relative error accepted (default 1e-4)
)";

int usageError(const std::string &msg) {
  std::fprintf(stderr, "soma: error: %s\n(run 'soma --help' for usage)\n", msg.c_str());
  return 2;
}

// The layers, user-layer instances and named values of the model, in order, with their shapes.
int printSummary(const CompiledModel &m) {
  const ModelSpec &spec = m.program.model;
  std::string inputs;
  for (const GraphNode &n : spec.nodes) // several inputs: each its window of the features
    if (n.kind == GraphNode::Kind::InputPart)
      inputs += (inputs.empty() ? "" : ", ") + n.label + " f32" + formatDims(n.dims);
  if (inputs.empty())
    std::printf("model %s: input %s f32%s\n", spec.name.c_str(), spec.inputName.c_str(),
                formatDims(spec.inputDims).c_str());
  else
    std::printf("model %s: inputs %s\n", spec.name.c_str(), inputs.c_str());
  std::vector<const GraphNode *> rows;
  for (size_t i = 1; i < spec.nodes.size(); ++i) {
    const GraphNode &n = spec.nodes[i];
    if (!n.label.empty() && n.kind != GraphNode::Kind::Param && n.kind != GraphNode::Kind::InputPart && n.batched)
      rows.push_back(&n);
  }
  int width = 14; // the name column fits the longest name
  for (const GraphNode *n : rows)
    width = std::max(width, static_cast<int>(n->label.size()));
  std::printf("%-*s %-14s %12s\n", width, "layer", "output", "parameters");
  for (const GraphNode *n : rows)
    std::printf("%-*s %-14s %12lld\n", width, n->label.c_str(), formatDims(n->dims).c_str(), (long long)n->paramCount);
  int64_t total = 0;
  for (const ParamSpec &p : spec.params) {
    int64_t count = 1;
    for (int64_t d : p.dims)
      count *= d;
    total += count;
  }
  std::printf("total parameters: %lld\n", (long long)total);
  return 0;
}

} // namespace

int main(int argc, char **argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  if (args.empty() || args[0] == "--help" || args[0] == "-h" || args[0] == "help") {
    std::fprintf(args.empty() ? stderr : stdout, kUsage, rt::kRunFlagsHelp);
    return args.empty() ? 2 : 0;
  }
  std::string command = args[0];
  if (command != "run" && command != "build" && command != "check" && command != "emit" && command != "gradcheck")
    return usageError("unknown command '" + command + "'; expected run, build, check, emit or gradcheck");

  rt::RunOptions run;
  rt::PredictOptions predict;
  BuildOptions build;
  bool timePasses = false;
  std::vector<std::pair<std::string, double>> passTimes;
  double tolerance = 1e-4;
  CompileOptions copts;
  std::vector<std::string> positional;
  for (size_t i = 1; i < args.size(); ++i) {
    const std::string &a = args[i];
    if (command == "run") {
      int r = rt::parseRunFlag(args, i, run, "soma");
      if (r < 0)
        return 2;
      if (r > 0)
        continue;
    }
    auto value = [&](std::string &out) {
      if (i + 1 >= args.size() || args[i + 1].empty())
        return false;
      out = args[++i];
      return true;
    };
    std::string v;
    if (a == "--tolerance" && command == "gradcheck") {
      if (!value(v) || !rt::parseNumber(v, tolerance) || !(tolerance > 0))
        return usageError("--tolerance needs a positive number" + (v.empty() ? "" : ", got '" + v + "'"));
    } else if (a == "--eval-only" && command == "run") {
      run.evalOnly = true;
    } else if ((a == "--predict" || a == "--output") && command == "run") {
      if (!value(a == "--predict" ? predict.input : predict.outputPath))
        return usageError(a + " needs a file name");
    } else if (a == "-o" && command == "build") {
      if (!value(build.output))
        return usageError("-o needs a path");
    } else if (a == "--lib" && command == "build") {
      build.lib = true;
    } else if (a == "--shared" && command == "build") {
      build.shared = true;
    } else if (a == "--name" && command == "build") {
      if (!value(build.name) || libraryName(build.name) != build.name)
        return usageError("--name needs a C identifier in lower case" +
                          (build.name.empty() ? std::string() : ", got '" + build.name + "'"));
    } else if (a == "--target" && (command == "build" || command == "emit")) {
      if (!value(v))
        return usageError("--target needs native, x86-64-v3 or x86-64-v4");
      copts.target = codegen::namedTarget(v);
      if (!copts.target)
        return usageError("unknown target '" + v + "'; expected native, x86-64-v3 or x86-64-v4");
    } else if (a == "--no-cache") {
      copts.cache = false;
    } else if (a == "--time-passes") {
      timePasses = true;
    } else if (a.size() > 1 && a[0] == '-') {
      return usageError("unknown option '" + a + "' for '" + command + "'");
    } else {
      positional.push_back(a);
    }
  }
  if (std::string e = rt::checkRunOptions(run); !e.empty())
    return usageError(e);
  if (!predict.input.empty() && run.weightsPath.empty())
    return usageError("--predict needs --weights FILE");
  if (!predict.outputPath.empty() && predict.input.empty())
    return usageError("--output needs --predict INPUT");
  if (command == "build") {
    if (build.output.empty())
      return usageError(build.lib ? "build --lib needs -o DIR, the directory for the library and its header"
                                  : "build needs -o PATH, the executable to write");
    if (build.shared && !build.lib)
      return usageError("--shared needs --lib");
    if (!build.name.empty() && !build.lib)
      return usageError("--name needs --lib");
    copts.artifact = build.lib ? Artifact::Library : Artifact::Executable;
  }

  if (command == "emit") {
    if (positional.size() != 2)
      return usageError("usage: soma emit STAGE FILE, STAGE one of ast, ir, grad, opt, kernels, llvm, asm");
    auto stage = stageFromName(positional[0]);
    if (!stage)
      return usageError("unknown stage '" + positional[0] + "'; expected ast, ir, grad, opt, kernels, llvm or asm");
    copts.stopAfter = *stage;
    copts.emit = true;
    positional.erase(positional.begin());
  } else if (positional.size() != 1) {
    return usageError(positional.empty() ? "no model file given" : "expected one model file");
  }
  copts.path = positional[0];
  if (command == "check")
    copts.stopAfter = Stage::Check;
  if (command == "gradcheck")
    copts.stopAfter = Stage::Grad;
  copts.libName = build.name;

  if (timePasses)
    copts.passTimes = &passTimes;
  std::unique_ptr<CompiledModel> m = compile(copts, std::cout, std::cerr);
  if (timePasses) { // on stderr, so that `soma emit` output stays clean
    double total = 0;
    for (const auto &[stage, ms] : passTimes)
      total += ms;
    std::fprintf(stderr, "compile time per stage:\n");
    for (const auto &[stage, ms] : passTimes)
      std::fprintf(stderr, "  %-24s %8.1f ms %5.1f%%\n", stage.c_str(), ms, total > 0 ? 100 * ms / total : 0.0);
    std::fprintf(stderr, "  %-24s %8.1f ms\n", "total", total);
  }
  if (!m)
    return 1;
  if (command == "check")
    return printSummary(*m);
  if (command == "gradcheck")
    return gradCheck(*m, tolerance);
  if (command == "build")
    return buildOutputs(*m, build);
  if (command == "run" && !predict.input.empty()) {
    predict.weightsPath = run.weightsPath;
    if (run.batch)
      predict.batch = *run.batch;
    predict.threads = run.threads;
    return rt::runPredict(m->info, m->entries, predict);
  }
  if (command == "run") {
    run.jitMs = m->jitMs;
    return rt::runTraining(m->info, m->entries, run);
  }
  return 0;
}
