// What the runtime knows of a compiled model: its input and output, its tensors (parameters,
// optimizer state, statistics) with their initializers, the layout of each generated function's
// context array, and the train block's settings. The compiler fills one for the JIT; `soma build`
// embeds it in the program, serialized, so that a built program needs nothing of the compiler.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace soma::rt {

using Dims = std::vector<int64_t>;
std::string formatDims(const Dims &d);        // [28, 28]
std::string formatTensorShape(const Dims &d); // f32[784, 64]

// How a tensor starts. FanInUniform is PyTorch's default for linear and convolution layers.
struct InitSpec {
  enum class Kind {
    FanInUniform,
    Zeros,
    Ones,
    Constant,
    Uniform,
    Normal,
    GlorotUniform,
    GlorotNormal,
    HeUniform,
    HeNormal
  };
  Kind kind = Kind::FanInUniform;
  double a = 0, b = 0; // constant(a), uniform(a, b), normal(mean a, std b)
};

enum class OptimizerKind { Sgd, Adam, AdamW, RmsProp, Adagrad };

// Hyper-parameters with PyTorch's meanings and defaults; the learning rate is TrainConfig::lr.
struct OptimizerSpec {
  OptimizerKind kind = OptimizerKind::Sgd;
  double momentum = 0;               // sgd, rmsprop
  bool nesterov = false;             // sgd
  double beta1 = 0.9, beta2 = 0.999; // adam, adamw
  double alpha = 0.99;               // rmsprop: smoothing of the squared gradient
  double eps = 1e-8;                 // adam, adamw, rmsprop (adagrad: 1e-10)
  double weightDecay = 0;            // L2 added to the gradient; adamw: decoupled decay of the weights
};

// The learning rate per epoch e = 1, 2, ... (times a linear warm-up over the first epochs).
struct ScheduleSpec {
  enum class Kind { Constant, Step, MultiStep, Exponential, Cosine, Plateau } kind = Kind::Constant;
  int64_t every = 1;               // step: lr * gamma^floor((e - 1) / every)
  std::vector<int64_t> milestones; // multistep: lr * gamma^(milestones <= e - 1)
  double gamma = 0.1;              // step, multistep, exponential (lr * gamma^(e - 1))
  double minLr = 0;                // cosine (from lr down to minLr after the warm-up), plateau
  double factor = 0.1;             // plateau: lr *= factor after `patience` epochs without a
  int64_t patience = 10;           //   better evaluation loss
};

struct DataSpec {
  enum class Kind { Idx, Csv, Npy } kind = Kind::Idx;
  std::string name;                     // train, test
  std::string images, labels;           // idx, npy: features and labels; csv: images is the csv file
  std::vector<int64_t> labelColumns;    // csv: the label columns (-1, the last, when empty)
  std::vector<std::string> labelNames;  // csv: or by their header names
  std::vector<int64_t> columns;         // csv: the feature columns (all but the label when empty)
  std::vector<std::string> columnNames; // csv: or by name
  bool header = false;                  // csv: the first row names the columns
};

// The train block's settings that the training loop reads (the loss and the update are code).
struct TrainConfig {
  int64_t classes = 0; // number of classes when the targets are class indices (label checks)
  // The main loss compares the output with the labels: accuracy means something. False when its
  // target is a value of the model (an autoencoder's input): the loss is then the only measure.
  bool accuracy = true;
  // Label values per sample: 1 for a class index or a single number, k when the loss compares an
  // output of k values with the labels (multi-output regression, multi-label classification),
  // 0 when no loss reads the labels (an autoencoder): its data need none.
  int64_t labelSize = 1;
  double lr = 0.1;
  OptimizerSpec optimizer;
  int64_t batch = 32, epochs = 1;
  uint64_t seed = 1;
  int64_t showPredictions = 0;
  std::string checkpoint;       // written after every epoch when set
  int64_t topK = 0;             // also report top-k accuracy
  bool confusionMatrix = false; // print one after training
  int64_t evalEvery = 1;        // evaluate every N epochs (and after the last)
  struct EarlyStop {
    bool enabled = false, onAccuracy = false, restoreBest = true;
    int64_t patience = 5; // evaluations without improvement before stopping
    double minDelta = 0;  // the least change that counts as an improvement
  } earlyStop;
  struct Augment {
    int64_t shift = 0; // images moved by up to this many pixels each way (zeros fill in)
    bool flip = false; // images mirrored left to right half of the time
  } augment;
  bool standardize = false; // features scaled to mean 0, std 1 with the training data's statistics
  double validation = 0;    // the fraction of the training data held out for validation
  ScheduleSpec schedule;
  int64_t warmupEpochs = 0;
  std::optional<DataSpec> train, test;
};

// A parameter, an optimizer buffer or a statistic.
struct TensorInfo {
  std::string name; // dense_1.w, dense_1.w.momentum, batchnorm_1.running_mean
  Dims shape;
  InitSpec init;
  int64_t fanIn = 1, fanOut = 1;
  int64_t elements() const;
};

// One generated function `entry(ctx)`: ctx is an array of 8-byte words, word 0 the batch size,
// word 1 + s the pointer of slot s. Inputs and results are slots known by name; the other slots
// live in one arena, placed by planArena from their sizes and live ranges.
struct FunctionLayout {
  struct Slot {
    bool bound = false;               // an input: the caller binds it
    int64_t perSample = 0, fixed = 0; // its floats: perSample * batch + fixed
    int64_t first = -1, last = -1;    // live from kernel `first` through kernel `last`
  };
  struct Named {
    std::string name;
    int64_t slot = -1;
  };
  std::vector<Slot> slots;
  std::vector<Named> inputs, results;
  // For --profile: each kernel's kind, shape and arithmetic.
  struct Kernel {
    std::string kind, shape;
    double flopsPerSample = 0, flopsFixed = 0;
  };
  std::vector<Kernel> kernels;
  int64_t inputSlot(const std::string &name) const;  // -1 if absent
  int64_t resultSlot(const std::string &name) const; // -1 if absent
};

// The inputs every generated function takes, by name.
inline constexpr const char *kInputX = "x";
inline constexpr const char *kInputLabel = "label";
inline constexpr const char *kInputLr = "lr";
inline constexpr const char *kInputInvBatch = "inv_batch"; // 1 / (rows in this batch)
// Adam and AdamW, from the step count t: lr / (1 - beta1^t) and 1 / sqrt(1 - beta2^t).
inline constexpr const char *kInputAdamStepSize = "adam_step_size";
inline constexpr const char *kInputAdamInvSqrtBias2 = "adam_inv_sqrt_bias2";
// Dropout's masks: a number that changes every training step (see Op::Random).
inline constexpr const char *kInputDropoutSeed = "dropout_seed";

// Offsets in floats of each arena slot (-1 for bound ones) for batches of up to maxBatch rows,
// 64-byte aligned, first fit among the slots whose live ranges overlap. Returns the arena's size.
int64_t planArena(const FunctionLayout &f, int64_t maxBatch, std::vector<int64_t> &offsets);

struct ModelInfo {
  std::string name;
  // The sample's shape; with several inputs, inputDims is [the total] and inputName their names
  // joined by ", ".
  std::string inputName;
  Dims inputDims, outputDims;
  int64_t outputs = 0; // per-sample output size
  // With one output: the value at which it means class 1 (0.5 for a probability, 0 for a logit).
  float threshold = 0.5f;
  std::vector<TensorInfo> params, state, buffers;
  FunctionLayout forward;
  std::optional<FunctionLayout> train; // with a train block
  std::optional<TrainConfig> config;   // with a train block
  int64_t sampleSize() const;
  // The label input's values per sample (at least 1: a model that reads none still has the input).
  int64_t labelSlots() const;
  // What a weights file holds: the parameters, then the statistics.
  std::vector<TensorInfo> weights() const;
};

// The model as bytes, and back. parseModel checks every length and enum; returns "" or an error.
std::string serializeModel(const ModelInfo &m);
std::string parseModel(const char *data, size_t size, ModelInfo &out);

} // namespace soma::rt
