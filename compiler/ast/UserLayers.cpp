// User-defined layers: their declarations are checked once, and each use instantiates one: its
// formals bound, its parameters created under the instance's name (highway_1.gate), its
// statements evaluated in a scope of their own, its return value the call's value.
#include "ast/GraphBuilder.h"

#include <algorithm>
#include <set>

namespace soma::graph {

namespace {

std::string lower(std::string s) {
  for (char &c : s)
    c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

} // namespace

bool GraphBuilder::checkLayerDecls() {
  std::set<std::string> seen;
  for (const ast::LayerDecl &l : file_.layers) {
    if (!seen.insert(l.name).second) {
      diags_.report(DiagKind::DuplicateDecl, l.nameRange, "layer", l.name);
      return false;
    }
    if (layerNamed(l.name) || function(l.name)) {
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

std::optional<Value> GraphBuilder::instantiate(const ast::LayerDecl &decl, SourceRange range,
                                               const std::vector<ast::Arg> &args, Scope &caller, int implicit) {
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

} // namespace soma::graph
