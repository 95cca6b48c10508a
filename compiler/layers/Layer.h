// The built-in layers, one record each: everything `dense(64)` means, from the model file to the
// IR. A record holds the layer's signature (the arguments after its input), its shape rule (which
// also reads the arguments into the layer's attributes), the parameters it creates with their
// default initializers, and its lowering to primitive ops. ast/ checks a call against the record
// and creates the parameters; lowering/ calls the record's lower(). layers/Layers.def lists the
// kinds; the records are defined in the files of their families (Dense.cpp, Conv.cpp, Norm.cpp,
// Activations.cpp, Recurrent.cpp), and a kind without one does not link.
#pragma once
#include "ast/Args.h"
#include "ir/IR.h"
#include "soma/Model.h"

#include <array>
#include <optional>
#include <string>
#include <variant>
#include <vector>

namespace soma {

using rt::Dims;
using rt::formatDims;
using rt::InitSpec;

enum class LayerKind {
#define LAYER(Kind) Kind,
#include "layers/Layers.def"
};

// What each family reads from its arguments. Image windows are per axis (rows, columns).
struct DenseAttrs {
  int64_t units = 0;
};
struct EmbeddingAttrs {
  int64_t vocab = 0, dim = 0;
};
struct ConvAttrs {
  int64_t filters = 0;
  int64_t groups = 1; // channels and filters split into groups, each filter seeing its group's channels
  std::array<int64_t, 2> kernel{1, 1}, stride{1, 1}, dilation{1, 1};
  // Zeros before and after the input ("same" pads one more after an even span, as PyTorch).
  std::array<int64_t, 2> padBegin{0, 0}, padEnd{0, 0};
};
struct PoolAttrs { // maxpool2d, avgpool2d (adaptive_avgpool2d's windows follow from in and out)
  std::array<int64_t, 2> kernel{1, 1}, stride{1, 1}, padding{0, 0};
  bool countIncludePad = true;
};
struct NormAttrs {
  double momentum = 0.1, eps = 1e-5; // momentum: batchnorm's running statistics
  int64_t axes = 0;                  // layernorm: the trailing axes of the sample it normalizes over
};
struct DropoutAttrs {
  double p = 0;
  uint32_t salt = 0; // which random stream: one per dropout layer
};
struct SlopeAttrs { // leaky_relu: the slope below 0; elu: the limit below 0
  double alpha = 0;
};
struct AxisAttrs { // softmax, log_softmax: the axis of the sample they normalize along
  int64_t axis = 0;
};
struct RecurrentAttrs { // rnn, lstm, gru
  int64_t hidden = 0;
  bool sequences = false;     // return_sequences: every step's state, else the last
  bool bidirectional = false; // a second direction from the last step down, its state after the first's
  bool relu = false;          // rnn's nonlinearity: relu rather than tanh
};
using LayerAttrs = std::variant<std::monostate, DenseAttrs, EmbeddingAttrs, ConvAttrs, PoolAttrs, NormAttrs,
                                DropoutAttrs, SlopeAttrs, AxisAttrs, RecurrentAttrs>;

// A built-in layer applied to one value.
struct Layer {
  LayerKind kind = LayerKind::Identity;
  std::string name; // unique: dense_1, sigmoid_2, highway_1.dense_1, ...
  Dims in, out;     // per sample
  LayerAttrs attrs;
  std::vector<int> params;  // ModelSpec::params, in the order of the record's parameters()
  std::vector<int> buffers; // ModelSpec::buffers, likewise
  SourceRange range;
  template <typename T> const T &as() const { return std::get<T>(attrs); }
};

// A tensor a layer creates, named after it (dense_1.w).
struct LayerParam {
  enum class Role {
    Weight, // `init` replaces its initializer and `lr_mult` scales its rate; fans by PyTorch's rule
    Bias,   // `bias_init` and `lr_mult`; its fan-in is the weight's
    Fixed   // as given, fan-in and fan-out its element count
  };
  const char *suffix; // "w": dense_1.w
  Dims dims;
  Role role;
  InitSpec init; // unless the model file gives one
  bool buffer;   // a statistic, not trained (batchnorm's running mean): ModelSpec::buffers
};

// One call of a layer, for its record's check: the bound arguments, by name, and where to report
// a rule they break.
class LayerCall {
public:
  LayerCall(const std::vector<Param> &sig, const std::vector<const ast::Expr *> &bound, const char *spelling,
            SourceRange range, uint32_t salt, DiagnosticEngine &diags)
      : sig_(sig), bound_(bound), spelling(spelling), range(range), salt(salt), diags(diags) {}
  const ast::Expr *arg(const char *name) const; // nullptr when absent
  double number(const char *name, double absent) const;
  bool flag(const char *name, bool absent) const;
  std::array<int64_t, 2> pair(const char *name, int64_t absent) const; // a *Pair argument
  // Reports that the input is not of the shape `want` ("a vector [n]"); returns false.
  bool wrongShape(const Layer &l, const std::string &want) const;

private:
  const std::vector<Param> &sig_;
  const std::vector<const ast::Expr *> &bound_;

public:
  const char *spelling;
  SourceRange range;
  uint32_t salt; // distinct for each layer of the model
  DiagnosticEngine &diags;
};

// What a record's lowering reads and adds to, besides its input.
struct LayerLowering {
  ir::Builder &b;
  bool training;                         // dropout active, batchnorm on the batch's statistics
  std::vector<int> params, buffers;      // IR values, by ModelSpec index
  int invBatch = -1;                     // 1 / the batch size, a scalar input
  std::vector<ir::Result> bufferUpdates; // training: the buffers' new values
  int dropoutSeed = -1;                  // a scalar input, added at its first use
  int param(const Layer &l, size_t i) const { return params[static_cast<size_t>(l.params[i])]; }
  int buffer(const Layer &l, size_t i) const { return buffers[static_cast<size_t>(l.buffers[i])]; }
  int seed();
};

struct LayerRecord {
  const char *spelling;
  std::vector<Param> params; // its arguments after the input
  // Reads the arguments into l.attrs and sets l.out from l.in; false after reporting the rule
  // that fails.
  bool (*check)(Layer &l, const LayerCall &call);
  // The tensors it creates, in the order lower() reads them (l.params, then l.buffers).
  std::vector<LayerParam> (*parameters)(const Layer &l);
  // Its value, from x (its input's IR value, [batch, in...]).
  int (*lower)(LayerLowering &cx, const Layer &l, int x);
};

const LayerRecord &layerRecord(LayerKind k);
const char *layerSpelling(LayerKind k);
std::optional<LayerKind> layerNamed(const std::string &spelling);
std::vector<std::string> layerSpellings(); // in Layers.def's order

// Arguments several layers take: the learning-rate multiplier of their parameters (Caffe's
// lr_mult) and their initializers (the graph builder reads these three).
inline const Param kLrMultParam{"lr_mult", ArgType::NonNegativeNumber, false};
inline const Param kInitParam{"init", ArgType::Expr, false};
inline const Param kBiasInitParam{"bias_init", ArgType::Expr, false};

// Pieces of several layers and losses, each with the slope at 0 that PyTorch's formula has
// (relu's derivative is 0 there, so relu(x) - a relu(-x) would have slope 0 at 0):
//   min(x, 0) = x - relu(x), slope 1 at 0 (leaky_relu, elu);
//   |x| as 2 relu(x) - x, slope -1 at 0 (softplus and binary cross-entropy, whose |x| terms
//   complete the other terms' slope to the true one there);
//   softmax along IR axis `axis` of a value (the last of a [batch, n] value by default), or
//   log_softmax.
int negativePart(ir::Builder &b, int x);
int absSloped(ir::Builder &b, int x);
int softmax(ir::Builder &b, int z, bool log, int64_t axis = 1);

namespace layers {
#define LAYER(Kind) extern const LayerRecord Kind;
#include "layers/Layers.def"
// Parameters of a layer that creates none.
std::vector<LayerParam> none(const Layer &l);
} // namespace layers

} // namespace soma
