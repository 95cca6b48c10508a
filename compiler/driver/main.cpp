// The `soma` command line: run, check, emit, gradcheck. Flag errors exit with 2, compile and
// data errors with 1.
#include "driver/Pipeline.h"
#include "driver/Train.h"

#include <algorithm>
#include <charconv>
#include <cstdio>
#include <cstring>
#include <fmt/format.h>
#include <iostream>
#include <string>
#include <vector>

using namespace soma;

namespace {

const char *kUsage = R"(usage: soma <command> [options] FILE

commands:
  run FILE             JIT-compile the model, train it and evaluate after every epoch
  check FILE           report errors, then print each layer's output shape and parameters
  emit STAGE FILE      print a compiler stage: ast, ir, grad, opt, kernels, llvm, asm
  gradcheck FILE       compare the derived gradients with finite differences

options for run (each overrides the file's train block):
  --epochs N           number of epochs
  --batch N            mini-batch size
  --lr X               learning rate
  --seed N             seed for initialization and shuffling
  --threads N          worker threads (default: all cores)
  --metrics FILE       write one JSON object per epoch to FILE
  --checkpoint FILE    save weights, optimizer state, epoch and generator state after every epoch
                       (safetensors; written to FILE.tmp, then renamed over FILE)
  --resume FILE        continue from a checkpoint exactly where it stopped
  --weights FILE       start from the weights in FILE (a checkpoint or any safetensors file)
  --eval-only          with --weights or --resume: evaluate on the test data, no training
  --no-progress        no progress bar
  --profile            after training, time per kernel of the training step and its GFLOP/s

options for every command:
  --time-passes        compile time per stage, on stderr

options for gradcheck:
  --tolerance X        largest relative error accepted (default 1e-4)
)";

int usageError(const std::string &msg) {
  std::fprintf(stderr, "soma: error: %s\n(run 'soma --help' for usage)\n", msg.c_str());
  return 2;
}

template <typename T> bool parseNumber(const std::string &text, T &out) {
  const char *end = text.data() + text.size();
  auto [p, ec] = std::from_chars(text.data(), end, out);
  return ec == std::errc() && p == end;
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
    std::fputs(kUsage, args.empty() ? stderr : stdout);
    return args.empty() ? 2 : 0;
  }
  std::string command = args[0];
  if (command != "run" && command != "check" && command != "emit" && command != "gradcheck")
    return usageError("unknown command '" + command + "'; expected run, check, emit or gradcheck");

  RunOptions run;
  bool timePasses = false;
  std::vector<std::pair<std::string, double>> passTimes;
  double tolerance = 1e-4;
  CompileOptions copts;
  std::vector<std::string> positional;
  for (size_t i = 1; i < args.size(); ++i) {
    const std::string &a = args[i];
    auto value = [&](std::string &out) {
      if (i + 1 >= args.size())
        return false;
      out = args[++i];
      return true;
    };
    std::string v;
    auto intFlag = [&](std::optional<int64_t> &slot, int64_t min) -> int {
      int64_t n;
      if (!value(v) || !parseNumber(v, n) || n < min)
        return usageError(fmt::format("{} needs an integer >= {}{}", a, min, v.empty() ? "" : ", got '" + v + "'"));
      slot = n;
      return 0;
    };
    int err = 0;
    if (a == "--epochs" && command == "run")
      err = intFlag(run.epochs, 1);
    else if (a == "--batch" && command == "run")
      err = intFlag(run.batch, 1);
    else if (a == "--seed" && command == "run")
      err = intFlag(run.seed, 0);
    else if (a == "--threads" && command == "run") {
      std::optional<int64_t> t;
      err = intFlag(t, 1);
      if (!err && *t > 256)
        err = usageError("--threads must be at most 256");
      if (!err)
        run.threads = static_cast<int>(*t);
    } else if ((a == "--lr" && command == "run") || (a == "--tolerance" && command == "gradcheck")) {
      double x;
      if (!value(v) || !parseNumber(v, x) || !(x > 0))
        return usageError(fmt::format("{} needs a positive number{}", a, v.empty() ? "" : ", got '" + v + "'"));
      if (a == "--lr")
        run.lr = x;
      else
        tolerance = x;
    } else if (a == "--metrics" && command == "run") {
      if (!value(run.metricsPath))
        return usageError("--metrics needs a file name");
    } else if ((a == "--checkpoint" || a == "--resume" || a == "--weights") && command == "run") {
      std::string &slot = a == "--checkpoint" ? run.checkpointPath : a == "--resume" ? run.resumePath : run.weightsPath;
      if (!value(slot) || slot.empty())
        return usageError(a + " needs a file name");
    } else if (a == "--eval-only" && command == "run")
      run.evalOnly = true;
    else if (a == "--profile" && command == "run")
      run.profile = true;
    else if (a == "--time-passes")
      timePasses = true;
    else if (a == "--no-progress" && command == "run")
      run.progress = false;
    else if (a.size() > 1 && a[0] == '-')
      return usageError("unknown option '" + a + "' for '" + command + "'");
    else
      positional.push_back(a);
    if (err)
      return err;
  }

  if (!run.resumePath.empty() && !run.weightsPath.empty())
    return usageError("--resume and --weights cannot be combined: a checkpoint holds its own weights");
  if (run.evalOnly && run.resumePath.empty() && run.weightsPath.empty())
    return usageError("--eval-only needs --weights FILE (or --resume FILE) to evaluate");

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
  if (command == "run")
    return runTraining(*m, run);
  return 0;
}
