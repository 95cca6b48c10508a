// `soma gradcheck`: finite differences against the derived gradients, in double precision,
// on the first samples of the model's training data.
#pragma once
#include "driver/Pipeline.h"

namespace soma {

// Returns the exit code.
int gradCheck(CompiledModel &m, double tolerance);

} // namespace soma
