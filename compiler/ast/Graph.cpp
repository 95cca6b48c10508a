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
// This file: the model block, statements and scopes, and the graph's bookkeeping; the rest of
// the builder is in the files ast/GraphBuilder.h lists.
#include "ast/GraphBuilder.h"

#include <algorithm>

namespace soma::graph {

GraphBuilder::GraphBuilder(const ast::File &file, DiagnosticEngine &diags) : file_(file), diags_(diags), args_(diags) {
  for (const ast::LayerDecl &l : file.layers)
    userLayers_[l.name] = &l;
}

std::optional<ModelSpec> GraphBuilder::build(const ast::ModelDecl &m) {
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

// Evaluates statements in order; returns the last one's value (or the return value).
std::optional<Value> GraphBuilder::block(const std::vector<ast::Stmt> &body, Scope &scope) {
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
bool GraphBuilder::explicitInput(const ast::Expr &e, const Scope &scope) {
  const ast::Expr *first = &e;
  while (first->kind == ast::Expr::Kind::Binary && first->op == '>')
    first = &first->items[0];
  if (first->kind != ast::Expr::Kind::Call || first->args.empty() || !first->args[0].name.empty())
    return false;
  const ast::Expr &arg = first->args[0].value;
  auto it = arg.kind == ast::Expr::Kind::Name ? scope.names.find(arg.text) : scope.names.end();
  return it != scope.names.end() && it->second.isTensor;
}

bool GraphBuilder::reserved(const std::string &name) {
  return layerNamed(name) || function(name) || userLayers_.count(name);
}

// A new value computed from `args`; the caller fills in the kind's own fields.
GraphNode GraphBuilder::derived(GraphNode::Kind kind, std::vector<int> args, Dims dims, bool batched,
                                SourceRange range) {
  GraphNode n;
  n.kind = kind;
  n.args = std::move(args);
  n.dims = std::move(dims);
  n.batched = batched;
  n.range = range;
  return n;
}

Value GraphBuilder::tensor(GraphNode n) { return Value{true, add(std::move(n)), 0, false}; }

int GraphBuilder::add(GraphNode n) {
  spec_.nodes.push_back(std::move(n));
  return static_cast<int>(spec_.nodes.size()) - 1;
}

// Keeps tensors addressable and allocations sane: 2^28 floats (1 GiB) per tensor.
bool GraphBuilder::withinLimit(const std::string &what, const Dims &dims, SourceRange range) {
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

std::string GraphBuilder::fmtNumber(double v) {
  std::string s = std::to_string(v);
  s.erase(s.find_last_not_of('0') + 1);
  if (!s.empty() && s.back() == '.')
    s.pop_back();
  return s;
}

} // namespace soma::graph

namespace soma {

std::optional<ModelSpec> checkModel(const ast::File &file, const ast::ModelDecl &model, DiagnosticEngine &diags) {
  return graph::GraphBuilder(file, diags).build(model);
}

} // namespace soma
