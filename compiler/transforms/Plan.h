// Kernel plans: how each kernel of a schedule runs, chosen once, before any code is emitted, from
// its shapes and the target's vector registers. A plan names its strategy (Strategies.def), its
// register tile and vector lanes, and its work: how many items the threads share and how much
// arithmetic they hold, the one cost model of both the thread split and `--profile`. The emitter
// reads plans and decides nothing; `soma emit kernels` prints them.
#pragma once
#include "ir/IR.h"
#include "transforms/Schedule.h"

#include <iosfwd>
#include <string>
#include <vector>

namespace soma::transforms {

enum class Strategy {
#define STRATEGY(Id, Name, Kind, Summary) Id,
#include "transforms/Strategies.def"
};
const char *strategyName(Strategy s);
Kernel::Kind strategyKind(Strategy s);

// What plans may assume of the target.
struct Machine {
  int lanes = 16;                     // floats per vector register
  int registers = 32;                 // vector registers (AVX-512: 32; AVX2: 16)
  int64_t l2Bytes = int64_t{1} << 20; // a core's L2 cache
};

// A count that may grow with the batch size B: ceil(factor * B^batchPower / divisor) * times.
struct Count {
  int64_t factor = 1;
  int batchPower = 0;
  int64_t divisor = 1;
  int64_t times = 1;
  double at(int64_t batch) const;
  std::string str() const; // "ceil(B/6)*2", "B*784", "120"
};

struct KernelPlan {
  Strategy strategy = Strategy::Nest;
  int64_t lanes = 0; // floats per vector
  // The register tile, as the strategy reads it (0: none):
  //   matmul.tiled: rows of C x columns (floats); singleRow: the columns of a lone row's tile
  //   matmul.packed: as matmul.tiled; depth: k's per packed block of B, pass: tiles per item
  //   matmul.dot: rows x columns of C, one vector of partial sums each
  //   conv.rows, conv-data.rows: channels (output channels) x rows (output rows)
  //   conv.channel-lanes: rows (output rows, each a row of vectors of channels)
  //   conv-data.filter-lanes: columns (positions of a row, every channel)
  //   conv-filter.filter-lanes: columns (y vectors of a row)
  //   conv-filter.rows, conv-filter.planes: channels (filters) x rows (filter rows)
  //   conv.gemm, conv-data.gemm: rows (output channels) x columns (positions, floats)
  //   conv-filter.gemm: rows (filters) x columns (channels), dot products
  int64_t rows = 0, columns = 0, channels = 0, singleRow = 0, depth = 0;
  int64_t groups = 1; // matmul.tiled: groups of columns per block of rows (work items)
  // conv-filter.filter-lanes: work items, conv-filter.gemm: tiles, whose sums stay on the stack at
  // once (a pass over the batch each); matmul.packed: tiles of rows per work item;
  // conv-filter.rows, .planes: samples per pass over the batch (0: the whole batch in one)
  int64_t pass = 0;
  // elementwise.trailing, reduce.trailing, reduce.runs: the first axis of the one run;
  // reduce.leading: the number of leading axes reduced.
  size_t from = 0;
  bool epilogue = false;        // an elementwise tree above the product runs in the kernel
  bool vectorEpilogue = false;  // on the tile's vectors (else an element at a time)
  std::vector<int> prefetch;    // matmul.tiled, .packed: epilogue buffers fetched two tiles ahead
  Count items;                  // work items the threads share (the kernel's rows [lo, hi))
  Count work;                   // units in all: a multiply-add of a product, an element otherwise
  double flopsPerUnit = 1;      // --profile: 2 for a multiply-add
  int64_t steps = 0;            // loop.steps: how many times the body runs
  std::vector<KernelPlan> body; // loop.steps: the plans of the body's kernels
};

// Where a choice depends on the batch size B (whether a weight gradient's dy, [B, N], is worth
// packing; how many rows a work item takes), plans assume `batch`: the train block's, as the
// model trains at it. Any batch runs correctly; others may run a little slower.
constexpr int64_t kDefaultPlanBatch = 64;
std::vector<KernelPlan> planKernels(const ir::Function &f, const Schedule &s, const Machine &m,
                                    int64_t batch = kDefaultPlanBatch);
// Whether convolution node `conv` with a stride above 1 has a kernel of its own on machine `m`:
// conv.channel-lanes, conv-data.channel-lanes and conv-filter.filter-lanes read their input at any
// stride. The planner takes them for such a node; the others run over phases (Phases.h).
bool stridedKernel(const ir::Function &f, int conv, const Machine &m);
// One line: "conv.rows lanes=16 tile=4x2 epilogue=vector items=B work=B*75264".
std::string describe(const KernelPlan &p);
// The schedule with each kernel's plan under it.
void print(const ir::Function &f, const Schedule &s, const std::vector<KernelPlan> &plans, std::ostream &os);
// What the runtime needs to run the function: its slots' sizes and live ranges, its inputs and
// results by name, its kernels' strategies and arithmetic (for --profile).
rt::FunctionLayout layout(const ir::Function &f, const Schedule &s, const std::vector<KernelPlan> &plans);

} // namespace soma::transforms
