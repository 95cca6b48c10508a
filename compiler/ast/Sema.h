// Semantic checks of a parsed file: names, argument types, per-sample shapes, train settings.
// The result is a Program: everything later stages need, resolved and known to be consistent.
#pragma once
#include "ast/AST.h"
#include "layers/Layer.h"
#include "soma/Model.h"
#include "support/Diagnostics.h"

#include <map>
#include <optional>
#include <string>
#include <vector>

namespace soma {

struct ParamSpec {
  std::string name; // dense_1.w, highway_1.gate
  Dims dims;
  InitSpec init;
  int64_t fanIn = 1, fanOut = 1;
  double lrMult = 1; // its learning rate is lr * lrMult
};

enum class MathOp { Neg, Exp, Log, Sqrt, Abs, Erf, Add, Sub, Mul, Div, Maximum, Minimum };
enum class ReduceKind { Sum, Mean, Max };

// One value of the model graph, in evaluation order. A value is per sample (`batched`: the batch
// axis is implicit, as in the input) or static: a parameter, a number, or math on them.
struct GraphNode {
  // InputPart: one of several inputs, the features from `axis` (an offset) on, of shape dims.
  enum class Kind { Input, InputPart, Layer, Param, Number, Unary, Binary, MatMul, Reduce, Reshape, Transpose, Concat };
  Kind kind = Kind::Input;
  std::vector<int> args;   // earlier nodes
  Layer layer;             // Layer
  int param = -1;          // Param: index into ModelSpec::params
  double number = 0;       // Number
  MathOp op = MathOp::Add; // Unary, Binary
  ReduceKind reduce = ReduceKind::Sum;
  uint32_t axes = 0; // Reduce: the per-sample axes reduced
  Dims perm;         // Transpose: result axis i is operand axis perm[i] (per-sample axes)
  int64_t axis = 0;  // Concat: the per-sample axis
  Dims dims;         // per sample when batched, else the whole shape
  bool batched = true;
  std::string label;      // for `soma check`: dense_1, highway_1, or the name a statement gave it
  std::string name;       // the last name a statement gave it (h), for messages
  int64_t paramCount = 0; // parameters this node introduced (a layer, or a user layer's instance)
  SourceRange range;
};

struct ModelSpec {
  std::string name, inputName;
  // The sample's shape. With several inputs, the features of each sample are split among them in
  // the order they are declared: inputDims is then [the total], inputName their names joined.
  Dims inputDims;
  std::vector<GraphNode> nodes; // nodes[0] is the input
  std::vector<ParamSpec> params;
  std::vector<ParamSpec> buffers;    // statistics that are not trained: batchnorm's running mean and variance
  std::map<std::string, int> values; // the model block's named values (their last binding) and inputs
  int output = 0;
  SourceRange range;
  const Dims &outputDims() const { return nodes[output].dims; }
  // The built-in layer that computes the output, if it is one (losses read the value before a
  // final softmax or sigmoid).
  const Layer *outputLayer() const {
    return nodes[output].kind == GraphNode::Kind::Layer ? &nodes[output].layer : nullptr;
  }
  bool outputIs(LayerKind k) const { return outputLayer() && outputLayer()->kind == k; }
};

enum class LossKind { MSE, MAE, Huber, CrossEntropy, BinaryCrossEntropy };

// The optimizer, schedule and data settings the training loop reads (soma/Model.h).
using rt::DataSpec;
using rt::OptimizerKind;
using rt::OptimizerSpec;
using rt::ScheduleSpec;

// One term of the loss: weight * kind(target) on one output of the model; the target is the
// label, one_hot(label, n), or a value of the model of the output's shape (an autoencoder's input).
struct LossTerm {
  LossKind kind = LossKind::MSE;
  double weight = 1;
  int output = -1;     // the graph node it reads; the model's output when -1
  int target = -1;     // the graph node it compares with (an input, a named value); the label when -1
  bool oneHot = false; // target is one_hot(label, classes)
  int64_t classes = 0; // classes when the target is a class index
  // The label values a sample it reads: 1 (a class index, one number), k (an output of k values
  // compared with k labels), 0 (its target is a value of the model).
  int64_t labelValues = 0;
  double huberDelta = 1.0;
  std::vector<double> classWeights; // cross_entropy(weight: [...]): one per class, or empty
  SourceRange range;
};

// The train block: the runtime's settings, and what the compiler turns into code.
struct TrainSpec : rt::TrainConfig {
  // loss = a weighted sum of terms, each on the model's output or another named value (an
  // auxiliary output). The first term is the main one.
  std::vector<LossTerm> losses;
  const LossTerm &mainLoss() const { return losses.front(); }
  double clipNorm = 0, clipValue = 0; // 0: no clipping
  SourceRange range;
};

struct Program {
  ModelSpec model;
  std::optional<TrainSpec> train;
};

// The model block (and the user-defined layers it uses) as a graph; nullopt after an error.
std::optional<ModelSpec> checkModel(const ast::File &file, const ast::ModelDecl &model, DiagnosticEngine &diags);

// Returns nullopt if any error was reported. `baseDir` resolves relative data paths.
std::optional<Program> checkFile(const ast::File &file, const std::string &baseDir, DiagnosticEngine &diags);

} // namespace soma
