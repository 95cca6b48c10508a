// Op table queries, the builder, the printer and the verifier.
#include "ir/IR.h"

#include <cassert>
#include <fmt/format.h>
#include <ostream>

namespace soma::ir {

namespace {
struct OpInfo {
  const char *name;
  int arity;
  OpKind kind;
  bool differentiable;
};
constexpr OpInfo kOps[] = {
#define OP(Name, Mnemonic, Arity, Kind, Diff) {Mnemonic, Arity, OpKind::Kind, Diff},
#include "ir/Ops.def"
};
} // namespace

const char *opName(Op op) { return kOps[static_cast<int>(op)].name; }
int opArity(Op op) { return kOps[static_cast<int>(op)].arity; }
OpKind opKind(Op op) { return kOps[static_cast<int>(op)].kind; }
bool opDifferentiable(Op op) { return kOps[static_cast<int>(op)].differentiable; }
std::optional<Op> opFromName(const std::string &m) {
  for (int i = 0; i < kNumOps; ++i)
    if (m == kOps[i].name)
      return static_cast<Op>(i);
  return std::nullopt;
}

std::string formatShape(const Shape &s) {
  std::string out = "f32[";
  for (size_t i = 0; i < s.size(); ++i)
    out += (i ? ", " : "") + (s[i] == kBatch ? std::string("B") : std::to_string(s[i]));
  return out + "]";
}

int64_t numElements(const Shape &s, int64_t batch) {
  int64_t n = 1;
  for (int64_t d : s)
    n *= d == kBatch ? batch : d;
  return n;
}

std::vector<int> Function::inputs() const {
  std::vector<int> ids;
  for (size_t i = 0; i < nodes.size(); ++i)
    if (nodes[i].op == Op::Input)
      ids.push_back(static_cast<int>(i));
  return ids;
}

int Function::findInput(const std::string &n) const {
  for (size_t i = 0; i < nodes.size(); ++i)
    if (nodes[i].op == Op::Input && nodes[i].attrs.name == n)
      return static_cast<int>(i);
  return -1;
}

int Builder::add(Op op, std::vector<int> operands, Attrs attrs) {
  assert(opArity(op) < 0 || static_cast<int>(operands.size()) == opArity(op));
  std::vector<Shape> shapes;
  for (int o : operands)
    shapes.push_back(f_.nodes.at(o).shape);
  ShapeResult r = inferShape(op, shapes, attrs);
  if (!r.error.empty()) {
    fmt::print(stderr, "soma: internal error: {}: {}\n", opName(op), r.error);
    assert(false && "shape rule failed while building IR");
  }
  f_.nodes.push_back(Node{op, std::move(operands), std::move(attrs), std::move(r.shape)});
  return static_cast<int>(f_.nodes.size() - 1);
}

int Builder::input(const std::string &name, InputRole role, Shape shape) {
  Attrs a;
  a.name = name;
  a.role = role;
  a.shape = std::move(shape);
  return add(Op::Input, {}, a);
}
int Builder::fill(double value, Shape shape) {
  Attrs a;
  a.value = value;
  a.shape = std::move(shape);
  return add(Op::Fill, {}, a);
}
int Builder::constant(std::vector<double> values, Shape shape) {
  Attrs a;
  a.values = std::move(values);
  a.shape = std::move(shape);
  return add(Op::Constant, {}, a);
}
int Builder::unary(Op op, int x) { return add(op, {x}, {}); }
int Builder::binary(Op op, int a, int b) { return add(op, {a, b}, {}); }
int Builder::broadcast(int x, Shape shape, uint32_t axes) {
  Attrs a;
  a.shape = std::move(shape);
  a.axes = axes;
  return add(Op::Broadcast, {x}, a);
}
int Builder::oneHot(int labels, int64_t classes) {
  Attrs a;
  a.classes = classes;
  return add(Op::OneHot, {labels}, a);
}
int Builder::gather(int ids, int table) { return add(Op::Gather, {ids, table}, {}); }
int Builder::reduce(Op op, int x, uint32_t axes) {
  Attrs a;
  a.axes = axes;
  return add(op, {x}, a);
}
int Builder::matmul(int a, int b, bool transA, bool transB) {
  Attrs at;
  at.transA = transA;
  at.transB = transB;
  return add(Op::MatMul, {a, b}, at);
}
int Builder::reshape(int x, Shape shape) {
  Attrs a;
  a.shape = std::move(shape);
  return add(Op::Reshape, {x}, a);
}

int Builder::random(int seed, Shape shape, uint32_t salt) {
  Attrs a;
  a.shape = std::move(shape);
  a.value = salt;
  return add(Op::Random, {seed}, a);
}
OpIndexing opIndexing(Op op) {
  switch (op) { // every op listed: a new op must say how it reads its operands
  case Op::Fill:
  case Op::Constant:
  case Op::Neg:
  case Op::Exp:
  case Op::Expm1:
  case Op::Log:
  case Op::Sqrt:
  case Op::Log1p:
  case Op::Erf:
  case Op::Erfc:
  case Op::Sigmoid:
  case Op::Tanh:
  case Op::Relu:
  case Op::Step:
  case Op::Add:
  case Op::Sub:
  case Op::Mul:
  case Op::Div:
  case Op::Equal:
    return OpIndexing::Pointwise;
  case Op::Broadcast:
  case Op::OneHot:
  case Op::Gather:
  case Op::Transpose:
  case Op::Pad:
  case Op::Slice:
  case Op::SpaceToDepth:
  case Op::DepthToSpace:
    return OpIndexing::IndexMap;
  case Op::Input:
  case Op::Random:
  case Op::ReduceSum:
  case Op::ReduceMax:
  case Op::SoftmaxXent:
  case Op::SoftmaxXentGrad:
  case Op::MatMul:
  case Op::Conv2D:
  case Op::Conv2DBackData:
  case Op::Conv2DBackFilter:
  case Op::MaxPool2D:
  case Op::MaxPool2DBack:
  case Op::MaxPool2DShare:
  case Op::AvgPool2D:
  case Op::AvgPool2DBack:
  case Op::Reshape:
  case Op::Loop:
  case Op::LoopResult:
    return OpIndexing::Other;
  }
  return OpIndexing::Other;
}
bool opIsIndexMap(Op op) { return opIndexing(op) == OpIndexing::IndexMap; }
int Builder::transpose(int x, Shape perm) {
  Attrs a;
  a.perm = std::move(perm);
  return add(Op::Transpose, {x}, a);
}
static Attrs windowAttrs(int64_t axis, int64_t offset, Shape shape) {
  Attrs a;
  a.axis = axis;
  a.offset = offset;
  a.shape = std::move(shape);
  return a;
}
int Builder::pad(int x, int64_t axis, int64_t offset, Shape shape) {
  return add(Op::Pad, {x}, windowAttrs(axis, offset, std::move(shape)));
}
int Builder::slice(int x, int64_t axis, int64_t offset, Shape shape) {
  return add(Op::Slice, {x}, windowAttrs(axis, offset, std::move(shape)));
}
int Builder::spaceToDepth(int x, int64_t stride, int64_t phases) {
  Attrs a;
  a.stride = stride;
  a.offset = phases;
  return add(Op::SpaceToDepth, {x}, a);
}
int Builder::depthToSpace(int x, int64_t stride, int64_t phases, Shape shape) {
  Attrs a;
  a.stride = stride;
  a.offset = phases;
  a.shape = std::move(shape);
  return add(Op::DepthToSpace, {x}, a);
}
static Attrs convAttrs(Shape shape, const ConvParams &c) {
  Attrs a;
  a.shape = std::move(shape);
  a.conv = c;
  return a;
}
static Attrs poolAttrs(const Pool2D &p, Shape shape = {}) {
  Attrs a;
  a.pool = p;
  a.shape = std::move(shape);
  return a;
}
int Builder::maxPool2d(int x, const Pool2D &p) { return add(Op::MaxPool2D, {x}, poolAttrs(p)); }
int Builder::maxPool2dBack(int x, int y, int dy, const Pool2D &p) {
  return add(Op::MaxPool2DBack, {x, y, dy}, poolAttrs(p));
}
int Builder::maxPool2dShare(int x, int y, int d, const Pool2D &p) {
  return add(Op::MaxPool2DShare, {x, y, d}, poolAttrs(p));
}
int Builder::avgPool2d(int x, const Pool2D &p) { return add(Op::AvgPool2D, {x}, poolAttrs(p)); }
int Builder::avgPool2dBack(int g, const Pool2D &p, Shape xShape) {
  return add(Op::AvgPool2DBack, {g}, poolAttrs(p, std::move(xShape)));
}
int Builder::conv2d(int x, int w, const ConvParams &c) { return add(Op::Conv2D, {x, w}, convAttrs({}, c)); }
int Builder::conv2dBackData(int dy, int w, Shape xShape, const ConvParams &c) {
  return add(Op::Conv2DBackData, {dy, w}, convAttrs(std::move(xShape), c));
}
int Builder::conv2dBackFilter(int x, int dy, Shape wShape, const ConvParams &c) {
  return add(Op::Conv2DBackFilter, {x, dy}, convAttrs(std::move(wShape), c));
}

int Builder::loop(Function body, const std::vector<int> &carries, const std::vector<int> &sequences,
                  const std::vector<int> &invariants, int64_t steps, bool reverse) {
  Attrs a;
  a.loop = {static_cast<int>(f_.bodies.size()), steps, static_cast<int>(carries.size()),
            static_cast<int>(sequences.size()), reverse};
  body.name = fmt::format("{}.loop{}", f_.name, f_.bodies.size());
  f_.bodies.push_back(std::move(body));
  std::vector<int> operands = carries;
  operands.insert(operands.end(), sequences.begin(), sequences.end());
  operands.insert(operands.end(), invariants.begin(), invariants.end());
  return add(Op::Loop, std::move(operands), a);
}

int Builder::loopResult(int loop, int k) {
  Attrs a;
  a.offset = k;
  a.shape = loopResultShape(f_, loop, k);
  return add(Op::LoopResult, {loop}, a);
}

Shape loopResultShape(const Function &f, int loop, int k) {
  const LoopAttrs &la = f.nodes[loop].attrs.loop;
  const Function &body = f.bodies[static_cast<size_t>(la.body)];
  auto result = [&](int r) { return body.nodes[body.results[static_cast<size_t>(r)].value].shape; };
  int results = static_cast<int>(body.results.size());
  if (k < la.carries)
    return result(k);
  Shape s = result(k < results ? k : k - results);
  bool batched = !s.empty() && s[0] == kBatch;
  s.insert(s.begin() + (batched ? 1 : 0), la.steps);
  return s;
}

static std::string axesText(uint32_t axes) {
  std::string s;
  for (int i = 0; i < 32; ++i)
    if (axes >> i & 1)
      s += (s.empty() ? "" : ", ") + std::to_string(i);
  return "[" + s + "]";
}

static const char *roleName(InputRole r) {
  switch (r) {
  case InputRole::Data:
    return "data";
  case InputRole::Label:
    return "label";
  case InputRole::Param:
    return "param";
  case InputRole::State:
    return "state";
  case InputRole::Scalar:
    return "scalar";
  }
  return "";
}

void print(const Function &f, std::ostream &os) {
  os << "func @" << f.name << " {\n";
  for (size_t i = 0; i < f.nodes.size(); ++i) {
    const Node &n = f.nodes[i];
    os << "  %" << i << " = " << opName(n.op);
    for (size_t j = 0; j < n.operands.size(); ++j)
      os << (j ? ", %" : " %") << n.operands[j];
    std::vector<std::string> attrs;
    switch (n.op) {
    case Op::Input:
      attrs.push_back(fmt::format("name = \"{}\", role = {}", n.attrs.name, roleName(n.attrs.role)));
      break;
    case Op::Fill:
      attrs.push_back(fmt::format("value = {}", n.attrs.value));
      break;
    case Op::Random:
      attrs.push_back(fmt::format("salt = {}", n.attrs.value));
      break;
    case Op::Constant: {
      std::string v;
      for (size_t k = 0; k < n.attrs.values.size(); ++k)
        v += fmt::format("{}{}", k ? ", " : "", n.attrs.values[k]);
      attrs.push_back("values = [" + v + "]");
      break;
    }
    case Op::Broadcast:
    case Op::ReduceSum:
    case Op::ReduceMax:
      attrs.push_back("axes = " + axesText(n.attrs.axes));
      break;
    case Op::OneHot:
      attrs.push_back(fmt::format("classes = {}", n.attrs.classes));
      break;
    case Op::Transpose: {
      std::string p;
      for (size_t k = 0; k < n.attrs.perm.size(); ++k)
        p += (k ? ", " : "") + std::to_string(n.attrs.perm[k]);
      attrs.push_back("perm = [" + p + "]");
      break;
    }
    case Op::Pad:
    case Op::Slice:
      attrs.push_back(fmt::format("axis = {}, offset = {}", n.attrs.axis, n.attrs.offset));
      break;
    case Op::SpaceToDepth:
    case Op::DepthToSpace:
      attrs.push_back(fmt::format("stride = {}, phases = {}", n.attrs.stride, n.attrs.offset));
      break;
    case Op::Conv2D:
    case Op::Conv2DBackData:
    case Op::Conv2DBackFilter:
      attrs.push_back(fmt::format("stride = {}, padding = {}", n.attrs.conv.stride, n.attrs.conv.padding));
      if (const auto &d = n.attrs.conv.dilation; d[0] != 1 || d[1] != 1) // one number when both axes agree
        attrs.push_back(d[0] == d[1] ? fmt::format("dilation = {}", d[0])
                                     : fmt::format("dilation = [{}, {}]", d[0], d[1]));
      if (n.attrs.conv.groups != 1)
        attrs.push_back(fmt::format("groups = {}", n.attrs.conv.groups));
      break;
    case Op::MaxPool2D:
    case Op::MaxPool2DBack:
    case Op::MaxPool2DShare:
    case Op::AvgPool2D:
    case Op::AvgPool2DBack: { // per axis, one number when both axes agree: window = 3, stride = 2
      const Pool2D &p = n.attrs.pool;
      auto pair = [](const std::array<int64_t, 2> &v) {
        return v[0] == v[1] ? std::to_string(v[0]) : fmt::format("{}x{}", v[0], v[1]);
      };
      attrs.push_back("window = " + pair(p.kernel));
      if (p.stride != p.kernel)
        attrs.push_back("stride = " + pair(p.stride));
      if (p.padding != std::array<int64_t, 2>{0, 0})
        attrs.push_back("padding = " + pair(p.padding));
      attrs.push_back("out = " + fmt::format("{}x{}", p.out[0], p.out[1]));
      if ((n.op == Op::AvgPool2D || n.op == Op::AvgPool2DBack) && !p.includePad)
        attrs.push_back("exclude_pad");
      break;
    }
    case Op::Loop:
      attrs.push_back(fmt::format("body = @{}, steps = {}, carries = {}, sequences = {}",
                                  f.bodies[static_cast<size_t>(n.attrs.loop.body)].name, n.attrs.loop.steps,
                                  n.attrs.loop.carries, n.attrs.loop.sequences));
      if (n.attrs.loop.reverse)
        attrs.push_back("reverse");
      break;
    case Op::LoopResult:
      attrs.push_back(fmt::format("result = {}", n.attrs.offset));
      break;
    case Op::MatMul:
      if (n.attrs.transA)
        attrs.push_back("transpose_a");
      if (n.attrs.transB)
        attrs.push_back("transpose_b");
      break;
    default:
      break;
    }
    if (!attrs.empty()) {
      os << " {";
      for (size_t j = 0; j < attrs.size(); ++j)
        os << (j ? ", " : "") << attrs[j];
      os << "}";
    }
    os << " : " << formatShape(n.shape) << "\n";
  }
  os << "  return";
  for (size_t i = 0; i < f.results.size(); ++i) {
    const Result &r = f.results[i];
    os << (i ? ", " : " ") << r.name << " = %" << r.value;
    if (r.updates >= 0)
      os << " -> %" << r.updates;
  }
  os << "\n}\n";
  for (const Function &body : f.bodies)
    print(body, os);
}

// A loop node against its body: operands, inputs and results in the loop's order and shapes.
static std::string verifyLoop(const Function &f, int i) {
  const Node &n = f.nodes[i];
  const LoopAttrs &la = n.attrs.loop;
  if (la.body < 0 || la.body >= static_cast<int>(f.bodies.size()))
    return fmt::format("%{}: loop body {} does not exist", i, la.body);
  const Function &body = f.bodies[static_cast<size_t>(la.body)];
  std::vector<int> inputs = body.inputs();
  size_t nc = static_cast<size_t>(la.carries), ns = static_cast<size_t>(la.sequences);
  if (la.steps < 1 || nc + ns > n.operands.size() || inputs.size() != n.operands.size() || body.results.size() < nc)
    return fmt::format("%{}: loop of {} steps, {} carries and {} sequences does not fit its {} operands, body "
                       "of {} inputs and {} results",
                       i, la.steps, la.carries, la.sequences, n.operands.size(), inputs.size(), body.results.size());
  for (size_t k = 0; k < inputs.size(); ++k) {
    if (inputs[k] != static_cast<int>(k))
      return fmt::format("%{}: the loop body's inputs must come first", i);
    Shape want = f.nodes[n.operands[k]].shape;
    if (k >= nc && k < nc + ns) {
      size_t axis = stepAxis(want);
      if (want.size() <= axis || want[axis] != la.steps)
        return fmt::format("%{}: sequence {} of shape {} is not of {} steps", i, k - nc, formatShape(want), la.steps);
      want.erase(want.begin() + static_cast<std::ptrdiff_t>(axis));
    }
    if (body.nodes[k].shape != want)
      return fmt::format("%{}: loop operand {} is {}, its body input {}", i, k, formatShape(want),
                         formatShape(body.nodes[k].shape));
  }
  for (size_t k = 0; k < nc; ++k) {
    int v = body.results[k].value;
    if (body.nodes[v].shape != body.nodes[k].shape)
      return fmt::format("%{}: the body's carry {} changes shape", i, k);
    if (v < static_cast<int>(nc) && v != static_cast<int>(k)) // the loop passes carries on one at a time
      return fmt::format("%{}: the body's carry {} is carry {} unchanged", i, k, v);
  }
  for (const Node &bn : body.nodes)
    if (bn.op == Op::Loop)
      return fmt::format("%{}: a loop body holds a loop", i);
  std::string e = verify(body);
  return e.empty() ? "" : fmt::format("%{}: in its body: {}", i, e);
}

std::string verify(const Function &f) {
  for (size_t i = 0; i < f.nodes.size(); ++i) {
    const Node &n = f.nodes[i];
    if (opArity(n.op) >= 0 && static_cast<int>(n.operands.size()) != opArity(n.op))
      return fmt::format("%{}: {} has {} operands, expected {}", i, opName(n.op), n.operands.size(), opArity(n.op));
    std::vector<Shape> shapes;
    for (int o : n.operands) {
      if (o < 0 || o >= static_cast<int>(i))
        return fmt::format("%{}: operand %{} is not defined before use", i, o);
      shapes.push_back(f.nodes[o].shape);
    }
    ShapeResult r = inferShape(n.op, shapes, n.attrs);
    if (!r.error.empty())
      return fmt::format("%{}: {}", i, r.error);
    if (r.shape != n.shape)
      return fmt::format("%{}: shape {} does not match its rule's {}", i, formatShape(n.shape), formatShape(r.shape));
    if (n.op == Op::Loop)
      if (std::string e = verifyLoop(f, static_cast<int>(i)); !e.empty())
        return e;
    if (n.op == Op::LoopResult) {
      const Node &loop = f.nodes[n.operands[0]];
      int k = static_cast<int>(n.attrs.offset);
      if (loop.op != Op::Loop || k < 0 ||
          k >= static_cast<int>(f.bodies[static_cast<size_t>(loop.attrs.loop.body)].results.size()) +
                   loop.attrs.loop.carries)
        return fmt::format("%{}: loop_result {} of no such loop result", i, k);
      if (n.shape != loopResultShape(f, n.operands[0], k))
        return fmt::format("%{}: loop_result's shape {} is not the loop's", i, formatShape(n.shape));
    }
  }
  for (const Result &r : f.results) {
    if (r.value < 0 || r.value >= static_cast<int>(f.nodes.size()))
      return fmt::format("result {} refers to no node", r.name);
    if (r.updates >= 0) {
      const Node &target = f.nodes.at(r.updates);
      if (target.op != Op::Input || (target.attrs.role != InputRole::Param && target.attrs.role != InputRole::State) ||
          target.shape != f.nodes[r.value].shape)
        return fmt::format("result {} updates %{}, which is not a parameter or state of its shape", r.name, r.updates);
    }
  }
  return "";
}

} // namespace soma::ir
