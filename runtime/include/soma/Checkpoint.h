// Checkpoints and weights files of a Session, in the safetensors format (runtime/Safetensors.h).
// A checkpoint holds the parameters under their layer names (dense_1.w, dense_1.b, ...), the
// statistics of batchnorm layers (batchnorm_1.running_mean, ...), the optimizer state
// (dense_1.w.momentum, ...), the shuffling order, and in its metadata the epoch,
// the optimizer's step count and the generator state: all a run needs to continue exactly.
#pragma once
#include "soma/Data.h"
#include "soma/Session.h"

#include <string>
#include <vector>

namespace soma::rt {

struct TrainingState {
  int64_t epoch = 0;          // epochs completed
  std::vector<int64_t> order; // the shuffling order, permuted again each epoch
  Rng *rng = nullptr;
  // schedule = plateau(...): the factor applied so far, the best evaluation loss, and the epochs
  // since it improved.
  double plateauScale = 1, plateauBest = 0;
  int64_t plateauBad = 0;
  bool plateauSeen = false;
  // early_stopping: the best evaluation so far, its epoch, and the evaluations since.
  double stopBest = 0;
  int64_t stopBad = 0, bestEpoch = 0;
  bool stopSeen = false;
  // restore_best: the parameters, then the statistics, of the best evaluation (empty if none).
  std::vector<std::vector<float>> best;
};

// Returns "" or an error naming the file.
std::string saveCheckpoint(const std::string &path, Session &s, const TrainingState &t);
// Restores everything saveCheckpoint wrote; the file must be of this model (every tensor present
// with its shape, no others).
std::string loadCheckpoint(const std::string &path, Session &s, TrainingState &t);
// Only the parameters and statistics (a weights file; loadWeights reads it).
std::string saveWeights(const std::string &path, Session &s);
// Only the parameters and statistics, from a checkpoint or a weights file; other tensors are ignored.
std::string loadWeights(const std::string &path, Session &s);

} // namespace soma::rt
