// `param name: [dims] = init` statements, and initializers: a name (zeros, he_normal, ...) or a
// call (uniform(a, b), normal(mean, std), constant(v)), for parameters of user layers and the
// `init` and `bias_init` arguments of built-in layers.
#include "ast/GraphBuilder.h"

#include <fmt/format.h>

namespace soma::graph {

namespace {

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

} // namespace

// param name: [dims] = init
std::optional<Value> GraphBuilder::param(const ast::Stmt &s, Scope &scope) {
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
void GraphBuilder::fans(ParamSpec &p) {
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

std::optional<InitSpec> GraphBuilder::initializer(const ast::Expr &e, Scope &scope, bool isMatrix) {
  std::vector<std::string> names;
  for (auto [n, k] : kInits)
    names.push_back(n);
  std::string name = e.kind == ast::Expr::Kind::Call || e.kind == ast::Expr::Kind::Name ? e.text : "";
  const std::pair<const char *, InitSpec::Kind> *found = nullptr;
  for (const auto &i : kInits)
    if (name == i.first)
      found = &i;
  if (!found) {
    std::string hint = name.empty() ? "" : suggest(name, names);
    if (e.kind == ast::Expr::Kind::String) // init: "zeros": the name, quoted
      for (const auto &i : kInits)
        if (e.text == i.first)
          hint = fmt::format("; an initializer is a name, not a string: write {} without quotes", e.text);
    diags_.report(DiagKind::UnknownFunction, e.kind == ast::Expr::Kind::Call ? e.calleeRange : e.range, "initializer",
                  calleeText(e), hint);
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

} // namespace soma::graph
