// Semantic checks of a parsed file: names, argument types, per-sample shapes, train settings.
// The result is a Program: everything later stages need, resolved and known to be consistent.
#pragma once
#include "ast/AST.h"
#include "support/Diagnostics.h"

#include <optional>
#include <string>
#include <vector>

namespace soma {

using Dims = std::vector<int64_t>;
std::string formatDims(const Dims &d); // [28, 28]

enum class LayerKind {
#define LAYER(Kind, Spelling, IsActivation) Kind,
#include "ast/Layers.def"
};
const char *layerSpelling(LayerKind k);

struct Layer {
  LayerKind kind;
  std::string name;   // unique: dense_1, sigmoid_2, ...
  int64_t units = 0;  // dense: outputs; conv2d: filters
  int64_t kernel = 0, stride = 1, padding = 0; // conv2d; pooling: kernel = stride = the window
  double alpha = 0;   // leaky_relu: the slope below 0; elu: the limit below 0
  double lrMult = 1;  // dense, conv2d: the learning rate of its parameters is lr * lrMult
  Dims in, out;       // per sample
  SourceRange range;
  // The weight shape ([] without weights) and the fan-in its initializer scales by.
  Dims weightDims() const {
    if (kind == LayerKind::Dense)
      return {in[0], units};
    if (kind == LayerKind::Conv2D)
      return {units, in[0], kernel, kernel};
    return {};
  }
  int64_t fanIn() const { return kind == LayerKind::Dense ? in[0] : kind == LayerKind::Conv2D ? in[0] * kernel * kernel : 0; }
  int64_t paramCount() const { // weights and one bias per output unit or filter
    Dims w = weightDims();
    if (w.empty())
      return 0;
    int64_t n = 1;
    for (int64_t d : w)
      n *= d;
    return n + units;
  }
};

struct ModelSpec {
  std::string name, inputName;
  Dims inputDims;
  std::vector<Layer> layers;
  SourceRange range;
  const Dims &outputDims() const { return layers.empty() ? inputDims : layers.back().out; }
};

enum class LossKind { MSE, MAE, Huber, CrossEntropy, BinaryCrossEntropy };

enum class OptimizerKind { Sgd, Adam, AdamW, RmsProp, Adagrad };

// Hyper-parameters with PyTorch's meanings and defaults; the learning rate is TrainSpec::lr.
struct OptimizerSpec {
  OptimizerKind kind = OptimizerKind::Sgd;
  double momentum = 0;     // sgd, rmsprop
  bool nesterov = false;   // sgd
  double beta1 = 0.9, beta2 = 0.999; // adam, adamw
  double alpha = 0.99;     // rmsprop: smoothing of the squared gradient
  double eps = 1e-8;       // adam, adamw, rmsprop (adagrad: 1e-10)
  double weightDecay = 0;  // L2 added to the gradient; adamw: decoupled decay of the weights
};

// The learning rate per epoch e = 1, 2, ... (times a linear warm-up over the first epochs).
struct ScheduleSpec {
  enum class Kind { Constant, Step, MultiStep, Exponential, Cosine, Plateau } kind = Kind::Constant;
  int64_t every = 1;                // step: lr * gamma^floor((e - 1) / every)
  std::vector<int64_t> milestones;  // multistep: lr * gamma^(milestones <= e - 1)
  double gamma = 0.1;               // step, multistep, exponential (lr * gamma^(e - 1))
  double minLr = 0;                 // cosine (from lr down to minLr after the warm-up), plateau
  double factor = 0.1;              // plateau: lr *= factor after `patience` epochs without a
  int64_t patience = 10;            //   better evaluation loss
};

struct DataSpec {
  enum class Kind { Idx, Csv } kind = Kind::Idx;
  std::string name;         // train, test
  std::string images, labels; // idx: both files; csv: images is the csv file
  int64_t labelColumn = -1; // csv: -1 is the last column
  bool header = false;      // csv: skip the first row
  SourceRange range;
};

struct TrainSpec {
  LossKind loss = LossKind::MSE;
  bool oneHot = false;     // target is one_hot(label, classes)
  int64_t classes = 0;     // number of classes when the target is a class index
  double huberDelta = 1.0;
  std::vector<double> classWeights; // cross_entropy(weight: [...]): one per class, or empty
  double lr = 0.1;
  OptimizerSpec optimizer;
  int64_t batch = 32, epochs = 1;
  uint64_t seed = 1;
  int64_t showPredictions = 0;
  std::string checkpoint; // written after every epoch when set
  ScheduleSpec schedule;
  int64_t warmupEpochs = 0;
  double clipNorm = 0, clipValue = 0; // 0: no clipping
  std::optional<DataSpec> train, test;
  SourceRange range;
};

struct Program {
  ModelSpec model;
  std::optional<TrainSpec> train;
};

// Returns nullopt if any error was reported. `baseDir` resolves relative data paths.
std::optional<Program> checkFile(const ast::File &file, const std::string &baseDir, DiagnosticEngine &diags);

} // namespace soma
