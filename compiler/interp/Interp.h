// The reference evaluator: runs an IR function one node at a time in double precision, with
// plain loops over row-major arrays. Slow and obviously correct: the oracle for the JIT and AD.
#pragma once
#include "ir/IR.h"

#include <map>
#include <string>
#include <vector>

namespace soma::interp {

struct Tensor {
  std::vector<int64_t> dims; // concrete (B substituted)
  std::vector<double> data;
};

// Evaluates every node; `inputs` maps each Input's name to its value. Returns all node values.
std::vector<Tensor> evaluate(const ir::Function &f, const std::map<std::string, Tensor> &inputs, int64_t batch);

// The values of f's results, by result name.
std::map<std::string, Tensor> run(const ir::Function &f, const std::map<std::string, Tensor> &inputs, int64_t batch);

} // namespace soma::interp
