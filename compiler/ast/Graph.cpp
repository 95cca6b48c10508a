// The model block and user-defined layers become a graph of values (ModelSpec::nodes), each with
// its per-sample shape, checked as it is built:
//   - a statement `name = expr` evaluates expr and names it; a statement without a name is a
//     chain of layers applied to the previous statement's value (the input for the first);
//   - in a chain `a -> f(args)`, f is applied to a: f(a, args); a bare layer name is f(a);
//   - a built-in layer called in an expression takes its input first: dense(h, 64);
//   - + - * / broadcast as NumPy does over the per-sample axes (a parameter has no batch axis);
//     @ is a matrix product with a parameter;
//   - a user-defined layer is instantiated at each use: its formals are bound, its parameters
//     created under the instance's name (highway_1.gate), its statements evaluated, and its
//     return value is the call's value.
// Numbers are folded as they are met, so hyper-parameters can be formals of a user layer.
#include "ast/Args.h"
#include "ast/Sema.h"
#include "ir/IR.h"

#include <algorithm>
#include <cmath>
#include <fmt/format.h>
#include <functional>
#include <map>
#include <numeric>
#include <set>

namespace soma {

namespace {

struct LayerInfo {
  const char *spelling;
  bool isActivation;
};
constexpr LayerInfo kLayers[] = {
#define LAYER(Kind, Spelling, IsActivation) {Spelling, IsActivation},
#include "ast/Layers.def"
};

std::optional<LayerKind> builtinLayer(const std::string &name) {
  for (size_t i = 0; i < std::size(kLayers); ++i)
    if (name == kLayers[i].spelling)
      return static_cast<LayerKind>(i);
  return std::nullopt;
}

// Functions of tensors usable in expressions, besides the layers.
enum class Fn { Exp, Log, Sqrt, Abs, Erf, Maximum, Minimum, Sum, Mean, Max, Reshape, Transpose, Concat, Dim };
constexpr std::pair<const char *, Fn> kFunctions[] = {
    {"exp", Fn::Exp},       {"log", Fn::Log},         {"sqrt", Fn::Sqrt},       {"abs", Fn::Abs},
    {"erf", Fn::Erf},       {"maximum", Fn::Maximum}, {"minimum", Fn::Minimum}, {"sum", Fn::Sum},
    {"mean", Fn::Mean},     {"max", Fn::Max},         {"reshape", Fn::Reshape}, {"transpose", Fn::Transpose},
    {"concat", Fn::Concat}, {"dim", Fn::Dim}};

std::optional<Fn> function(const std::string &name) {
  for (auto [n, f] : kFunctions)
    if (name == n)
      return f;
  return std::nullopt;
}

// Initializers: a name (zeros, he_normal, ...) or a call (uniform(a, b), normal(mean, std), constant(v)).
constexpr std::pair<const char *, InitSpec::Kind> kInits[] = {{"default", InitSpec::Kind::FanInUniform},
                                                              {"zeros", InitSpec::Kind::Zeros},
                                                              {"ones", InitSpec::Kind::Ones},
                                                              {"constant", InitSpec::Kind::Constant},
                                                              {"uniform", InitSpec::Kind::Uniform},
                                                              {"normal", InitSpec::Kind::Normal},
                                                              {"glorot_uniform", InitSpec::Kind::GlorotUniform},
                                                              {"glorot_normal", InitSpec::Kind::GlorotNormal},
                                                              {"he_uniform", InitSpec::Kind::HeUniform},
                                                              {"he_normal", InitSpec::Kind::HeNormal}};

struct Value {
  bool isTensor = false;
  int node = -1;     // tensor
  double number = 0; // number
  bool isInteger = false;
};

struct Scope {
  std::map<std::string, Value> names;
  std::map<std::string, SourceRange> later; // names the block defines further down
  std::string prefix;                       // "" in the model; "highway_1." inside an instance
  int prev = -1;                            // the value a chain statement starts from
};

std::string lower(std::string s) {
  for (char &c : s)
    c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

class GraphBuilder {
public:
  GraphBuilder(const ast::File &file, DiagnosticEngine &diags) : file_(file), diags_(diags), args_(diags) {
    for (const ast::LayerDecl &l : file.layers)
      userLayers_[l.name] = &l;
  }

  std::optional<ModelSpec> build(const ast::ModelDecl &m) {
    spec_.name = m.name;
    spec_.range = m.range;
    if (!checkLayerDecls())
      return std::nullopt;
    if (m.inputs.empty()) {
      diags_.report(DiagKind::MissingInput, m.nameRange, m.name);
      return std::nullopt;
    }
    Scope scope;
    bool ok = true;
    int64_t total = 0;
    for (size_t k = 0; k < m.inputs.size(); ++k) {
      const ast::InputDecl &in = m.inputs[k];
      for (size_t j = 0; j < k; ++j)
        if (m.inputs[j].name == in.name) {
          diags_.report(DiagKind::DuplicateInput, in.nameRange, m.name, in.name);
          return std::nullopt;
        }
      if (in.dtype != "f32") {
        diags_.report(DiagKind::UnknownDType, in.dtypeRange, in.dtype);
        ok = false;
      }
      for (size_t i = 0; i < in.dims.size(); ++i)
        if (in.dims[i] <= 0) {
          diags_.report(DiagKind::BadDimension, in.dimRanges[i], in.dims[i]);
          ok = false;
        }
      if (!ok || !withinLimit("input '" + in.name + "'", in.dims, in.range))
        return std::nullopt;
      int64_t size = 1; // at most 2^28, as checked
      for (int64_t d : in.dims)
        size *= d;
      total += size;
    }
    const ast::InputDecl &first = m.inputs[0];
    bool several = m.inputs.size() > 1;
    spec_.inputName = first.name;
    spec_.inputDims = several ? Dims{total} : first.dims;
    for (size_t k = 1; k < m.inputs.size(); ++k)
      spec_.inputName += ", " + m.inputs[k].name;
    if (!withinLimit("the inputs", spec_.inputDims, m.range))
      return std::nullopt;
    if (m.body.empty()) {
      diags_.report(DiagKind::EmptyModel, m.nameRange, m.name);
      return std::nullopt;
    }
    GraphNode input;
    input.kind = GraphNode::Kind::Input;
    input.dims = spec_.inputDims;
    input.label = several ? "" : first.name;
    input.range = first.range;
    int x = add(std::move(input));
    scope.prev = x;
    int64_t offset = 0;
    for (const ast::InputDecl &in : m.inputs) {
      int node = x;
      if (several) { // a window of the features
        GraphNode part;
        part.kind = GraphNode::Kind::InputPart;
        part.args = {x};
        part.axis = offset;
        part.dims = in.dims;
        part.label = in.name;
        part.range = in.range;
        node = add(std::move(part));
        int64_t size = 1;
        for (int64_t d : in.dims)
          size *= d;
        offset += size;
      }
      scope.names[in.name] = {true, node, 0, false};
      if (in.name == first.name)
        scope.prev = node; // a chain starts from the first input
    }
    std::optional<Value> last = block(m.body, scope);
    if (!last)
      return std::nullopt;
    const ast::Stmt &final = m.body.back();
    if (!last->isTensor || !spec_.nodes[last->node].batched) {
      diags_.report(DiagKind::NotATensor, final.range, "the model's output (its last statement)",
                    last->isTensor ? "a parameter, the same for every sample" : "a number");
      return std::nullopt;
    }
    spec_.output = last->node;
    for (const auto &[name, value] : scope.names)
      if (value.isTensor)
        spec_.values[name] = value.node;
    return std::move(spec_);
  }

private:
  // --- Statements -----------------------------------------------------------------------

  // Evaluates statements in order; returns the last one's value (or the return value).
  std::optional<Value> block(const std::vector<ast::Stmt> &body, Scope &scope) {
    for (const ast::Stmt &s : body)
      if (s.kind != ast::Stmt::Kind::Return && !s.target.empty() && !scope.later.count(s.target))
        scope.later[s.target] = s.targetRange;
    std::optional<Value> last;
    for (const ast::Stmt &s : body) {
      switch (s.kind) {
      case ast::Stmt::Kind::Param:
        last = param(s, scope);
        break;
      case ast::Stmt::Kind::Return:
        return eval(s.value, scope, -1);
      case ast::Stmt::Kind::Value:
        if (!s.target.empty() && reserved(s.target)) {
          diags_.report(DiagKind::NameTaken, s.targetRange, s.target);
          return std::nullopt;
        }
        last = eval(s.value, scope, s.target.empty() && !explicitInput(s.value, scope) ? scope.prev : -1);
        break;
      }
      if (!last)
        return std::nullopt;
      if (!s.target.empty()) {
        scope.names[s.target] = *last;
        if (last->isTensor)
          spec_.nodes[last->node].name = s.target;
        if (last->isTensor && spec_.nodes[last->node].label.empty())
          spec_.nodes[last->node].label = scope.prefix + s.target;
      }
      if (last->isTensor && s.kind != ast::Stmt::Kind::Param)
        scope.prev = last->node;
    }
    return last;
  }

  // Whether a chain statement names its own input: its first call's first argument is a named
  // tensor, as in `dense(hidden, 3)`; then it does not start from the previous statement.
  static bool explicitInput(const ast::Expr &e, const Scope &scope) {
    const ast::Expr *first = &e;
    while (first->kind == ast::Expr::Kind::Binary && first->op == '>')
      first = &first->items[0];
    if (first->kind != ast::Expr::Kind::Call || first->args.empty() || !first->args[0].name.empty())
      return false;
    const ast::Expr &arg = first->args[0].value;
    auto it = arg.kind == ast::Expr::Kind::Name ? scope.names.find(arg.text) : scope.names.end();
    return it != scope.names.end() && it->second.isTensor;
  }

  bool reserved(const std::string &name) { return builtinLayer(name) || function(name) || userLayers_.count(name); }

  // param name: [dims] = init
  std::optional<Value> param(const ast::Stmt &s, Scope &scope) {
    ParamSpec p;
    p.name = scope.prefix + s.target;
    for (const ast::Expr &d : s.dims) {
      std::optional<Value> v = eval(d, scope, -1);
      if (!v)
        return std::nullopt;
      if (v->isTensor || !v->isInteger || v->number <= 0) {
        diags_.report(DiagKind::ArgumentType, d.range, "dimension", "param " + s.target, "a positive integer",
                      v->isTensor ? "a tensor" : "the number " + fmtNumber(v->number));
        return std::nullopt;
      }
      p.dims.push_back(static_cast<int64_t>(v->number));
    }
    if (!withinLimit("parameter '" + s.target + "'", p.dims, s.range))
      return std::nullopt;
    std::optional<InitSpec> init = initializer(s.value, scope, p.dims.size() >= 2);
    if (!init)
      return std::nullopt;
    p.init = *init;
    fans(p);
    int index = static_cast<int>(spec_.params.size());
    spec_.params.push_back(p);
    GraphNode n;
    n.kind = GraphNode::Kind::Param;
    n.param = index;
    n.dims = p.dims;
    n.batched = false;
    n.label = p.name;
    n.range = s.range;
    return Value{true, add(std::move(n)), 0, false};
  }

  // Fan-in and fan-out by PyTorch's rule, for a weight used as x @ w ([in, out]) or as a
  // convolution filter ([out, in, k, k]).
  static void fans(ParamSpec &p) {
    const Dims &d = p.dims;
    if (d.size() == 2) {
      p.fanIn = d[0];
      p.fanOut = d[1];
    } else if (d.size() > 2) {
      int64_t field = 1;
      for (size_t i = 2; i < d.size(); ++i)
        field *= d[i];
      p.fanIn = d[1] * field;
      p.fanOut = d[0] * field;
    } else {
      p.fanIn = p.fanOut = d.empty() ? 1 : d[0];
    }
  }

  std::optional<InitSpec> initializer(const ast::Expr &e, Scope &scope, bool isMatrix) {
    std::vector<std::string> names;
    for (auto [n, k] : kInits)
      names.push_back(n);
    std::string name = e.kind == ast::Expr::Kind::Call || e.kind == ast::Expr::Kind::Name ? e.text : "";
    const std::pair<const char *, InitSpec::Kind> *found = nullptr;
    for (const auto &i : kInits)
      if (name == i.first)
        found = &i;
    if (!found) {
      diags_.report(DiagKind::UnknownFunction, e.kind == ast::Expr::Kind::Call ? e.calleeRange : e.range, "initializer",
                    calleeText(e), name.empty() ? "" : suggest(name, names));
      return std::nullopt;
    }
    InitSpec init;
    init.kind = found->second;
    if (name == "default" && !isMatrix)
      init.kind = InitSpec::Kind::Zeros; // a vector of a user layer: a bias
    Signature sig{found->first, {}};
    if (init.kind == InitSpec::Kind::Constant)
      sig.params = {{"value", ArgType::Number, true}};
    if (init.kind == InitSpec::Kind::Uniform)
      sig.params = {{"low", ArgType::Number, true}, {"high", ArgType::Number, true}};
    if (init.kind == InitSpec::Kind::Normal)
      sig.params = {{"mean", ArgType::Number, false}, {"std", ArgType::NonNegativeNumber, false}};
    if (e.kind == ast::Expr::Kind::Call || !sig.params.empty()) {
      auto args = folded(e.kind == ast::Expr::Kind::Call ? e.args : std::vector<ast::Arg>{}, scope);
      if (!args)
        return std::nullopt;
      auto bound = args_.bind(sig, *args, e.range);
      if (!bound)
        return std::nullopt;
      if (init.kind == InitSpec::Kind::Normal)
        init.b = 1;
      for (size_t i = 0; i < bound->size(); ++i)
        if ((*bound)[i])
          (i == 0 ? init.a : init.b) = (*bound)[i]->number;
      if (init.kind == InitSpec::Kind::Uniform && !(init.a < init.b)) {
        diags_.report(DiagKind::ArgumentType, e.range, "high", "uniform", "larger than low", kindOf(*(*bound)[1]));
        return std::nullopt;
      }
    }
    return init;
  }

  // --- Expressions ----------------------------------------------------------------------

  // `implicit` >= 0: the value a chain applies the expression's layer to.
  std::optional<Value> eval(const ast::Expr &e, Scope &scope, int implicit) {
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
      if (builtinLayer(e.text) || userLayers_.count(e.text) || function(e.text)) {
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
      for (const LayerInfo &l : kLayers)
        known.push_back(l.spelling);
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

  std::optional<Value> notALayer(const ast::Expr &e) {
    diags_.report(DiagKind::UnknownLayer, e.range, ast::describe(e), "; a chain applies layers: name(args) or name");
    return std::nullopt;
  }

  std::optional<Value> binary(const ast::Expr &e, Value a, Value b) {
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
  std::optional<Value> elementwise(MathOp op, int x, int y, SourceRange range, const std::string &what) {
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

  std::string describeNode(int v) {
    const GraphNode &n = spec_.nodes[v];
    const std::string &name = n.name.empty() ? n.label : n.name;
    return name.empty() ? "" : " ('" + name + "')";
  }

  std::optional<Value> matmul(const ast::Expr &e, Value a, Value b) {
    if (!a.isTensor || !b.isTensor) {
      diags_.report(DiagKind::NotATensor, (a.isTensor ? e.items[1] : e.items[0]).range, "an operand of '@'",
                    "a number");
      return std::nullopt;
    }
    const GraphNode &x = spec_.nodes[a.node], &w = spec_.nodes[b.node];
    // A sample's vector times a matrix of parameters, or a product of two static matrices.
    bool ok =
        !w.batched && w.dims.size() == 2 && ((x.batched && x.dims.size() == 1) || (!x.batched && x.dims.size() == 2));
    if (!ok || x.dims.back() != w.dims[0]) {
      std::string need = !ok ? "a vector of each sample (or a matrix of parameters) @ a matrix of parameters"
                             : "matching inner extents";
      diags_.report(DiagKind::OperandShapes, e.range, "'@' (" + need + ")",
                    formatDims(x.dims) + (x.batched ? "" : " static"), describeNode(a.node),
                    formatDims(w.dims) + (w.batched ? " per sample" : ""), describeNode(b.node));
      return std::nullopt;
    }
    Dims dims = x.batched ? Dims{w.dims[1]} : Dims{x.dims[0], w.dims[1]};
    return tensor(derived(GraphNode::Kind::MatMul, {a.node, b.node}, dims, x.batched, e.range));
  }

  int number(double v, SourceRange range) {
    GraphNode n;
    n.kind = GraphNode::Kind::Number;
    n.number = v;
    n.batched = false;
    n.range = range;
    return add(std::move(n));
  }

  std::optional<Value> unary(MathOp op, int x, SourceRange range) {
    GraphNode n = derived(GraphNode::Kind::Unary, {x}, spec_.nodes[x].dims, spec_.nodes[x].batched, range);
    n.op = op;
    return tensor(std::move(n));
  }

  // Arguments with every numeric sub-expression folded to a literal (so that formals of a user
  // layer can be passed as hyper-parameters); anything else is kept for the signature check.
  // nullopt after an error in a numeric sub-expression.
  std::optional<std::vector<ast::Arg>> folded(const std::vector<ast::Arg> &args, Scope &scope) {
    std::vector<ast::Arg> out = args;
    for (ast::Arg &a : out)
      if (!fold(a.value, scope))
        return std::nullopt;
    return out;
  }
  bool fold(ast::Expr &e, Scope &scope) {
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

  // --- Calls ----------------------------------------------------------------------------

  std::optional<Value> call(const std::string &callee, SourceRange calleeRange, SourceRange range,
                            std::vector<ast::Arg> args, Scope &scope, int implicit) {
    if (auto kind = builtinLayer(callee))
      return layerCall(*kind, callee, range, std::move(args), scope, implicit);
    if (auto fn = function(callee))
      return functionCall(*fn, callee, range, std::move(args), scope, implicit);
    auto user = userLayers_.find(callee);
    if (user != userLayers_.end())
      return instantiate(*user->second, range, args, scope, implicit);
    std::vector<std::string> names;
    for (const LayerInfo &l : kLayers)
      names.push_back(l.spelling);
    for (auto [n, f] : kFunctions)
      names.push_back(n);
    for (const auto &[n, l] : userLayers_)
      names.push_back(n);
    diags_.report(DiagKind::UnknownLayer, calleeRange, callee, suggest(callee, names));
    return std::nullopt;
  }

  // The tensor a layer or function applies to: the chain's value, or its first positional argument.
  std::optional<int> inputOf(const std::string &callee, SourceRange range, std::vector<ast::Arg> &args, Scope &scope,
                             int implicit) {
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
    if (!v->isTensor) {
      diags_.report(DiagKind::NotATensor, first.range, "the input of '" + callee + "'", "a number");
      return std::nullopt;
    }
    return v->node;
  }

  std::optional<Value> layerCall(LayerKind kind, const std::string &callee, SourceRange range,
                                 std::vector<ast::Arg> args, Scope &scope, int implicit) {
    std::optional<int> x = inputOf(callee, range, args, scope, implicit);
    if (!x)
      return std::nullopt;
    const GraphNode &in = spec_.nodes[*x];
    if (!in.batched) {
      diags_.report(DiagKind::NotATensor, range, "the input of '" + callee + "'",
                    "a parameter, the same for every sample");
      return std::nullopt;
    }
    std::optional<std::vector<ast::Arg>> bound = folded(args, scope);
    if (!bound)
      return std::nullopt;
    std::optional<Layer> l = layer(kind, range, *bound, in.dims, scope);
    if (!l)
      return std::nullopt;
    std::string base = scope.prefix + layerSpelling(kind);
    l->name = base + "_" + std::to_string(++counts_[base]);
    if (!withinLimit("the output of '" + callee + "'", l->out, range))
      return std::nullopt;
    GraphNode n = derived(GraphNode::Kind::Layer, {*x}, l->out, true, range);
    n.label = l->name;
    if (kind == LayerKind::Dense || kind == LayerKind::Conv2D) {
      Dims w = kind == LayerKind::Dense ? Dims{l->in[0], l->units}
                                        : Dims{l->units, l->in[0] / l->groups, l->window[0], l->window[1]};
      if (!withinLimit("the weight tensor of '" + callee + "'", w, range))
        return std::nullopt;
      ParamSpec weight{l->name + ".w", w, weightInit_, 1, 1, lrMult_};
      fans(weight);
      ParamSpec bias{l->name + ".b", {l->units}, biasInit_, weight.fanIn, weight.fanIn, lrMult_};
      l->weight = static_cast<int>(spec_.params.size());
      spec_.params.push_back(weight);
      l->bias = static_cast<int>(spec_.params.size());
      spec_.params.push_back(bias);
      n.paramCount = weight.dims.size() == 2 ? w[0] * w[1] + l->units : w[0] * w[1] * w[2] * w[3] + l->units;
    }
    if (kind == LayerKind::Embedding) {
      Dims w{l->kernel, l->units};
      if (!withinLimit("the weight tensor of '" + callee + "'", w, range))
        return std::nullopt;
      ParamSpec table{l->name + ".w", w, weightInit_, 1, 1, lrMult_};
      fans(table);
      l->weight = static_cast<int>(spec_.params.size());
      spec_.params.push_back(table);
      n.paramCount = w[0] * w[1];
    }
    if (kind == LayerKind::BatchNorm || kind == LayerKind::LayerNorm) { // a scale (ones) and a shift (zeros)
      Dims shape = kind == LayerKind::BatchNorm ? Dims{l->in[0]} : l->in;
      int64_t count = 1;
      for (int64_t d : shape)
        count *= d;
      InitSpec ones, zeros;
      ones.kind = InitSpec::Kind::Ones;
      zeros.kind = InitSpec::Kind::Zeros;
      l->weight = static_cast<int>(spec_.params.size());
      spec_.params.push_back({l->name + ".scale", shape, ones, count, count, 1});
      l->bias = static_cast<int>(spec_.params.size());
      spec_.params.push_back({l->name + ".shift", shape, zeros, count, count, 1});
      n.paramCount = 2 * count;
      if (kind == LayerKind::BatchNorm) {
        l->runningMean = static_cast<int>(spec_.buffers.size());
        spec_.buffers.push_back({l->name + ".running_mean", shape, zeros, count, count, 1});
        l->runningVar = static_cast<int>(spec_.buffers.size());
        spec_.buffers.push_back({l->name + ".running_var", shape, ones, count, count, 1});
      }
    }
    if (kind == LayerKind::Dropout)
      l->salt = static_cast<uint32_t>(spec_.nodes.size()) + 1;
    n.layer = *l;
    return tensor(std::move(n));
  }

  // conv2d's kernel and padding per axis (PyTorch's "same": (span - 1) / 2 before, the rest after,
  // the span of a kernel k at dilation d being (k - 1) d + 1), and output shape; false after
  // reporting the rule that fails.
  bool convolution(Layer &l, SourceRange range, const std::function<const ast::Expr *(const char *)> &arg) {
    const char *axisName[2] = {"rows", "columns"};
    l.window = intPair(arg("kernel"), 1);
    l.dilation = intPair(arg("dilation"), 1);
    l.windowStride = intPair(arg("stride"), 1);
    l.stride = std::gcd(l.windowStride[0], l.windowStride[1]); // the IR's, both axes (see Lower.cpp)
    const ast::Expr *padding = arg("padding");
    bool same = padding && padding->kind == ast::Expr::Kind::String && padding->text == "same";
    if (same && l.windowStride != std::array<int64_t, 2>{1, 1}) {
      diags_.report(DiagKind::UnsupportedParameters, range, "conv2d",
                    fmt::format("padding \"same\" with stride {}",
                                l.windowStride[0] == l.windowStride[1]
                                    ? std::to_string(l.windowStride[0])
                                    : fmt::format("[{}, {}]", l.windowStride[0], l.windowStride[1])),
                    "\"same\" keeps the input's size, which only stride 1 does (as in PyTorch)");
      return false;
    }
    bool named = padding && padding->kind == ast::Expr::Kind::String;
    l.windowPadding = l.windowPadEnd = named ? std::array<int64_t, 2>{0, 0} : intPair(padding, 0);
    for (size_t a = 0; a < 2; ++a) {
      int64_t span = ir::convSpan(l.window[a], l.dilation[a]);
      if (same) {
        l.windowPadding[a] = (span - 1) / 2;
        l.windowPadEnd[a] = span - 1 - l.windowPadding[a];
      }
      int64_t n = l.in[a + 1], padded = n + l.windowPadding[a] + l.windowPadEnd[a];
      if (span > padded) {
        diags_.report(DiagKind::WindowTooLarge, range, "conv2d", formatDims(l.in),
                      fmt::format("kernel {}{} spans {} {}, more than the padded input's {} ({} + {})", l.window[a],
                                  l.dilation[a] == 1 ? "" : fmt::format(" with dilation {}", l.dilation[a]), span,
                                  axisName[a], padded, n,
                                  l.windowPadding[a] == l.windowPadEnd[a]
                                      ? fmt::format("2 x padding {}", l.windowPadding[a])
                                      : fmt::format("padding {} + {}", l.windowPadding[a], l.windowPadEnd[a])));
        return false;
      }
    }
    l.units = static_cast<int64_t>(arg("filters")->number);
    if (const ast::Expr *groups = arg("groups"))
      l.groups = static_cast<int64_t>(groups->number);
    for (auto [count, what] : {std::pair{l.in[0], "channels"}, std::pair{l.units, "filters"}})
      if (count % l.groups) {
        diags_.report(
            DiagKind::GroupsDoNotDivide, range, "conv2d", formatDims(l.in),
            fmt::format("{} groups do not divide its {} {} (each group takes as many of both)", l.groups, count, what));
        return false;
      }
    l.out = {l.units, 0, 0};
    for (size_t a = 0; a < 2; ++a)
      l.out[a + 1] = (l.in[a + 1] + l.windowPadding[a] + l.windowPadEnd[a] - ir::convSpan(l.window[a], l.dilation[a])) /
                         l.windowStride[a] +
                     1;
    return true;
  }

  // A pooling layer's windows per axis (PyTorch's rules and defaults: stride = kernel, floor
  // unless ceil_mode) and output shape; false after reporting the rule that fails.
  bool pooling(Layer &l, LayerKind kind, SourceRange range, const std::function<const ast::Expr *(const char *)> &arg) {
    const char *spelling = layerSpelling(kind);
    const char *axisName[2] = {"rows", "columns"};
    l.out = {l.in[0], 0, 0};
    if (kind == LayerKind::AdaptiveAvgPool2D) { // PyTorch's windows: [floor(i n / o), ceil((i + 1) n / o))
      std::array<int64_t, 2> size = intPair(arg("size"), 1);
      for (size_t a = 0; a < 2; ++a) // larger than the input too, as in PyTorch: windows then share elements
        l.out[a + 1] = size[a];
      return true;
    }
    l.window = intPair(arg("kernel"), 1);
    l.windowStride = intPair(arg("stride"), 0);
    if (!arg("stride"))
      l.windowStride = l.window;
    l.windowPadding = l.windowPadEnd = intPair(arg("padding"), 0);
    bool ceil = arg("ceil_mode") && arg("ceil_mode")->text == "true";
    l.countIncludePad = !arg("count_include_pad") || arg("count_include_pad")->text == "true";
    for (size_t a = 0; a < 2; ++a) {
      int64_t k = l.window[a], p = l.windowPadding[a], n = l.in[a + 1];
      if (2 * p > k) {
        diags_.report(DiagKind::PaddingTooLarge, range, spelling, p, k, axisName[a]);
        return false;
      }
      if (k > n + 2 * p) {
        diags_.report(DiagKind::WindowTooLarge, range, spelling, formatDims(l.in),
                      fmt::format("kernel {} spans {} {}, more than the padded input's {} ({} + 2 x padding {})", k, k,
                                  axisName[a], n + 2 * p, n, p));
        return false;
      }
      l.out[a + 1] = ir::poolOutSize(n, k, l.windowStride[a], p, ceil);
    }
    return true;
  }

  // A built-in layer's arguments (besides its input) and output shape.
  std::optional<Layer> layer(LayerKind kind, SourceRange range, const std::vector<ast::Arg> &args, const Dims &in,
                             Scope &scope) {
    Layer l;
    l.kind = kind;
    l.range = range;
    l.in = in;
    Signature sig{kLayers[static_cast<int>(kind)].spelling, {}};
    const Param lrMult{"lr_mult", ArgType::NonNegativeNumber, false}, init{"init", ArgType::Expr, false},
        biasInit{"bias_init", ArgType::Expr, false};
    if (kind == LayerKind::Dense)
      sig.params = {{"units", ArgType::PositiveInt, true}, lrMult, init, biasInit};
    if (kind == LayerKind::LeakyRelu || kind == LayerKind::Elu)
      sig.params = {{"alpha", ArgType::NonNegativeNumber, false}};
    if (kind == LayerKind::Conv2D)
      sig.params = {{"filters", ArgType::PositiveInt, true},
                    {"kernel", ArgType::PositiveIntPair, true},
                    {"stride", ArgType::PositiveIntPair, false},
                    {"padding", ArgType::Padding, false},
                    {"dilation", ArgType::PositiveIntPair, false},
                    {"groups", ArgType::PositiveInt, false},
                    lrMult,
                    init,
                    biasInit};
    if (kind == LayerKind::MaxPool2D || kind == LayerKind::AvgPool2D)
      sig.params = {{"kernel", ArgType::PositiveIntPair, true},
                    {"stride", ArgType::PositiveIntPair, false},
                    {"padding", ArgType::NonNegativeIntPair, false},
                    {"ceil_mode", ArgType::Bool, false}};
    if (kind == LayerKind::AvgPool2D)
      sig.params.push_back({"count_include_pad", ArgType::Bool, false});
    if (kind == LayerKind::AdaptiveAvgPool2D)
      sig.params = {{"size", ArgType::PositiveIntPair, true}};
    if (kind == LayerKind::Dropout)
      sig.params = {{"p", ArgType::UnitInterval, true}};
    if (kind == LayerKind::BatchNorm)
      sig.params = {{"momentum", ArgType::UnitInterval, false}, {"eps", ArgType::PositiveNumber, false}};
    if (kind == LayerKind::LayerNorm)
      sig.params = {{"eps", ArgType::PositiveNumber, false}};
    if (kind == LayerKind::Embedding)
      sig.params = {{"vocab", ArgType::PositiveInt, true}, {"dim", ArgType::PositiveInt, true}, lrMult, init};
    auto bound = args_.bind(sig, args, range);
    if (!bound)
      return std::nullopt;
    auto arg = [&](const char *name) -> const ast::Expr * {
      for (size_t i = 0; i < sig.params.size(); ++i)
        if (std::string(sig.params[i].name) == name)
          return (*bound)[i];
      return nullptr;
    };
    lrMult_ = arg("lr_mult") ? arg("lr_mult")->number : 1.0;
    weightInit_ = biasInit_ = InitSpec{};
    for (auto [name, slot] : {std::pair<const char *, InitSpec *>{"init", &weightInit_}, {"bias_init", &biasInit_}})
      if (const ast::Expr *e = arg(name)) {
        std::optional<InitSpec> i = initializer(*e, scope, true);
        if (!i)
          return std::nullopt;
        *slot = *i;
      }
    const char *spelling = layerSpelling(kind);
    switch (kind) {
    case LayerKind::Dense:
      l.units = static_cast<int64_t>(arg("units")->number);
      if (in.size() != 1) {
        diags_.report(DiagKind::ShapeMismatch, range, "dense", "a vector [n] (add 'flatten' before it)",
                      formatDims(in));
        return std::nullopt;
      }
      l.out = {l.units};
      break;
    case LayerKind::Conv2D:
    case LayerKind::MaxPool2D:
    case LayerKind::AvgPool2D:
    case LayerKind::AdaptiveAvgPool2D:
    case LayerKind::GlobalAvgPool: {
      if (in.size() != 3) {
        diags_.report(DiagKind::ShapeMismatch, range, spelling,
                      "an image [channels, height, width]" +
                          std::string(in.size() == 2 ? " (declare the input as [1, h, w])" : ""),
                      formatDims(in));
        return std::nullopt;
      }
      if (kind == LayerKind::GlobalAvgPool) {
        l.out = {in[0]};
        break;
      }
      if (kind != LayerKind::Conv2D) {
        if (!pooling(l, kind, range, arg))
          return std::nullopt;
        break;
      }
      if (!convolution(l, range, arg))
        return std::nullopt;
      break;
    }
    case LayerKind::Flatten: {
      int64_t n = 1;
      for (int64_t d : in)
        n *= d;
      l.out = {n};
      break;
    }
    case LayerKind::Softmax:
    case LayerKind::LogSoftmax:
      if (in.size() != 1) {
        diags_.report(DiagKind::ShapeMismatch, range, spelling, "a vector [n]", formatDims(in));
        return std::nullopt;
      }
      l.out = in;
      break;
    case LayerKind::LeakyRelu: // PyTorch's defaults
    case LayerKind::Elu:
      l.alpha = arg("alpha") ? arg("alpha")->number : kind == LayerKind::LeakyRelu ? 0.01 : 1.0;
      l.out = in;
      break;
    case LayerKind::Dropout: // active in training only; the output is scaled by 1 / (1 - p)
      l.alpha = arg("p")->number;
      l.out = in;
      break;
    case LayerKind::BatchNorm: // per channel: axis 0 of the sample ([n] or [c, h, w])
      if (in.empty() || (in.size() != 1 && in.size() != 3)) {
        diags_.report(DiagKind::ShapeMismatch, range, spelling, "a vector [n] or an image [c, h, w]", formatDims(in));
        return std::nullopt;
      }
      l.momentum = arg("momentum") ? arg("momentum")->number : 0.1;
      l.eps = arg("eps") ? arg("eps")->number : 1e-5;
      l.out = in;
      break;
    case LayerKind::Embedding: // integer ids (as numbers) -> one learned vector each
      l.kernel = static_cast<int64_t>(arg("vocab")->number);
      l.units = static_cast<int64_t>(arg("dim")->number);
      l.out = in;
      l.out.push_back(l.units);
      if (!arg("init")) { // PyTorch's default for embeddings: N(0, 1)
        weightInit_.kind = InitSpec::Kind::Normal;
        weightInit_.a = 0;
        weightInit_.b = 1;
      }
      break;
    case LayerKind::LayerNorm: // over the whole sample
      if (in.empty()) {
        diags_.report(DiagKind::ShapeMismatch, range, spelling, "a value with axes", formatDims(in));
        return std::nullopt;
      }
      l.eps = arg("eps") ? arg("eps")->number : 1e-5;
      l.out = in;
      break;
    case LayerKind::Sigmoid:
    case LayerKind::Tanh:
    case LayerKind::Relu:
    case LayerKind::Gelu:
    case LayerKind::Silu:
    case LayerKind::Softplus:
    case LayerKind::Identity:
      l.out = in;
      break;
    }
    return l;
  }

  // exp(x), maximum(a, b), sum(x, axis), reshape(x, [dims]), transpose(x, [perm]), concat(a, b, axis),
  // dim(x, axis): the extent of an axis of the sample (the last by default), a number
  std::optional<Value> functionCall(Fn fn, const std::string &callee, SourceRange range, std::vector<ast::Arg> args,
                                    Scope &scope, int implicit) {
    std::optional<int> x = inputOf(callee, range, args, scope, implicit);
    if (!x)
      return std::nullopt;
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
          diags_.report(DiagKind::OperandShapes, range, "'concat' (equal shapes but along the axis)",
                        formatDims(in.dims), describeNode(*x), formatDims(o.dims), describeNode(t));
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
  std::optional<int64_t> axisOf(const ast::Expr *arg, size_t rank, const std::string &callee) {
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

  // --- User-defined layers ----------------------------------------------------------------

  bool checkLayerDecls() {
    std::set<std::string> seen;
    for (const ast::LayerDecl &l : file_.layers) {
      if (!seen.insert(l.name).second) {
        diags_.report(DiagKind::DuplicateDecl, l.nameRange, "layer", l.name);
        return false;
      }
      if (builtinLayer(l.name) || function(l.name)) {
        diags_.report(DiagKind::NameTaken, l.nameRange, l.name);
        return false;
      }
      if (l.body.empty() || l.body.back().kind != ast::Stmt::Kind::Return) {
        diags_.report(DiagKind::MissingReturn, l.nameRange, l.name);
        return false;
      }
      for (size_t i = 0; i + 1 < l.body.size(); ++i)
        if (l.body[i].kind == ast::Stmt::Kind::Return) {
          diags_.report(DiagKind::MissingReturn, l.body[i].range, l.name);
          return false;
        }
    }
    return true;
  }

  std::optional<Value> instantiate(const ast::LayerDecl &decl, SourceRange range, const std::vector<ast::Arg> &args,
                                   Scope &caller, int implicit) {
    if (std::find(active_.begin(), active_.end(), decl.name) != active_.end()) {
      diags_.report(DiagKind::RecursiveLayer, range, decl.name);
      return std::nullopt;
    }
    // Layers that use each other twice per level double at every level: bound the expansion
    // before it takes minutes and gigabytes.
    int64_t &expansions = expansions_[decl.name];
    ++expansions;
    if (spec_.nodes.size() > kMaxNodes) {
      diags_.report(DiagKind::ExpansionTooLarge, range, kMaxNodes, decl.name, expansions);
      return std::nullopt;
    }
    // Bind the formals: the chain's value first (when in a chain), then the arguments, which
    // the caller's scope evaluates; formals without a default are required.
    size_t first = implicit >= 0 ? 1 : 0;
    Signature sig{decl.name.c_str(), {}};
    for (size_t i = first; i < decl.formals.size(); ++i)
      sig.params.push_back({decl.formals[i].name.c_str(), ArgType::Expr, !decl.formals[i].hasDefault});
    auto exprs = args_.bind(sig, args, range);
    if (!exprs)
      return std::nullopt;
    std::vector<std::optional<Value>> bound(decl.formals.size());
    if (implicit >= 0)
      bound[0] = Value{true, implicit, 0, false};
    for (size_t i = first; i < decl.formals.size(); ++i)
      if (const ast::Expr *e = (*exprs)[i - first]) {
        bound[i] = eval(*e, caller, -1);
        if (!bound[i])
          return std::nullopt;
      }
    Scope inner;
    std::string base = caller.prefix + lower(decl.name);
    inner.prefix = base + "_" + std::to_string(++counts_[base]) + ".";
    for (size_t i = 0; i < decl.formals.size(); ++i) {
      const ast::Formal &f = decl.formals[i];
      if (!bound[i]) { // a default: the binder required every formal without one
        Scope empty;
        bound[i] = eval(f.defaultValue, empty, -1);
        if (!bound[i])
          return std::nullopt;
      }
      inner.names[f.name] = *bound[i];
    }
    if (!bound[0]->isTensor) {
      diags_.report(DiagKind::NotATensor, range, "the input of '" + decl.name + "' (its first formal)", "a number");
      return std::nullopt;
    }
    inner.prev = bound[0]->node;
    size_t paramsBefore = spec_.params.size();
    active_.push_back(decl.name);
    std::optional<Value> result = block(decl.body, inner);
    active_.pop_back();
    if (!result)
      return std::nullopt;
    if (!result->isTensor) {
      diags_.report(DiagKind::NotATensor, decl.body.back().range, "the value of layer '" + decl.name + "'", "a number");
      return std::nullopt;
    }
    // The instance's value, under the instance's name, for `soma check`.
    GraphNode &out = spec_.nodes[result->node];
    if (out.kind == GraphNode::Kind::Layer || !out.label.empty() || out.paramCount) { // keep their labels: alias it
      result->node = add(derived(GraphNode::Kind::Reshape, {result->node}, out.dims, out.batched, range));
    }
    GraphNode &named = spec_.nodes[result->node];
    named.label = inner.prefix.substr(0, inner.prefix.size() - 1);
    named.range = range;
    for (size_t p = paramsBefore; p < spec_.params.size(); ++p) {
      int64_t n = 1;
      for (int64_t d : spec_.params[p].dims)
        n *= d;
      named.paramCount += n;
    }
    return result;
  }

  // --- Helpers --------------------------------------------------------------------------

  // A new value computed from `args`; the caller fills in the kind's own fields.
  static GraphNode derived(GraphNode::Kind kind, std::vector<int> args, Dims dims, bool batched, SourceRange range) {
    GraphNode n;
    n.kind = kind;
    n.args = std::move(args);
    n.dims = std::move(dims);
    n.batched = batched;
    n.range = range;
    return n;
  }
  Value tensor(GraphNode n) { return Value{true, add(std::move(n)), 0, false}; }

  int add(GraphNode n) {
    spec_.nodes.push_back(std::move(n));
    return static_cast<int>(spec_.nodes.size()) - 1;
  }

  // Keeps tensors addressable and allocations sane: 2^28 floats (1 GiB) per tensor.
  bool withinLimit(const std::string &what, const Dims &dims, SourceRange range) {
    constexpr int64_t kMax = int64_t{1} << 28;
    int64_t n = 1;
    for (int64_t d : dims) {
      if (d > kMax || n > kMax / std::max<int64_t>(d, 1)) {
        diags_.report(DiagKind::TooLarge, range, what, "more than " + std::to_string(kMax), kMax);
        return false;
      }
      n *= d;
    }
    return true;
  }

  static std::string fmtNumber(double v) {
    std::string s = std::to_string(v);
    s.erase(s.find_last_not_of('0') + 1);
    if (!s.empty() && s.back() == '.')
      s.pop_back();
    return s;
  }

  const ast::File &file_;
  DiagnosticEngine &diags_;
  ArgBinder args_;
  ModelSpec spec_;
  std::map<std::string, const ast::LayerDecl *> userLayers_;
  std::map<std::string, int> counts_;         // per name prefix: dense -> 2, highway_1.dense -> 1
  std::vector<std::string> active_;           // user layers being instantiated
  std::map<std::string, int64_t> expansions_; // instances of each user layer so far
  // Values a model may have once its user layers are expanded: a hundred times a ResNet-152's.
  static constexpr size_t kMaxNodes = 100000;
  InitSpec weightInit_, biasInit_; // of the built-in layer being checked
  double lrMult_ = 1;
};

} // namespace

const char *layerSpelling(LayerKind k) { return kLayers[static_cast<int>(k)].spelling; }

std::optional<ModelSpec> checkModel(const ast::File &file, const ast::ModelDecl &model, DiagnosticEngine &diags) {
  return GraphBuilder(file, diags).build(model);
}

} // namespace soma
