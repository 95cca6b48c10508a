// 1. Walk the nodes in order, renaming operands to their representatives.
// 2. A node equal to an earlier one (op, renamed operands, attributes) takes that one as its
//    representative; Inputs are never merged.
// 3. Keep the representatives that some result (or an in-place update target) needs, renumbered.
#include "transforms/CSE.h"

#include <array>
#include <map>
#include <tuple>

namespace soma::transforms {

using namespace ir;

namespace {
using Key =
    std::tuple<int, std::vector<int>, double, Shape, uint32_t, bool, bool, int64_t, int64_t, std::vector<double>, Shape,
               int64_t, int64_t, std::array<int64_t, 9>, std::array<int64_t, 5>, std::array<int64_t, 5>>;

std::array<int64_t, 9> poolKey(const Pool2D &p) {
  return {p.kernel[0],  p.kernel[1], p.stride[0], p.stride[1],         p.padding[0],
          p.padding[1], p.out[0],    p.out[1],    p.includePad ? 1 : 0};
}

Key keyOf(const Node &n, const std::vector<int> &operands) {
  const ConvParams &c = n.attrs.conv;
  return {static_cast<int>(n.op),
          operands,
          n.attrs.value,
          n.attrs.shape,
          n.attrs.axes,
          n.attrs.transA,
          n.attrs.transB,
          n.attrs.classes,
          n.attrs.stride,
          n.attrs.values,
          n.attrs.perm,
          n.attrs.axis,
          n.attrs.offset,
          poolKey(n.attrs.pool),
          {c.stride, c.padding, c.dilation[0], c.dilation[1], c.groups},
          {n.attrs.loop.body, n.attrs.loop.steps, n.attrs.loop.carries, n.attrs.loop.sequences,
           n.attrs.loop.reverse ? 1 : 0}};
}
} // namespace

Function eliminateCommonSubexpressions(const Function &f) {
  size_t n = f.nodes.size();
  std::vector<int> rep(n);
  std::map<Key, int> seen;
  for (size_t i = 0; i < n; ++i) {
    const Node &node = f.nodes[i];
    rep[i] = static_cast<int>(i);
    if (node.op == Op::Input)
      continue;
    std::vector<int> operands;
    for (int o : node.operands)
      operands.push_back(rep[o]);
    auto [it, inserted] = seen.emplace(keyOf(node, operands), static_cast<int>(i));
    if (!inserted)
      rep[i] = it->second;
  }
  std::vector<bool> live(n, false);
  for (const Result &r : f.results) {
    live[rep[r.value]] = true;
    if (r.updates >= 0)
      live[r.updates] = true;
  }
  for (size_t i = n; i-- > 0;)
    if (live[i] || f.nodes[i].op == Op::Input) {
      live[i] = true;
      for (int o : f.nodes[i].operands)
        live[rep[o]] = true;
    }
  Function out;
  out.name = f.name;
  for (const Function &body : f.bodies) // each loop's step, its inputs and results kept as they are
    out.bodies.push_back(eliminateCommonSubexpressions(body));
  std::vector<int> newId(n, -1);
  for (size_t i = 0; i < n; ++i) {
    if (!live[i] || rep[i] != static_cast<int>(i))
      continue;
    Node node = f.nodes[i];
    for (int &o : node.operands)
      o = newId[rep[o]];
    newId[i] = static_cast<int>(out.nodes.size());
    out.nodes.push_back(std::move(node));
  }
  for (const Result &r : f.results)
    out.results.push_back({r.name, newId[rep[r.value]], r.updates >= 0 ? newId[r.updates] : -1});
  return out;
}

} // namespace soma::transforms
