// Reverse-mode automatic differentiation as an IR transformation: appends to `f` the nodes
// that compute d(loss)/d(w) for each w in `wrt`, from one derivative rule per op.
#pragma once
#include "ir/IR.h"

namespace soma::autodiff {

// `loss` must be a scalar node. Returns the gradient node of each entry of `wrt` (same shape);
// a parameter that does not influence the loss gets a zero fill.
std::vector<int> appendGradients(ir::Function &f, int loss, const std::vector<int> &wrt);

} // namespace soma::autodiff
