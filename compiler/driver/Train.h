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
  bool profile = false;       // time each kernel of the training step
  bool progress = true; // a progress bar on stderr when it is a terminal
};

// Returns the process exit code.
int runTraining(CompiledModel &m, const RunOptions &opts);

// augment = shift(k), flip(): the n images of a batch (input shape [h, w] or [c, h, w]) moved by
// up to k pixels each way (zeros fill in) and mirrored half of the time, in place; the choice for
// row r is a hash of (seed, step, r), so a run and its resumption see the same images.
void augmentImages(float *x, int64_t n, const Dims &input, const TrainSpec::Augment &a, uint64_t seed, int64_t step);

// The learning rate at step `step` (0-based, of `steps`) of epoch `epoch` (1-based).
double scheduledLr(const TrainSpec &t, const TrainingState &st, int64_t epoch, int64_t step, int64_t steps);
// After an epoch, with its evaluation loss: reduce-on-plateau's bookkeeping.
void plateauStep(const TrainSpec &t, TrainingState &st, double metric);

// `soma gradcheck`: finite differences against the derived gradients, in double precision,
// on the first samples of the model's training data. Returns the exit code.
int gradCheck(CompiledModel &m, double tolerance);

} // namespace soma
