// The plans in words: each strategy's name and kind from Strategies.def, work counts in terms
// of the batch B, and a plan's one line under its kernel (`soma emit kernels`).
#include "transforms/Plan.h"

#include <fmt/format.h>
#include <ostream>
#include <sstream>

namespace soma::transforms {

using namespace ir;

const char *strategyName(Strategy s) {
  switch (s) {
#define STRATEGY(Id, Name, Kind, Summary)                                                                              \
  case Strategy::Id:                                                                                                   \
    return Name;
#include "transforms/Strategies.def"
  }
  return "?";
}

Kernel::Kind strategyKind(Strategy s) {
  switch (s) {
#define STRATEGY(Id, Name, KernelKind, Summary)                                                                        \
  case Strategy::Id:                                                                                                   \
    return Kernel::Kind::KernelKind;
#include "transforms/Strategies.def"
  }
  return Kernel::Kind::Elementwise;
}

double Count::at(int64_t batch) const {
  double v = static_cast<double>(factor) * std::pow(static_cast<double>(batch), batchPower);
  return std::ceil(v / static_cast<double>(divisor)) * static_cast<double>(times);
}

std::string Count::str() const {
  if (batchPower == 0)
    return fmt::format("{}", static_cast<int64_t>(at(0)));
  std::string s = factor == 1 ? "B" : fmt::format("B*{}", factor);
  for (int i = 1; i < batchPower; ++i)
    s += "*B";
  if (divisor > 1)
    s = fmt::format("ceil({}/{})", s, divisor);
  if (times > 1)
    s += fmt::format("*{}", times);
  return s;
}

std::string describe(const KernelPlan &p) {
  std::string out = fmt::format("{} lanes={}", strategyName(p.strategy), p.lanes);
  switch (p.strategy) {
  case Strategy::Scalar:
  case Strategy::Nest:
  case Strategy::Flat:
  case Strategy::Gather:
  case Strategy::ReduceNest:
  case Strategy::ReduceColumns:
  case Strategy::SoftmaxRows:
  case Strategy::MatMulLoops:
  case Strategy::ConvLoops:
    break;
  case Strategy::Trailing:
  case Strategy::ReduceRuns:
  case Strategy::ReduceTrailing:
    out += fmt::format(" run-from-axis={}", p.from);
    break;
  case Strategy::ReduceLeading:
    out += fmt::format(" leading-axes={}", p.from);
    break;
  case Strategy::PoolLanes:
  case Strategy::PoolRows:
  case Strategy::PoolBackRows:
  case Strategy::ConvDepthwise:
  case Strategy::ConvDataDepthwise:
  case Strategy::ConvFilterDepthwise:
    break;
  case Strategy::MatMulTiled:
    out += fmt::format(" tile={}x{} single-row={} groups={}", p.rows, p.columns, p.singleRow, p.groups);
    break;
  case Strategy::MatMulPacked:
    out += fmt::format(" tile={}x{} depth={} tiles-per-item={}", p.rows, p.columns, p.depth, p.pass);
    break;
  case Strategy::MatMulDot:
    out += fmt::format(" tile={}x{}", p.rows, p.columns);
    break;
  case Strategy::ConvChannelLanes:
  case Strategy::ConvDataChannelLanes:
    out += fmt::format(" rows={}", p.rows);
    if (p.columns)
      out += fmt::format(" columns={}", p.columns);
    break;
  case Strategy::ConvRows:
  case Strategy::ConvDataRows:
    out += fmt::format(" channels={} rows={}", p.channels, p.rows);
    break;
  case Strategy::ConvDataFilterLanes:
    out += fmt::format(" positions={}", p.columns);
    break;
  case Strategy::ConvFilterLanes:
    out += fmt::format(" y-vectors={} items-per-pass={}", p.columns, p.pass);
    break;
  case Strategy::ConvGemm:
  case Strategy::ConvDataGemm:
    out += fmt::format(" tile={}x{}", p.rows, p.columns);
    break;
  case Strategy::ConvFilterGemm:
    out += fmt::format(" tile={}x{} tiles-per-pass={}", p.rows, p.columns, p.pass);
    break;
  case Strategy::ConvFilterPlanes:
  case Strategy::ConvFilterRows:
    out += fmt::format(" filters={} filter-rows={}", p.channels, p.rows);
    if (p.pass)
      out += fmt::format(" samples-per-pass={}", p.pass);
    break;
  case Strategy::LoopSteps:
    return fmt::format("{} steps={} body-kernels={}", strategyName(p.strategy), p.steps, p.body.size());
  }
  if (p.epilogue)
    out += p.vectorEpilogue ? " epilogue=vector" : " epilogue=elements";
  for (size_t i = 0; i < p.prefetch.size(); ++i)
    out += fmt::format("{}%{}", i ? "," : " prefetch=", p.prefetch[i]);
  out += fmt::format(" items={} work={}", p.items.str(), p.work.str());
  return out;
}

void print(const Function &f, const Schedule &s, const std::vector<KernelPlan> &plans, std::ostream &os) {
  for (size_t k = 0; k < s.kernels.size(); ++k) {
    printKernel(f, s.kernels[k], static_cast<int>(k), os);
    os << "  plan " << describe(plans[k]) << "\n";
    if (s.kernels[k].kind != Kernel::Kind::Loop)
      continue;
    // The body's kernels, indented under the loop (their % numbers are the body's nodes).
    size_t b = static_cast<size_t>(f.nodes[s.kernels[k].root].attrs.loop.body);
    std::ostringstream body;
    print(f.bodies[b], s.bodies[b], plans[k].body, body);
    std::istringstream lines(body.str());
    for (std::string line; std::getline(lines, line);)
      os << "    " << line << "\n";
  }
}

} // namespace soma::transforms
