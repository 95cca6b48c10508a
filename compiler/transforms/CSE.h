// Common-subexpression elimination and dead-node removal on the tensor IR.
#pragma once
#include "ir/IR.h"

namespace soma::transforms {

// Returns `f` with nodes that repeat an earlier node (same op, operands and attributes) merged
// into it, and nodes no result depends on removed. Inputs are always kept, in order.
ir::Function eliminateCommonSubexpressions(const ir::Function &f);

} // namespace soma::transforms
