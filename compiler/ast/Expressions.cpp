// Tensor expressions of the model graph: names, numbers (folded as they are met), + - * / with
// NumPy's broadcasting over the per-sample axes, @, and calls: of built-in layers (LayerCalls.cpp),
// of user layers (UserLayers.cpp) and of the functions of tensors below.
#include "ast/GraphBuilder.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

namespace soma::graph {

namespace {

constexpr std::pair<const char *, Fn> kFunctions[] = {
    {"exp", Fn::Exp},       {"log", Fn::Log},         {"sqrt", Fn::Sqrt},       {"abs", Fn::Abs},
    {"erf", Fn::Erf},       {"maximum", Fn::Maximum}, {"minimum", Fn::Minimum}, {"sum", Fn::Sum},
    {"mean", Fn::Mean},     {"max", Fn::Max},         {"reshape", Fn::Reshape}, {"transpose", Fn::Transpose},
    {"concat", Fn::Concat}, {"dim", Fn::Dim}};

} // namespace

std::optional<Fn> function(const std::string &name) {
  for (auto [n, f] : kFunctions)
    if (name == n)
      return f;
  return std::nullopt;
}

std::vector<std::string> functionNames() {
  std::vector<std::string> names;
  for (auto [n, f] : kFunctions)
    names.emplace_back(n);
  return names;
}

// `implicit` >= 0: the value a chain applies the expression's layer to.
std::optional<Value> GraphBuilder::eval(const ast::Expr &e, Scope &scope, int implicit) {
  using K = ast::Expr::Kind;
  switch (e.kind) {
  case K::Number:
    if (implicit >= 0)
      return notALayer(e);
    return Value{false, -1, e.number, e.isInteger};
  case K::String:
  case K::List:
    diags_.report(DiagKind::ArgumentType, e.range, "value", "the model", "a tensor or a number", kindOf(e));
    return std::nullopt;
  case K::Name: {
    auto it = scope.names.find(e.text);
    if (it != scope.names.end())
      return it->second; // a named value (also as the start of a chain)
    if (implicit >= 0)   // a layer applied to the chain's value (call reports an unknown one)
      return call(e.text, e.range, e.range, {}, scope, implicit);
    if (layerNamed(e.text) || userLayers_.count(e.text) || function(e.text)) {
      diags_.report(DiagKind::MissingArgument, e.range, e.text, "input");
      return std::nullopt;
    }
    auto later = scope.later.find(e.text);
    if (later != scope.later.end()) {
      diags_.report(DiagKind::UseBeforeDefine, e.range, e.text);
      diags_.report(DiagKind::NoteDefinedHere, later->second);
      return std::nullopt;
    }
    std::vector<std::string> known;
    for (const auto &[n, v] : scope.names)
      known.push_back(n);
    for (const std::string &l : layerSpellings())
      known.push_back(l);
    diags_.report(DiagKind::UnknownName, e.range, e.text, suggest(e.text, known));
    return std::nullopt;
  }
  case K::Call:
    return call(e.text, e.calleeRange, e.range, e.args, scope, implicit);
  case K::Unary: {
    if (implicit >= 0)
      return notALayer(e);
    std::optional<Value> x = eval(e.items[0], scope, -1);
    if (!x)
      return std::nullopt;
    if (!x->isTensor)
      return Value{false, -1, -x->number, x->isInteger};
    return unary(MathOp::Neg, x->node, e.range);
  }
  case K::Binary: {
    if (e.op == '>') { // a -> f: f applied to a
      std::optional<Value> a = eval(e.items[0], scope, implicit);
      if (!a)
        return std::nullopt;
      if (!a->isTensor) {
        diags_.report(DiagKind::NotATensor, e.items[0].range, "the start of a chain", "a number");
        return std::nullopt;
      }
      return eval(e.items[1], scope, a->node);
    }
    if (implicit >= 0)
      return notALayer(e);
    std::optional<Value> a = eval(e.items[0], scope, -1);
    if (!a)
      return std::nullopt;
    std::optional<Value> b = eval(e.items[1], scope, -1);
    if (!b)
      return std::nullopt;
    return binary(e, *a, *b);
  }
  }
  return std::nullopt;
}

std::optional<Value> GraphBuilder::notALayer(const ast::Expr &e) {
  diags_.report(DiagKind::UnknownLayer, e.range, ast::describe(e), "; a chain applies layers: name(args) or name");
  return std::nullopt;
}

std::optional<Value> GraphBuilder::binary(const ast::Expr &e, Value a, Value b) {
  if (!a.isTensor && !b.isTensor) { // fold numbers
    double x = a.number, y = b.number, r = 0;
    switch (e.op) {
    case '+':
      r = x + y;
      break;
    case '-':
      r = x - y;
      break;
    case '*':
      r = x * y;
      break;
    case '/':
      if (y == 0) {
        diags_.report(DiagKind::ArgumentType, e.items[1].range, "divisor", "'/'", "a number other than 0", "0");
        return std::nullopt;
      }
      r = x / y;
      break;
    default:
      diags_.report(DiagKind::NotATensor, e.range, "an operand of '@'", "a number");
      return std::nullopt;
    }
    bool integer = a.isInteger && b.isInteger && (e.op != '/' || std::fmod(x, y) == 0);
    return Value{false, -1, r, integer};
  }
  if (e.op == '@')
    return matmul(e, a, b);
  int x = a.isTensor ? a.node : number(a.number, e.items[0].range);
  int y = b.isTensor ? b.node : number(b.number, e.items[1].range);
  MathOp op = e.op == '+' ? MathOp::Add : e.op == '-' ? MathOp::Sub : e.op == '*' ? MathOp::Mul : MathOp::Div;
  return elementwise(op, x, y, e.range, std::string("'") + e.op + "'");
}

// Broadcasting as NumPy over the per-sample axes: aligned from the right, each pair of
// extents equal or one of them 1 (or missing). A static value has no batch axis.
std::optional<Value> GraphBuilder::elementwise(MathOp op, int x, int y, SourceRange range, const std::string &what) {
  const GraphNode &a = spec_.nodes[x], &b = spec_.nodes[y];
  const Dims &da = a.dims, &db = b.dims;
  size_t rank = std::max(da.size(), db.size());
  Dims out(rank);
  for (size_t i = 0; i < rank; ++i) {
    int64_t ea = i < rank - da.size() ? 1 : da[i - (rank - da.size())];
    int64_t eb = i < rank - db.size() ? 1 : db[i - (rank - db.size())];
    if (ea != eb && ea != 1 && eb != 1) {
      diags_.report(DiagKind::OperandShapes, range, what, formatDims(da), describeNode(x), formatDims(db),
                    describeNode(y));
      return std::nullopt;
    }
    out[i] = std::max(ea, eb);
  }
  GraphNode n = derived(GraphNode::Kind::Binary, {x, y}, out, a.batched || b.batched, range);
  n.op = op;
  return tensor(std::move(n));
}

std::string GraphBuilder::describeNode(int v) {
  const GraphNode &n = spec_.nodes[v];
  const std::string &name = n.name.empty() ? n.label : n.name;
  return name.empty() ? "" : " ('" + name + "')";
}

std::optional<Value> GraphBuilder::matmul(const ast::Expr &e, Value a, Value b) {
  if (!a.isTensor || !b.isTensor) {
    diags_.report(DiagKind::NotATensor, (a.isTensor ? e.items[1] : e.items[0]).range, "an operand of '@'", "a number");
    return std::nullopt;
  }
  const GraphNode &x = spec_.nodes[a.node], &w = spec_.nodes[b.node];
  // As NumPy's matmul, without broadcasting: [.., m, k] @ [.., k, n] -> [.., m, n] with the same
  // leading axes, a vector [k] @ [k, n] -> [n]; per sample or not. A static matrix on the right
  // serves every sample (and every leading index): x @ w.
  size_t rx = x.dims.size(), rw = w.dims.size();
  bool vector = rx == 1 && rw == 2;
  bool shared = !w.batched && rw == 2 && rx >= 2;
  bool batched = rx >= 2 && rx == rw && std::equal(x.dims.begin(), x.dims.end() - 2, w.dims.begin());
  bool ok = (vector && !w.batched) || shared || batched;
  if (!ok || x.dims.back() != w.dims[rw - 2]) {
    std::string need = !ok ? "[.., m, k] @ [.., k, n] with the same leading axes, [k] @ [k, n], or any [.., k] @ a "
                             "static [k, n]"
                           : "matching inner extents";
    diags_.report(DiagKind::OperandShapes, e.range, "'@' (" + need + ")",
                  formatDims(x.dims) + (x.batched ? "" : " static"), describeNode(a.node),
                  formatDims(w.dims) + (w.batched ? " per sample" : " static"), describeNode(b.node));
    return std::nullopt;
  }
  Dims dims(x.dims.begin(), x.dims.end() - 1);
  dims.push_back(w.dims.back());
  return tensor(derived(GraphNode::Kind::MatMul, {a.node, b.node}, dims, x.batched || w.batched, e.range));
}

int GraphBuilder::number(double v, SourceRange range) {
  GraphNode n;
  n.kind = GraphNode::Kind::Number;
  n.number = v;
  n.batched = false;
  n.range = range;
  return add(std::move(n));
}

std::optional<Value> GraphBuilder::unary(MathOp op, int x, SourceRange range) {
  GraphNode n = derived(GraphNode::Kind::Unary, {x}, spec_.nodes[x].dims, spec_.nodes[x].batched, range);
  n.op = op;
  return tensor(std::move(n));
}

// Arguments with every numeric sub-expression folded to a literal (so that formals of a user
// layer can be passed as hyper-parameters); anything else is kept for the signature check.
// nullopt after an error in a numeric sub-expression.
std::optional<std::vector<ast::Arg>> GraphBuilder::folded(const std::vector<ast::Arg> &args, Scope &scope) {
  std::vector<ast::Arg> out = args;
  for (ast::Arg &a : out)
    if (!fold(a.value, scope))
      return std::nullopt;
  return out;
}

bool GraphBuilder::fold(ast::Expr &e, Scope &scope) {
  using K = ast::Expr::Kind;
  if (e.kind == K::List) {
    for (ast::Expr &i : e.items)
      if (!fold(i, scope))
        return false;
    return true;
  }
  bool numeric = e.kind == K::Unary || e.kind == K::Binary || (e.kind == K::Call && e.text == "dim");
  if (e.kind == K::Name) {
    auto it = scope.names.find(e.text);
    numeric = it != scope.names.end() && !it->second.isTensor;
  }
  if (!numeric)
    return true;
  std::optional<Value> v = eval(e, scope, -1);
  if (!v)
    return false;     // reported
  if (!v->isTensor) { // a tensor stays, for the signature check to name
    SourceRange r = e.range;
    e = ast::Expr{};
    e.kind = K::Number;
    e.number = v->number;
    e.isInteger = v->isInteger;
    e.range = r;
  }
  return true;
}

std::optional<Value> GraphBuilder::call(const std::string &callee, SourceRange calleeRange, SourceRange range,
                                        std::vector<ast::Arg> args, Scope &scope, int implicit) {
  if (auto kind = layerNamed(callee))
    return layerCall(*kind, callee, range, std::move(args), scope, implicit);
  if (auto fn = function(callee))
    return functionCall(*fn, callee, range, std::move(args), scope, implicit);
  auto user = userLayers_.find(callee);
  if (user != userLayers_.end())
    return instantiate(*user->second, range, args, scope, implicit);
  std::vector<std::string> names = layerSpellings(), functions = functionNames();
  names.insert(names.end(), functions.begin(), functions.end());
  for (const auto &[n, l] : userLayers_)
    names.push_back(n);
  diags_.report(DiagKind::UnknownLayer, calleeRange, callee, suggest(callee, names));
  return std::nullopt;
}

// The tensor a layer or function applies to: the chain's value, or its first positional argument.
// The first argument, a tensor; with `number`, a number goes there instead (and -1 is returned).
std::optional<int> GraphBuilder::inputOf(const std::string &callee, SourceRange range, std::vector<ast::Arg> &args,
                                         Scope &scope, int implicit, double *number) {
  if (implicit >= 0)
    return implicit;
  if (args.empty() || !args[0].name.empty()) {
    diags_.report(DiagKind::MissingArgument, range, callee, "input");
    return std::nullopt;
  }
  ast::Expr first = args[0].value;
  args.erase(args.begin());
  std::optional<Value> v = eval(first, scope, -1);
  if (!v)
    return std::nullopt;
  if (!v->isTensor && number) {
    *number = v->number;
    return -1;
  }
  if (!v->isTensor) {
    diags_.report(DiagKind::NotATensor, first.range, "the input of '" + callee + "'", "a number");
    return std::nullopt;
  }
  return v->node;
}

// exp, log, sqrt, abs and erf of a number: a number (sqrt(d) in a layer with argument d).
std::optional<Value> GraphBuilder::foldNumber(Fn fn, const std::string &callee, SourceRange range, double x) {
  auto formatNumber = [](double v) {
    char text[32];
    std::snprintf(text, sizeof text, "%g", v);
    return std::string(text);
  };
  if ((fn == Fn::Log && !(x > 0)) || (fn == Fn::Sqrt && x < 0)) {
    diags_.report(DiagKind::ArgumentType, range, "input", callee, fn == Fn::Log ? "a positive number" : "at least 0",
                  formatNumber(x));
    return std::nullopt;
  }
  double r = fn == Fn::Exp    ? std::exp(x)
             : fn == Fn::Log  ? std::log(x)
             : fn == Fn::Sqrt ? std::sqrt(x)
             : fn == Fn::Abs  ? std::fabs(x)
                              : std::erf(x);
  if (!std::isfinite(r) || std::fabs(r) > 3.4028234663852886e38) {
    diags_.report(DiagKind::NumberRange, range, callee + "(" + formatNumber(x) + ")", "beyond float's range");
    return std::nullopt;
  }
  return Value{false, -1, r, fn == Fn::Abs && x == std::floor(x)};
}

// exp(x), maximum(a, b), sum(x, axis), reshape(x, [dims]), transpose(x, [perm]), concat(a, b, axis),
// dim(x, axis): the extent of an axis of the sample (the last by default), a number
std::optional<Value> GraphBuilder::functionCall(Fn fn, const std::string &callee, SourceRange range,
                                                std::vector<ast::Arg> args, Scope &scope, int implicit) {
  bool foldable = fn == Fn::Exp || fn == Fn::Log || fn == Fn::Sqrt || fn == Fn::Abs || fn == Fn::Erf;
  double numberIn = 0;
  std::optional<int> x = inputOf(callee, range, args, scope, implicit, foldable ? &numberIn : nullptr);
  if (!x)
    return std::nullopt;
  if (*x < 0) {
    if (!args_.bind({callee.c_str(), {}}, args, range))
      return std::nullopt;
    return foldNumber(fn, callee, range, numberIn);
  }
  // The other tensor operands (positional) and the constant arguments (named or a list).
  std::vector<int> tensors = {*x};
  std::vector<ast::Arg> rest;
  bool numbersAreOperands = fn == Fn::Maximum || fn == Fn::Minimum; // maximum(x, 0)
  for (const ast::Arg &a : args) {
    if (a.name.empty() && a.value.kind != ast::Expr::Kind::List &&
        (numbersAreOperands || a.value.kind != ast::Expr::Kind::Number)) {
      std::optional<Value> v = eval(a.value, scope, -1);
      if (!v)
        return std::nullopt;
      if (v->isTensor || numbersAreOperands) {
        tensors.push_back(v->isTensor ? v->node : number(v->number, a.value.range));
        continue;
      }
    }
    rest.push_back(a);
  }
  std::optional<std::vector<ast::Arg>> foldedRest = folded(rest, scope);
  if (!foldedRest)
    return std::nullopt;
  rest = std::move(*foldedRest);
  size_t wantTensors = fn == Fn::Maximum || fn == Fn::Minimum ? 2 : fn == Fn::Concat ? tensors.size() : 1;
  if (tensors.size() != wantTensors || (fn == Fn::Concat && tensors.size() < 2)) {
    diags_.report(DiagKind::TooManyArguments, range, callee, wantTensors, tensors.size());
    return std::nullopt;
  }
  const GraphNode &in = spec_.nodes[*x];
  switch (fn) {
  case Fn::Exp:
  case Fn::Log:
  case Fn::Sqrt:
  case Fn::Abs:
  case Fn::Erf: {
    if (!args_.bind({callee.c_str(), {}}, rest, range))
      return std::nullopt;
    MathOp op = fn == Fn::Exp    ? MathOp::Exp
                : fn == Fn::Log  ? MathOp::Log
                : fn == Fn::Sqrt ? MathOp::Sqrt
                : fn == Fn::Abs  ? MathOp::Abs
                                 : MathOp::Erf;
    return unary(op, *x, range);
  }
  case Fn::Maximum:
  case Fn::Minimum:
    if (!args_.bind({callee.c_str(), {}}, rest, range))
      return std::nullopt;
    return elementwise(fn == Fn::Maximum ? MathOp::Maximum : MathOp::Minimum, tensors[0], tensors[1], range,
                       "'" + callee + "'");
  case Fn::Sum:
  case Fn::Mean:
  case Fn::Max: {
    auto bound = args_.bind({callee.c_str(), {{"axis", ArgType::Int, false}}}, rest, range);
    if (!bound)
      return std::nullopt;
    GraphNode n = derived(GraphNode::Kind::Reduce, {*x}, {}, in.batched, range);
    n.reduce = fn == Fn::Sum ? ReduceKind::Sum : fn == Fn::Mean ? ReduceKind::Mean : ReduceKind::Max;
    if ((*bound)[0]) {
      std::optional<int64_t> axis = axisOf((*bound)[0], in.dims.size(), callee);
      if (!axis)
        return std::nullopt;
      n.axes = 1u << *axis;
    } else {
      n.axes = (1u << in.dims.size()) - 1; // every axis of the sample
    }
    for (size_t i = 0; i < in.dims.size(); ++i)
      if (!(n.axes >> i & 1))
        n.dims.push_back(in.dims[i]);
    return tensor(std::move(n));
  }
  case Fn::Reshape: {
    auto bound = args_.bind({callee.c_str(), {{"shape", ArgType::NumberList, true}}}, rest, range);
    if (!bound)
      return std::nullopt;
    Dims dims;
    int64_t count = 1, want = 1;
    for (const ast::Expr &d : (*bound)[0]->items) {
      dims.push_back(static_cast<int64_t>(d.number));
      count *= dims.back();
    }
    for (int64_t d : in.dims)
      want *= d;
    if (count != want) {
      diags_.report(DiagKind::ShapeMismatch, range, "reshape", "a shape of " + std::to_string(count) + " elements",
                    formatDims(in.dims));
      return std::nullopt;
    }
    return tensor(derived(GraphNode::Kind::Reshape, {*x}, dims, in.batched, range));
  }
  case Fn::Transpose: {
    auto bound = args_.bind({callee.c_str(), {{"axes", ArgType::NumberList, false}}}, rest, range);
    if (!bound)
      return std::nullopt;
    Dims perm;
    if ((*bound)[0]) {
      for (const ast::Expr &d : (*bound)[0]->items)
        perm.push_back(static_cast<int64_t>(d.number));
    } else {
      for (size_t i = in.dims.size(); i-- > 0;) // reversed, as NumPy
        perm.push_back(static_cast<int64_t>(i));
    }
    Dims sorted = perm;
    std::sort(sorted.begin(), sorted.end());
    bool valid = sorted.size() == in.dims.size();
    for (size_t i = 0; valid && i < sorted.size(); ++i)
      valid = sorted[i] == static_cast<int64_t>(i);
    if (!valid) {
      diags_.report(DiagKind::ShapeMismatch, range, "transpose",
                    "a permutation of its " + std::to_string(in.dims.size()) + " axes", formatDims(in.dims));
      return std::nullopt;
    }
    Dims dims;
    for (int64_t p : perm)
      dims.push_back(in.dims[static_cast<size_t>(p)]);
    GraphNode n = derived(GraphNode::Kind::Transpose, {*x}, dims, in.batched, range);
    n.perm = perm;
    return tensor(std::move(n));
  }
  case Fn::Dim: {
    auto bound = args_.bind({callee.c_str(), {{"axis", ArgType::Int, false}}}, rest, range);
    if (!bound)
      return std::nullopt;
    if (in.dims.empty()) {
      diags_.report(DiagKind::ShapeMismatch, range, "dim", "a value with axes", formatDims(in.dims));
      return std::nullopt;
    }
    std::optional<int64_t> axis = axisOf((*bound)[0], in.dims.size(), callee);
    if (!axis)
      return std::nullopt;
    return Value{false, -1, static_cast<double>(in.dims[static_cast<size_t>(*axis)]), true};
  }
  case Fn::Concat: {
    auto bound = args_.bind({callee.c_str(), {{"axis", ArgType::Int, false}}}, rest, range);
    if (!bound)
      return std::nullopt;
    std::optional<int64_t> found = axisOf((*bound)[0], in.dims.size(), callee);
    if (!found)
      return std::nullopt;
    int64_t axis = *found;
    GraphNode n = derived(GraphNode::Kind::Concat, tensors, in.dims, in.batched, range);
    n.axis = axis;
    n.dims[static_cast<size_t>(axis)] = 0;
    for (int t : tensors) {
      const GraphNode &o = spec_.nodes[t];
      Dims a = o.dims, b = in.dims;
      bool same = o.batched == in.batched && a.size() == b.size();
      if (same) {
        a[static_cast<size_t>(axis)] = b[static_cast<size_t>(axis)] = 0;
        same = a == b;
      }
      if (!same) {
        diags_.report(DiagKind::OperandShapes, range, "'concat' (equal shapes but along the axis)", formatDims(in.dims),
                      describeNode(*x), formatDims(o.dims), describeNode(t));
        return std::nullopt;
      }
      n.dims[static_cast<size_t>(axis)] += o.dims[static_cast<size_t>(axis)];
    }
    return tensor(std::move(n));
  }
  }
  return std::nullopt;
}

// An axis argument (negative counts from the end), the last axis when absent.
std::optional<int64_t> GraphBuilder::axisOf(const ast::Expr *arg, size_t rank, const std::string &callee) {
  int64_t r = static_cast<int64_t>(rank);
  if (!arg)
    return r - 1;
  const ast::Expr &e = *arg;
  int64_t a = static_cast<int64_t>(e.number);
  if (a < -r || a >= r) {
    diags_.report(DiagKind::ArgumentType, e.range, "axis", callee,
                  "an axis of the sample, from " + std::to_string(-r) + " to " + std::to_string(r - 1), kindOf(e));
    return std::nullopt;
  }
  return a < 0 ? a + r : a;
}

} // namespace soma::graph
