// Soma's tensor IR: a function is a list of nodes in execution order (SSA: each node is one
// value, operands refer to earlier nodes). Shapes are static except the batch dimension,
// written B (kBatch), whose size is given when the function runs.
#pragma once
#include "soma/Random.h"

#include <algorithm>
#include <array>
#include <cstdint>
#include <iosfwd>
#include <optional>
#include <string>
#include <vector>

namespace soma::ir {

enum class Op {
#define OP(Name, Mnemonic, Arity, Kind, Diff) Name,
#include "ir/Ops.def"
};
enum class OpKind { Leaf, Elementwise, Reduce, Row, Window, Contraction, View, Loop };

constexpr int kNumOps = 0
#define OP(Name, Mnemonic, Arity, Kind, Diff) +1 // NOLINT(bugprone-macro-parentheses): a sum of terms
#include "ir/Ops.def"
    ;
const char *opName(Op op);
int opArity(Op op);
OpKind opKind(Op op);
// How an op reads its operands: Pointwise, at the result's own index (math, and the constants
// that read none); IndexMap, at another index (broadcast, one_hot, transpose, pad, slice: they
// cannot run as the epilogue of a product at the product's own index); Other, anything else
// (inputs, random numbers hashing the position, reductions, products, views). One switch over
// every op (IR.cpp), which the evaluator and the emitter rely on.
enum class OpIndexing { Pointwise, IndexMap, Other };
OpIndexing opIndexing(Op op);
bool opIsIndexMap(Op op);
bool opDifferentiable(Op op);
std::optional<Op> opFromName(const std::string &mnemonic);

constexpr int64_t kBatch = -1; // the dynamic batch dimension
using Shape = std::vector<int64_t>;
std::string formatShape(const Shape &s);            // f32[B, 784]
int64_t numElements(const Shape &s, int64_t batch); // with B = batch

// State: optimizer buffers (momentum, Adam's moments), updated in place like parameters.
enum class InputRole { Data, Label, Param, State, Scalar };

// A pooling op's windows along H and W (axis 0 is H), PyTorch's rule: window i of an axis covers
// positions i*stride - padding + [0, kernel), clipped to the input; `out` is the pooled extent
// (floor, or ceil_mode's one more window that starts inside the input or its left padding).
struct Pool2D {
  std::array<int64_t, 2> kernel{1, 1}, stride{1, 1}, padding{0, 0}, out{1, 1};
  bool includePad = true; // avg_pool2d: the divisor counts padding within the padded input
  bool operator==(const Pool2D &) const = default;
};

// Window i of one axis of `p` over an input extent `in`: [begin, end) inside the input, and
// the divisor avg_pool2d uses for it (with includePad, the window clipped to the padded input).
struct PoolSpan {
  int64_t begin, end, divisor;
};
inline PoolSpan poolSpan(const Pool2D &p, int axis, int64_t i, int64_t in) {
  auto a = static_cast<size_t>(axis);
  int64_t start = i * p.stride[a] - p.padding[a];
  int64_t paddedEnd = std::min(start + p.kernel[a], in + p.padding[a]);
  int64_t begin = std::max<int64_t>(start, 0), end = std::min(start + p.kernel[a], in);
  return {begin, end, p.includePad ? paddedEnd - start : end - begin};
}

// Windows that tile the input exactly (kernel = stride, no padding, the extent a multiple):
// each input element is in one window, so a gradient writes each element once.
inline bool poolTiles(const Pool2D &p, int64_t h, int64_t w) {
  return p.padding == std::array<int64_t, 2>{0, 0} && p.kernel == p.stride && p.out[0] * p.kernel[0] == h &&
         p.out[1] * p.kernel[1] == w;
}

// A convolution's window (Conv2D*): tap (u, v) of output (i, j) reads input row i * stride +
// u * dilation[0] - padding and column j * stride + v * dilation[1] - padding; the channels and
// filters are split into `groups`, each filter seeing its group's C / groups channels.
struct ConvParams {
  int64_t stride = 1, padding = 0;
  std::array<int64_t, 2> dilation{1, 1}; // rows, columns
  int64_t groups = 1;
  bool dilated() const { return dilation[0] != 1 || dilation[1] != 1; }
  bool operator==(const ConvParams &) const = default;
};
// The rows (or columns) a filter of `kernel` taps spans at `dilation`.
inline int64_t convSpan(int64_t kernel, int64_t dilation) { return (kernel - 1) * dilation + 1; }

// A loop's counts (Op::Loop): which body, how many steps, how its operands divide.
struct LoopAttrs {
  int body = -1; // index in the function's bodies
  int64_t steps = 0;
  int carries = 0, sequences = 0; // the first operands; the rest are invariants
  bool reverse = false;           // from the last step down
  bool operator==(const LoopAttrs &) const = default;
};

struct Attrs {
  double value = 0;                    // Fill
  std::vector<double> values;          // Constant
  Shape shape;                         // Broadcast, Reshape: the result shape
  uint32_t axes = 0;                   // Broadcast: new axes of the result; Reduce: axes of the operand summed out
  bool transA = false, transB = false; // MatMul
  int64_t classes = 0;                 // OneHot
  ConvParams conv;                     // Conv2D*
  int64_t stride = 1;                  // SpaceToDepth, DepthToSpace
  Pool2D pool;                         // MaxPool2D*, AvgPool2D*
  Shape perm;                          // Transpose
  int64_t axis = 0, offset = 0;        // Pad, Slice; SpaceToDepth, DepthToSpace: offset = phases
  std::string name;                    // Input
  LoopAttrs loop;                      // Loop
  InputRole role = InputRole::Data;
};

struct Node {
  Op op;
  std::vector<int> operands;
  Attrs attrs;
  Shape shape;
};

struct Result {
  std::string name;
  int value;
  int updates = -1; // if >= 0: the Param or State input whose buffer this result overwrites in place
};

struct Function {
  std::string name;
  std::vector<Node> nodes;
  std::vector<Result> results;
  // Loops' bodies (Op::Loop's attrs.loop.body), functions of their own: the inputs first, in the
  // loop's order (carries, slices, invariants), no loop inside.
  std::vector<Function> bodies;

  std::vector<int> inputs() const; // node ids of Input nodes, in order
  int findInput(const std::string &name) const;
};

// Shape rule: the result shape, or an error message.
struct ShapeResult {
  Shape shape;
  std::string error;
};
ShapeResult inferShape(Op op, const std::vector<Shape> &operands, const Attrs &attrs);

// Appends nodes, checking each shape rule (a failure is a compiler bug: asserts).
class Builder {
public:
  explicit Builder(Function &f) : f_(f) {}
  int input(const std::string &name, InputRole role, Shape shape);
  int fill(double value, Shape shape);
  int constant(std::vector<double> values, Shape shape);
  int unary(Op op, int x);
  int binary(Op op, int a, int b);
  int broadcast(int x, Shape shape, uint32_t axes);
  int oneHot(int labels, int64_t classes);
  int gather(int ids, int table);
  int reduce(Op op, int x, uint32_t axes);
  int random(int seed, Shape shape, uint32_t salt);
  int matmul(int a, int b, bool transA = false, bool transB = false);
  int reshape(int x, Shape shape);
  int transpose(int x, Shape perm);
  int pad(int x, int64_t axis, int64_t offset, Shape shape);
  int slice(int x, int64_t axis, int64_t offset, Shape shape);
  int spaceToDepth(int x, int64_t stride, int64_t phases);
  int depthToSpace(int x, int64_t stride, int64_t phases, Shape shape);
  int conv2d(int x, int w, const ConvParams &c);
  int conv2dBackData(int dy, int w, Shape xShape, const ConvParams &c);
  int conv2dBackFilter(int x, int dy, Shape wShape, const ConvParams &c);
  int maxPool2d(int x, const Pool2D &p);
  int maxPool2dBack(int x, int y, int dy, const Pool2D &p);
  int maxPool2dShare(int x, int y, int d, const Pool2D &p);
  int avgPool2d(int x, const Pool2D &p);
  int avgPool2dBack(int g, const Pool2D &p, Shape xShape);
  // A loop of `body` (moved into the function's bodies) over operands carries, sequences,
  // invariants; and its result k (see Ops.def).
  int loop(Function body, const std::vector<int> &carries, const std::vector<int> &sequences,
           const std::vector<int> &invariants, int64_t steps, bool reverse);
  int loopResult(int loop, int k);
  int add(Op op, std::vector<int> operands, Attrs attrs);
  // By value: appending nodes may move the vector a reference would point into.
  Shape shape(int v) const { return f_.nodes[v].shape; }
  Function &function() { return f_; }

private:
  Function &f_;
};

void print(const Function &f, std::ostream &os);
// The hash behind Op::Random (soma/Random.h).
using rt::RandomHash;
using rt::randomUniform;

// A loop's sequences and stacked results hold step t at this axis: after the batch axis, or
// first in a value without one ([B, T, ...] or [T, ...]).
inline size_t stepAxis(const Shape &s) { return !s.empty() && s[0] == kBatch ? 1 : 0; }
// The shape of loop result k of loop node `loop` (see Ops.def).
Shape loopResultShape(const Function &f, int loop, int k);

// Checks operand order, arity, shapes and results (and loops against their bodies); returns ""
// when valid.
std::string verify(const Function &f);

// The output extent of a convolution or pooling window along one axis (floor, as PyTorch).
inline int64_t convOutSize(int64_t in, int64_t kernel, int64_t stride, int64_t padding) {
  return (in + 2 * padding - kernel) / stride + 1;
}
// A pooling window's output extent (PyTorch's): floor, or with ceilMode one more window when it
// would start inside the input or its left padding. 0 or less: no window fits.
inline int64_t poolOutSize(int64_t in, int64_t kernel, int64_t stride, int64_t padding, bool ceilMode) {
  int64_t span = in + 2 * padding - kernel;
  if (span < 0)
    return 0;
  int64_t out = (ceilMode ? (span + stride - 1) / stride : span / stride) + 1;
  if (ceilMode && (out - 1) * stride >= in + padding)
    --out;
  return out;
}

} // namespace soma::ir
