// `soma run`: load the data, train with the JIT-compiled step, evaluate after every epoch.
#pragma once
#include "driver/Checkpoint.h"
#include "driver/Pipeline.h"

#include <optional>
#include <string>

namespace soma {

struct RunOptions {
  std::optional<int64_t> epochs, batch, seed;
  std::optional<double> lr;
  int threads = 0; // 0: all cores
  std::string metricsPath;
  std::string checkpointPath; // written after every epoch (overrides the train block's)
  std::string resumePath;     // a checkpoint to continue from
  std::string weightsPath;    // parameters to start from (or to evaluate)
  bool evalOnly = false;      // evaluate the weights, no training
  bool progress = true; // a progress bar on stderr when it is a terminal
};

// Returns the process exit code.
int runTraining(CompiledModel &m, const RunOptions &opts);

// The learning rate at step `step` (0-based, of `steps`) of epoch `epoch` (1-based).
double scheduledLr(const TrainSpec &t, const TrainingState &st, int64_t epoch, int64_t step, int64_t steps);
// After an epoch, with its evaluation loss: reduce-on-plateau's bookkeeping.
void plateauStep(const TrainSpec &t, TrainingState &st, double metric);

// `soma gradcheck`: finite differences against the derived gradients, in double precision,
// on the first samples of the model's training data. Returns the exit code.
int gradCheck(CompiledModel &m, double tolerance);

} // namespace soma
