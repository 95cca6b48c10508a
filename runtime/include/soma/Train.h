// The training loop, evaluation and prediction of a compiled model, shared by `soma run` (JIT)
// and built programs: load the data, train with the generated step, evaluate after epochs.
#pragma once
#include "soma/Checkpoint.h"
#include "soma/Data.h"
#include "soma/Model.h"
#include "soma/Session.h"

#include <optional>
#include <string>
#include <vector>

namespace soma::rt {

// The most worker threads a run or a library takes.
constexpr int kMaxThreads = 256;

struct RunOptions {
  std::optional<int64_t> epochs, batch, seed;
  std::optional<double> lr;
  int threads = 0; // 0: all cores
  std::string metricsPath;
  std::string checkpointPath;                            // written after every epoch (overrides the train block's)
  std::string resumePath;                                // a checkpoint to continue from
  std::string weightsPath;                               // parameters to start from (or to evaluate)
  std::vector<std::pair<std::string, std::string>> data; // --data train=PATH: a data set's file
  bool evalOnly = false;                                 // evaluate the weights, no training
  bool profile = false;                                  // time each kernel of the training step
  bool progress = true;                                  // a progress bar on stderr when it is a terminal
  double jitMs = -1;                                     // compile time, shown when the code was JIT-compiled (>= 0)
};

// Parses one of the flags above at args[i] (advancing i past its value). Returns 1 when it was
// one, 0 when it is not a run flag, and -1 after printing an error for a bad value.
int parseRunFlag(const std::vector<std::string> &args, size_t &i, RunOptions &opts, const char *program);
// The checks between flags: --resume with --weights, --eval-only without weights. Returns "" or
// an error.
std::string checkRunOptions(const RunOptions &opts);
// The text describing the flags, for --help.
extern const char *kRunFlagsHelp;

// Returns the process exit code.
int runTraining(const ModelInfo &m, Entries entries, const RunOptions &opts);

struct PredictOptions {
  std::string weightsPath, input, outputPath;            // outputPath: all outputs as .npy instead of classes
  std::vector<std::pair<std::string, std::string>> data; // --data train=PATH: for the statistics
  int64_t batch = 256;
  int threads = 0;
};
// Prints each sample's class and its probability, or writes every output to an .npy file.
int runPredict(const ModelInfo &m, Entries entries, const PredictOptions &opts);

// Loads one data set of the model, checking its shape against the input and its labels against
// the classes. Prints the error and returns false on failure.
bool loadData(const DataSpec &spec, const ModelInfo &m, Dataset &d, std::vector<std::string> &classNames);

// augment = shift(k), flip(): the n images of a batch (input shape [h, w] or [c, h, w]) moved by
// up to k pixels each way (zeros fill in) and mirrored half of the time, in place; the choice for
// row r is a hash of (seed, step, r), so a run and its resumption see the same images.
void augmentImages(float *x, int64_t n, const Dims &input, const TrainConfig::Augment &a, uint64_t seed, int64_t step);

// The learning rate at step `step` (0-based, of `steps`) of epoch `epoch` (1-based).
double scheduledLr(const TrainConfig &t, const TrainingState &st, int64_t epoch, int64_t step, int64_t steps);
// After an epoch, with its evaluation loss: reduce-on-plateau's bookkeeping.
void plateauStep(const TrainConfig &t, TrainingState &st, double metric);

// The class of one sample's k outputs (a single output: 1 when at least the threshold).
int64_t predictedClass(const float *out, int64_t k, float threshold);

} // namespace soma::rt
