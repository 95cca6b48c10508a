// Small IR functions exercising each op of Ops.def, with inputs chosen inside the op's domain.
// Shared by the JIT-vs-reference tests and the gradient checks; the switch in OpCases.cpp has
// no default, so an op added to the table without a case does not compile.
#pragma once
#include "interp/Interp.h"
#include "ir/IR.h"

#include <map>
#include <string>
#include <vector>

namespace soma::test {

struct OpCase {
  std::string label; // e.g. "matmul transpose_b"
  ir::Function f;    // one result named "out"; differentiable inputs have role Param
  std::map<std::string, interp::Tensor> inputs;
  int64_t batch = 3;
  // The JIT's results match the reference to tolerance * (1 + |expected|). Long float32 sums
  // (thousands of products) need more than the default: their order of summation shows.
  double tolerance = 1e-5;
  // Inputs with ties (pooling windows with several maxima) are kinks: only the JIT is compared.
  bool gradcheck = true;
};

std::vector<OpCase> casesFor(ir::Op op);

} // namespace soma::test
