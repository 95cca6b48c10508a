// Fusion and buffer assignment: decides which IR values get a buffer ("materialized") and
// groups the rest into kernels. Every elementwise value used once is computed inside the loop
// of its consumer; a matrix product used once by an elementwise chain runs that chain (bias,
// activation, even the optimizer update) as its epilogue, inside its own loop nest.
#pragma once
#include "ir/IR.h"
#include "soma/Model.h"

#include <iosfwd>
#include <vector>

namespace soma::transforms {

struct Kernel {
  enum class Kind { Elementwise, Reduce, Row, Window, MatMul, Conv, Loop };
  Kind kind;
  int root;         // the materialized node this kernel writes
  int product = -1; // MatMul, Conv, Window: the product (matmul, conv2d or pooling op) whose loop nest the kernel is
  std::vector<int> reads; // materialized nodes whose buffers the kernel reads
  // Elementwise: materialized values of the root's shape computed and stored in the same loop,
  // before the root, which reads them from registers (an optimizer's moments and its update).
  std::vector<int> alsoRoots;
};

// The buffers a loop kernel runs its body in, as slots of the function around it: one per body
// slot the body's kernels write (-1 for the body's inputs, which the loop points at each step's
// values), and the carries' and the sequences' values of the step (contiguous copies).
struct LoopSlots {
  std::vector<int> body, carries, slices;
};

struct Schedule {
  std::vector<Kernel> kernels; // in execution order
  std::vector<bool> live;      // node contributes to a result
  std::vector<bool> materialized;
  std::vector<int> slot; // node -> buffer slot (-1 if inlined); views share their operand's slot
  int numSlots = 0;
  std::vector<int> slotNode; // slot -> the node that owns it (an Input, or a kernel root); -1: none
  // Per body of the function (ir::Function::bodies): its schedule and its buffers here. A loop
  // kernel (Kind::Loop, root the loop node, alsoRoots its live loop_result nodes) calls the
  // body's kernels once per step.
  std::vector<Schedule> bodies;
  std::vector<LoopSlots> loopSlots;
};

Schedule schedule(const ir::Function &f);
// Filters of at most this many taps run along image rows (the kernels unroll a filter row and keep
// blocks of filter rows or output rows in registers); larger ones take the direct loops.
constexpr int64_t kMaxRowTaps = 25;
// Whether convolution node `conv` runs along image rows, output rows in registers (stride 1,
// filters of at most kMaxRowTaps taps at any dilation and groups, or depthwise at any stride,
// dilation and size): then a conv2d can run an elementwise epilogue.
bool convAlongRows(const ir::Function &f, int conv);
// Whether convolution node `conv` is depthwise: groups (more than one) of one input channel
// each, output channel f reading input channel f / (F / groups). The *.depthwise kernels run it
// at any stride, padding and filter size, on the pooling kernels' window rows.
bool depthwiseConv(const ir::Function &f, int conv);
// Whether pooling node `pool` runs as window.lanes: max pooling over square windows at their own
// stride without padding (its gradient: when they also tile the input, each element in one
// window). Other pooling gradients add overlapping windows into memory, so take no epilogue.
bool poolOnLanes(const ir::Function &f, int pool);
bool poolTakesEpilogue(const ir::Function &f, int pool);
const char *kernelKindName(Kernel::Kind kind);
// One kernel's line of `soma emit kernels`: its kind, root, epilogue and reads.
void printKernel(const ir::Function &f, const Kernel &k, int index, std::ostream &os);

// Arena offsets (in floats) for the slots kernels write, from liveness over the kernel order.
struct BufferPlan {
  std::vector<int64_t> offset; // per slot; -1 for inputs (bound by the caller)
  int64_t arenaFloats = 0;
};
BufferPlan planBuffers(const ir::Function &f, const Schedule &s, int64_t maxBatch);
// The function's slots (sizes and live ranges), its inputs and results by name; Plan.h's layout
// adds its kernels.
rt::FunctionLayout slotLayout(const ir::Function &f, const Schedule &s);

} // namespace soma::transforms
