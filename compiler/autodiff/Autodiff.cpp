// 1. Mark the nodes on a path from some `wrt` entry to the loss.
// 2. Seed d(loss)/d(loss) = 1 and walk the nodes in reverse order.
// 3. For each marked node with an adjoint, apply its op's derivative rule, accumulating
//    (adding) into the adjoints of its marked operands.
// The switch in `derivative` has no default: a new op must state its rule.
// A loop's derivative is a loop too (backpropagation through time): its body is the derivative
// of the loop's body, run by this same walk with the adjoints of the body's results as seeds.
#include "autodiff/Autodiff.h"

#include <cassert>
#include <fmt/format.h>
#include <map>

namespace soma::autodiff {

using namespace soma::ir;

namespace {

class ReverseMode {
public:
  ReverseMode(Function &f) : f_(f), b_(f), adj_(f.nodes.size(), -1), needed_(f.nodes.size(), false) {}

  std::vector<int> run(int loss, const std::vector<int> &wrt) {
    assert(f_.nodes[loss].shape.empty() && "the loss must be a scalar");
    return run({{loss, -1}}, wrt);
  }

  // The adjoints of `wrt` given those of the seeds (node, its adjoint; -1: a scalar 1).
  std::vector<int> run(const std::vector<std::pair<int, int>> &seeds, const std::vector<int> &wrt) {
    size_t forwardSize = f_.nodes.size();
    for (int w : wrt)
      needed_[w] = true;
    for (size_t i = 0; i < forwardSize; ++i)
      for (int o : f_.nodes[i].operands)
        if (needed_[o])
          needed_[i] = true;
    int last = -1;
    for (auto [node, d] : seeds) {
      accumulate(node, d < 0 ? b_.fill(1.0, {}) : d);
      last = std::max(last, node);
    }
    for (int i = last; i >= 0; --i)
      if (needed_[i] && (adj_[i] >= 0 || loopAdjoints_.count(i)))
        derivative(i, adj_[i]);
    std::vector<int> grads;
    for (int w : wrt)
      grads.push_back(adj_[w] >= 0 ? adj_[w] : b_.fill(0.0, f_.nodes[w].shape));
    return grads;
  }

private:
  // Adds `d` to the adjoint of operand `x`, summing away the axes a scalar operand was broadcast over.
  void accumulate(int x, int d) {
    if (!needed_[x])
      return;
    Shape xs = f_.nodes[x].shape, ds = f_.nodes[d].shape; // copies: building nodes reallocates
    if (xs.empty() && !ds.empty())
      d = b_.reduce(Op::ReduceSum, d, (1u << ds.size()) - 1);
    adj_[x] = adj_[x] < 0 ? d : b_.binary(Op::Add, adj_[x], d);
  }

  // The shape of row-op operand `z` and the bit of its last axis (the classes).
  std::pair<Shape, uint32_t> rowAxis(int z) {
    Shape zs = f_.nodes[z].shape;
    return {zs, 1u << (zs.size() - 1)};
  }

  // y = node `i` (copied: appending nodes may reallocate), dy = its adjoint.
  void derivative(int i, int dy) {
    Node n = f_.nodes[i];
    int y = i;
    int x = n.operands.empty() ? -1 : n.operands[0];
    int a = x, b = n.operands.size() > 1 ? n.operands[1] : -1;
    switch (n.op) {
    case Op::Input:
    case Op::Fill:
    case Op::Constant:
    case Op::Step:
    case Op::Random:
    case Op::Equal:
    case Op::OneHot:
      return;     // leaves and piecewise-constant ops pass no gradient
    case Op::Neg: // d/dx -x = -1
      accumulate(x, b_.unary(Op::Neg, dy));
      return;
    case Op::Exp: // d/dx e^x = e^x = y
      accumulate(x, b_.binary(Op::Mul, dy, y));
      return;
    case Op::Log: // d/dx ln x = 1/x
      accumulate(x, b_.binary(Op::Div, dy, x));
      return;
    case Op::Sqrt: // d/dx sqrt(x) = 1 / (2 sqrt(x)) = 0.5 / y
      accumulate(x, b_.binary(Op::Mul, dy, b_.binary(Op::Div, b_.fill(0.5, {}), y)));
      return;
    case Op::Expm1: // d/dx (e^x - 1) = e^x = y + 1
      accumulate(x, b_.binary(Op::Mul, dy, b_.binary(Op::Add, y, b_.fill(1.0, {}))));
      return;
    case Op::Log1p: // d/dx ln(1 + x) = 1/(1 + x)
      accumulate(x, b_.binary(Op::Div, dy, b_.binary(Op::Add, b_.fill(1.0, {}), x)));
      return;
    case Op::Erf:  // d/dx erf(x) = 2/sqrt(pi) e^(-x^2)
    case Op::Erfc: // d/dx erfc(x) = -2/sqrt(pi) e^(-x^2)
      accumulate(x,
                 b_.binary(Op::Mul, dy,
                           b_.binary(Op::Mul, b_.fill(n.op == Op::Erf ? 1.1283791670955126 : -1.1283791670955126, {}),
                                     b_.unary(Op::Exp, b_.unary(Op::Neg, b_.binary(Op::Mul, x, x))))));
      return;
    case Op::Sigmoid: // d/dx s(x) = s(1 - s)
      accumulate(x, b_.binary(Op::Mul, dy, b_.binary(Op::Mul, y, b_.binary(Op::Sub, b_.fill(1.0, {}), y))));
      return;
    case Op::Tanh: // d/dx tanh x = 1 - tanh^2 x
      accumulate(x, b_.binary(Op::Mul, dy, b_.binary(Op::Sub, b_.fill(1.0, {}), b_.binary(Op::Mul, y, y))));
      return;
    case Op::Relu: // d/dx max(x, 0) = [x > 0] = [y > 0]: from y, so that x need not be kept
      accumulate(x, b_.binary(Op::Mul, dy, b_.unary(Op::Step, y)));
      return;
    case Op::Add: // d(a+b) = da + db
      accumulate(a, dy);
      accumulate(b, dy);
      return;
    case Op::Sub: // d(a-b) = da - db
      accumulate(a, dy);
      if (needed_[b])
        accumulate(b, b_.unary(Op::Neg, dy));
      return;
    case Op::Mul: // d(ab) = b da + a db
      if (needed_[a])
        accumulate(a, b_.binary(Op::Mul, dy, b));
      if (needed_[b])
        accumulate(b, b_.binary(Op::Mul, dy, a));
      return;
    case Op::Div: // d(a/b) = da/b - (a/b^2) db = da/b - (y/b) db
      if (needed_[a])
        accumulate(a, b_.binary(Op::Div, dy, b));
      if (needed_[b])
        accumulate(b, b_.unary(Op::Neg, b_.binary(Op::Mul, dy, b_.binary(Op::Div, y, b))));
      return;
    case Op::Transpose: { // the inverse permutation
      Shape inverse(n.attrs.perm.size());
      for (size_t k = 0; k < n.attrs.perm.size(); ++k)
        inverse[static_cast<size_t>(n.attrs.perm[k])] = static_cast<int64_t>(k);
      accumulate(x, b_.transpose(dy, inverse));
      return;
    }
    case Op::Pad: // the operand's window of dy
      accumulate(x, b_.slice(dy, n.attrs.axis, n.attrs.offset, f_.nodes[x].shape));
      return;
    case Op::Slice: // dy in place, zeros elsewhere
      accumulate(x, b_.pad(dy, n.attrs.axis, n.attrs.offset, f_.nodes[x].shape));
      return;
    case Op::SpaceToDepth: // each phase's dy back to its place, zeros at the phases not kept
      accumulate(x, b_.depthToSpace(dy, n.attrs.stride, n.attrs.offset, f_.nodes[x].shape));
      return;
    case Op::DepthToSpace: // the kept phases of dy
      accumulate(x, b_.spaceToDepth(dy, n.attrs.stride, n.attrs.offset));
      return;
    case Op::Gather: { // dtable[v, j] = sum over the ids equal to v of dy[.., j]; the ids get none
      Shape ids = f_.nodes[a].shape, table = f_.nodes[b].shape, full = ids;
      full.insert(full.end(), table.begin(), table.end()); // [.., V, D]
      uint32_t r = static_cast<uint32_t>(ids.size());
      int hot = b_.broadcast(b_.oneHot(a, table[0]), full, 1u << (r + 1));
      int spread = b_.broadcast(dy, full, 1u << r);
      accumulate(b, b_.reduce(Op::ReduceSum, b_.binary(Op::Mul, hot, spread), (1u << r) - 1));
      return;
    }
    case Op::Broadcast: // the sum over the copies
      accumulate(x, b_.reduce(Op::ReduceSum, dy, n.attrs.axes));
      return;
    case Op::ReduceSum: // every summand gets dy
      accumulate(x, b_.broadcast(dy, f_.nodes[x].shape, n.attrs.axes));
      return;
    case Op::ReduceMax: { // the maximal element gets dy; tied maxima share it equally (as in
      // TensorFlow), so a shift of all of them together, such as a bias, gets dy once
      Shape xs = f_.nodes[x].shape;
      int mask = b_.binary(Op::Equal, x, b_.broadcast(y, xs, n.attrs.axes));
      int share = b_.binary(Op::Div, dy, b_.reduce(Op::ReduceSum, mask, n.attrs.axes));
      accumulate(x, b_.binary(Op::Mul, b_.broadcast(share, xs, n.attrs.axes), mask));
      return;
    }
    case Op::SoftmaxXent: { // dz = dy (softmax(z) sum(t) - t); dt = -dy log softmax(z)
      if (needed_[a])
        accumulate(a, b_.add(Op::SoftmaxXentGrad, {a, b, dy}, {}));
      if (needed_[b]) {
        auto [zs, last] = rowAxis(a);
        int shifted = b_.binary(Op::Sub, a, b_.broadcast(b_.reduce(Op::ReduceMax, a, last), zs, last));
        int logSum = b_.unary(Op::Log, b_.reduce(Op::ReduceSum, b_.unary(Op::Exp, shifted), last));
        int logp = b_.binary(Op::Sub, shifted, b_.broadcast(logSum, zs, last));
        accumulate(b, b_.unary(Op::Neg, b_.binary(Op::Mul, b_.broadcast(dy, zs, last), logp)));
      }
      return;
    }
    case Op::SoftmaxXentGrad: { // y = g (p T - t), p = softmax(z), T = sum t, s = sum dy p:
      // dz = g T p (dy - s), dt = g (s - dy), dg = sum dy (p T - t)
      int g = n.operands[2];
      auto [zs, last] = rowAxis(a);
      auto rows = [&](int v) { return b_.broadcast(v, zs, last); };
      auto sum = [&](int v) { return b_.reduce(Op::ReduceSum, v, last); };
      int e = b_.unary(Op::Exp, b_.binary(Op::Sub, a, rows(b_.reduce(Op::ReduceMax, a, last))));
      int p = b_.binary(Op::Div, e, rows(sum(e)));
      int s = rows(sum(b_.binary(Op::Mul, dy, p)));
      if (needed_[a])
        accumulate(a, b_.binary(Op::Mul, rows(b_.binary(Op::Mul, g, sum(b))),
                                b_.binary(Op::Mul, p, b_.binary(Op::Sub, dy, s))));
      if (needed_[b])
        accumulate(b, b_.binary(Op::Mul, rows(g), b_.binary(Op::Sub, s, dy)));
      if (needed_[g])
        accumulate(g, sum(b_.binary(Op::Mul, dy, b_.binary(Op::Sub, b_.binary(Op::Mul, p, rows(sum(b))), b))));
      return;
    }
    case Op::MatMul: { // C = op(A) op(B): dop(A) = dC op(B)^T, dop(B) = op(A)^T dC
      bool ta = n.attrs.transA, tb = n.attrs.transB;
      if (needed_[a])
        accumulate(a, ta ? b_.matmul(b, dy, tb, true) : b_.matmul(dy, b, false, !tb));
      if (needed_[b])
        accumulate(b, tb ? b_.matmul(dy, a, true, ta) : b_.matmul(a, dy, !ta, false));
      return;
    }
    // The three convolution ops are gradients of one trilinear form T(x, w, y) (see Ops.def),
    // so each one's derivative is another of them.
    case Op::Conv2D: { // y = dT/dy(x, w)
      const ConvParams &c = n.attrs.conv;
      if (needed_[a])
        accumulate(a, b_.conv2dBackData(dy, b, f_.nodes[a].shape, c));
      if (needed_[b])
        accumulate(b, b_.conv2dBackFilter(a, dy, f_.nodes[b].shape, c));
      return;
    }
    case Op::Conv2DBackData: { // x = dT/dx(y = a, w = b)
      const ConvParams &c = n.attrs.conv;
      if (needed_[a])
        accumulate(a, b_.conv2d(dy, b, c));
      if (needed_[b])
        accumulate(b, b_.conv2dBackFilter(dy, a, f_.nodes[b].shape, c));
      return;
    }
    case Op::Conv2DBackFilter: { // w = dT/dw(x = a, y = b)
      const ConvParams &c = n.attrs.conv;
      if (needed_[a])
        accumulate(a, b_.conv2dBackData(b, dy, f_.nodes[a].shape, c));
      if (needed_[b])
        accumulate(b, b_.conv2d(a, dy, c));
      return;
    }
    case Op::MaxPool2D: // the window's maxima share dy
      accumulate(x, b_.maxPool2dBack(x, y, dy, n.attrs.pool));
      return;
    // Back and share are linear in their last operand and each other's adjoint there; the mask
    // is piecewise constant in x and y, which get no gradient.
    case Op::MaxPool2DBack:
    case Op::MaxPool2DShare: {
      int g = n.operands[2];
      if (needed_[g])
        accumulate(g, n.op == Op::MaxPool2DBack ? b_.maxPool2dShare(x, b, dy, n.attrs.pool)
                                                : b_.maxPool2dBack(x, b, dy, n.attrs.pool));
      return;
    }
    case Op::AvgPool2D:
      accumulate(x, b_.avgPool2dBack(dy, n.attrs.pool, f_.nodes[x].shape));
      return;
    case Op::AvgPool2DBack:
      accumulate(x, b_.avgPool2d(dy, n.attrs.pool));
      return;
    case Op::Reshape: // same elements, the operand's shape
      accumulate(x, b_.reshape(dy, f_.nodes[x].shape));
      return;
    case Op::LoopResult: { // kept for the loop's derivative, which takes the adjoints of all its results
      auto [it, added] = loopAdjoints_[x].try_emplace(static_cast<int>(n.attrs.offset), dy);
      if (!added)
        it->second = b_.binary(Op::Add, it->second, dy);
      return;
    }
    case Op::Loop:
      loopDerivative(i);
      return;
    }
  }

  // Loop result k of `loop`: the node that has it, or a new one.
  int loopResult(int loop, int k) {
    for (size_t j = static_cast<size_t>(loop) + 1; j < f_.nodes.size(); ++j)
      if (f_.nodes[j].op == Op::LoopResult && f_.nodes[j].operands[0] == loop && f_.nodes[j].attrs.offset == k)
        return static_cast<int>(j);
    return b_.loopResult(loop, k);
  }

  // The carry each step of a loop read, stacked as `stacked` (the carry each step left) is: the
  // first value `init` at the first step, the step before's at the others.
  int carriesRead(int init, int stacked, int64_t steps, bool reverse) {
    Shape s = f_.nodes[stacked].shape;
    size_t axis = stepAxis(s);
    Shape one = s;
    one[axis] = 1;
    int first = b_.broadcast(init, one, 1u << axis);
    if (steps == 1)
      return first;
    Shape rest = s;
    rest[axis] = steps - 1;
    int before = b_.pad(b_.slice(stacked, static_cast<int64_t>(axis), reverse ? 1 : 0, rest),
                        static_cast<int64_t>(axis), reverse ? 0 : 1, s);
    return b_.binary(Op::Add, before, b_.pad(first, static_cast<int64_t>(axis), reverse ? steps - 1 : 0, s));
  }

  // Backpropagation through time. For a loop whose body computes (carries', outputs) from
  // (carries, slices, invariants), a loop the other way whose body takes the carries' adjoints
  // and the invariants' gradients so far as its carries, the forward carries, slices and the
  // results' adjoints of the step as its sequences, recomputes the step and returns the adjoints
  // of its carries, the gradients plus the step's (in place) and the slices' adjoints.
  void loopDerivative(int i) {
    Node n = f_.nodes[i];
    const LoopAttrs la = n.attrs.loop;
    Function fwd = f_.bodies[static_cast<size_t>(la.body)]; // a copy: bodies grows below
    std::map<int, int> dres = loopAdjoints_[i];
    size_t nc = static_cast<size_t>(la.carries), ns = static_cast<size_t>(la.sequences);
    size_t nin = n.operands.size(), nr = fwd.results.size();
    std::vector<int> stacked;
    for (size_t j = 0; j < nc; ++j)
      stacked.push_back(loopResult(i, static_cast<int>(nr + j)));

    Function bb;
    Builder bw(bb);
    auto in = [&](const std::string &name, InputRole role, const Shape &shape) { return bw.input(name, role, shape); };
    std::vector<int> carryAdj, acc, accOf, carryIn, slices, outAdj, outAdjOf, stackAdj, stackAdjOf, inv;
    for (size_t j = 0; j < nc; ++j)
      carryAdj.push_back(in(fmt::format("d_carry{}", j), InputRole::Data, fwd.nodes[j].shape));
    for (size_t q = nc + ns; q < nin; ++q)
      if (needed_[n.operands[q]]) {
        acc.push_back(in(fmt::format("grad{}", q - nc - ns), InputRole::State, fwd.nodes[q].shape));
        accOf.push_back(static_cast<int>(q));
      }
    for (size_t j = 0; j < nc; ++j)
      carryIn.push_back(in(fmt::format("carry{}", j), InputRole::Data, fwd.nodes[j].shape));
    for (size_t k = nc; k < nc + ns; ++k)
      slices.push_back(in(fmt::format("step{}", k - nc), InputRole::Data, fwd.nodes[k].shape));
    for (size_t r = nc; r < nr; ++r)
      if (dres.count(static_cast<int>(r))) {
        outAdj.push_back(in(fmt::format("d_out{}", r - nc), InputRole::Data, fwd.nodes[fwd.results[r].value].shape));
        outAdjOf.push_back(static_cast<int>(r));
      }
    for (size_t j = 0; j < nc; ++j)
      if (dres.count(static_cast<int>(nr + j))) {
        stackAdj.push_back(in(fmt::format("d_each_carry{}", j), InputRole::Data, fwd.nodes[j].shape));
        stackAdjOf.push_back(static_cast<int>(j));
      }
    for (size_t q = nc + ns; q < nin; ++q)
      inv.push_back(in(fmt::format("inv{}", q - nc - ns), fwd.nodes[q].attrs.role, fwd.nodes[q].shape));

    // The step again: the forward body's nodes on the new inputs.
    std::vector<int> map(fwd.nodes.size(), -1);
    for (size_t k = 0; k < nin; ++k)
      map[k] = k < nc ? carryIn[k] : k < nc + ns ? slices[k - nc] : inv[k - nc - ns];
    for (size_t k = nin; k < fwd.nodes.size(); ++k) {
      Node c = fwd.nodes[k];
      for (int &o : c.operands)
        o = map[static_cast<size_t>(o)];
      map[k] = bw.add(c.op, c.operands, c.attrs);
    }
    std::vector<std::pair<int, int>> seeds;
    for (size_t j = 0; j < nc; ++j)
      seeds.push_back({map[static_cast<size_t>(fwd.results[j].value)], carryAdj[j]});
    for (size_t r = 0; r < outAdj.size(); ++r)
      seeds.push_back({map[static_cast<size_t>(fwd.results[static_cast<size_t>(outAdjOf[r])].value)], outAdj[r]});
    for (size_t r = 0; r < stackAdj.size(); ++r)
      seeds.push_back({map[static_cast<size_t>(fwd.results[static_cast<size_t>(stackAdjOf[r])].value)], stackAdj[r]});
    std::vector<int> wrt = carryIn;
    std::vector<size_t> seqNeeded;
    for (size_t k = 0; k < ns; ++k)
      if (needed_[n.operands[nc + k]]) {
        wrt.push_back(slices[k]);
        seqNeeded.push_back(k);
      }
    for (int q : accOf)
      wrt.push_back(inv[static_cast<size_t>(q) - nc - ns]);
    std::vector<int> d = ReverseMode(bb).run(seeds, wrt);
    for (size_t j = 0; j < nc; ++j)
      bb.results.push_back({fmt::format("d_carry{}", j), d[j]});
    for (size_t a = 0; a < acc.size(); ++a)
      bb.results.push_back(
          {fmt::format("grad{}", a), bw.binary(Op::Add, acc[a], d[nc + seqNeeded.size() + a]), acc[a]});
    for (size_t k = 0; k < seqNeeded.size(); ++k)
      bb.results.push_back({fmt::format("d_step{}", seqNeeded[k]), d[nc + k]});

    // The loop of it, the other way.
    std::vector<int> carries, sequences, invariants;
    for (size_t j = 0; j < nc; ++j)
      carries.push_back(dres.count(static_cast<int>(j)) ? dres[static_cast<int>(j)]
                                                        : b_.fill(0.0, f_.nodes[n.operands[j]].shape));
    for (int q : accOf)
      carries.push_back(b_.fill(0.0, f_.nodes[n.operands[static_cast<size_t>(q)]].shape));
    for (size_t j = 0; j < nc; ++j)
      sequences.push_back(carriesRead(n.operands[j], stacked[j], la.steps, la.reverse));
    for (size_t k = nc; k < nc + ns; ++k)
      sequences.push_back(n.operands[k]);
    for (int r : outAdjOf)
      sequences.push_back(dres[r]);
    for (int j : stackAdjOf)
      sequences.push_back(dres[static_cast<int>(nr) + j]);
    for (size_t q = nc + ns; q < nin; ++q)
      invariants.push_back(n.operands[q]);
    size_t nbc = carries.size();
    int back = b_.loop(std::move(bb), carries, sequences, invariants, la.steps, !la.reverse);
    for (size_t j = 0; j < nc; ++j)
      accumulate(n.operands[j], b_.loopResult(back, static_cast<int>(j)));
    for (size_t a = 0; a < accOf.size(); ++a)
      accumulate(n.operands[static_cast<size_t>(accOf[a])], b_.loopResult(back, static_cast<int>(nc + a)));
    for (size_t k = 0; k < seqNeeded.size(); ++k)
      accumulate(n.operands[nc + seqNeeded[k]], b_.loopResult(back, static_cast<int>(nbc + k)));
  }

  Function &f_;
  Builder b_;
  std::vector<int> adj_;
  std::vector<bool> needed_;
  std::map<int, std::map<int, int>> loopAdjoints_; // loop -> its result k -> that result's adjoint
};

} // namespace

std::vector<int> appendGradients(Function &f, int loss, const std::vector<int> &wrt) {
  return ReverseMode(f).run(loss, wrt);
}

} // namespace soma::autodiff
