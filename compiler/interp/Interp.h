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

// d f / d inputs[name][j] by central differences of f's first result (a scalar), the step 1e-6
// relative to the element (at least 1e-6): the finite-difference side of every gradient check.
double centralDifference(const ir::Function &f, std::map<std::string, Tensor> &inputs, int64_t batch,
                         const std::string &name, size_t j);

} // namespace soma::interp
