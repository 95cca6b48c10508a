// Soma's tensor IR: a function is a list of nodes in execution order (SSA: each node is one
// value, operands refer to earlier nodes). Shapes are static except the batch dimension,
// written B (kBatch), whose size is given when the function runs.
#pragma once
#include "soma/Random.h"

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
enum class OpKind { Leaf, Elementwise, Reduce, Row, Window, Contraction, View };

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

struct Attrs {
  double value = 0;                    // Fill
  std::vector<double> values;          // Constant
  Shape shape;                         // Broadcast, Reshape: the result shape
  uint32_t axes = 0;                   // Broadcast: new axes of the result; Reduce: axes of the operand summed out
  bool transA = false, transB = false; // MatMul
  int64_t classes = 0;                 // OneHot
  int64_t stride = 1, padding = 0;     // Conv2D*; MaxPool2D*: stride is the window
  Shape perm;                          // Transpose
  int64_t axis = 0, offset = 0;        // Pad, Slice; SpaceToDepth, DepthToSpace: offset = phases
  std::string name;                    // Input
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
  int reduce(Op op, int x, uint32_t axes);
  int random(int seed, Shape shape, uint32_t salt);
  int matmul(int a, int b, bool transA = false, bool transB = false);
  int reshape(int x, Shape shape);
  int transpose(int x, Shape perm);
  int pad(int x, int64_t axis, int64_t offset, Shape shape);
  int slice(int x, int64_t axis, int64_t offset, Shape shape);
  int spaceToDepth(int x, int64_t stride, int64_t phases);
  int depthToSpace(int x, int64_t stride, int64_t phases, Shape shape);
  int conv2d(int x, int w, int64_t stride, int64_t padding);
  int conv2dBackData(int dy, int w, Shape xShape, int64_t stride, int64_t padding);
  int conv2dBackFilter(int x, int dy, Shape wShape, int64_t stride, int64_t padding);
  int maxPool2d(int x, int64_t window);
  int maxPool2dBack(int x, int y, int dy, int64_t window);
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

// Checks operand order, arity, shapes and results; returns "" when valid.
std::string verify(const Function &f);

// The output extent of a convolution or pooling window along one axis (floor, as PyTorch).
inline int64_t convOutSize(int64_t in, int64_t kernel, int64_t stride, int64_t padding) {
  return (in + 2 * padding - kernel) / stride + 1;
}

} // namespace soma::ir
