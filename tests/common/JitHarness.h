// Compiles one IR function through the real pipeline (schedule, LLVM, O3, ORC JIT) and runs
// it on reference-evaluator tensors, so tests can compare the two.
#pragma once
#include "interp/Interp.h"
#include "ir/IR.h"
#include "lowering/Lower.h"

#include <map>
#include <memory>
#include <string>

namespace soma::test {

class JitFunction {
public:
  // target: as `--target` takes it (native, x86-64-v3 or x86-64-v4).
  explicit JitFunction(const ir::Function &f, const std::string &target = "native");
  ~JitFunction();
  // Runs with `inputs` (converted to float) and returns the results by name.
  std::map<std::string, std::vector<float>> run(const std::map<std::string, interp::Tensor> &inputs, int64_t batch);

private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// The parameters' starting values, as a session draws them with `seed`.
std::vector<std::vector<float>> initialParams(const LoweredModel &m, uint64_t seed);

} // namespace soma::test
