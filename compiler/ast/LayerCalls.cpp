// A call of a built-in layer, checked against its record (layers/Layer.h): the arguments bound
// to its signature, its initializers read, its shape rule applied, its parameters created under
// the layer's name (dense_1.w) with their fans and learning-rate multiplier.
#include "ast/GraphBuilder.h"

namespace soma::graph {

std::optional<Value> GraphBuilder::layerCall(LayerKind kind, const std::string &callee, SourceRange range,
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
  std::optional<std::vector<ast::Arg>> foldedArgs = folded(args, scope);
  if (!foldedArgs)
    return std::nullopt;
  const LayerRecord &record = layerRecord(kind);
  auto bound = args_.bind({record.spelling, record.params}, *foldedArgs, range);
  if (!bound)
    return std::nullopt;
  LayerCall callArgs(record.params, *bound, record.spelling, range, static_cast<uint32_t>(spec_.nodes.size()) + 1,
                     diags_);
  // The arguments every layer with parameters may take.
  double lrMult = callArgs.number(kLrMultParam.name, 1.0);
  std::optional<InitSpec> inits[2]; // init, bias_init: what the model file gives
  const char *initArgs[2] = {kInitParam.name, kBiasInitParam.name};
  for (size_t i = 0; i < 2; ++i)
    if (const ast::Expr *e = callArgs.arg(initArgs[i])) {
      inits[i] = initializer(*e, scope, true);
      if (!inits[i])
        return std::nullopt;
    }
  Layer l;
  l.kind = kind;
  l.range = range;
  l.in = in.dims;
  if (!record.check(l, callArgs))
    return std::nullopt;
  std::string base = scope.prefix + record.spelling;
  l.name = base + "_" + std::to_string(++counts_[base]);
  if (!withinLimit("the output of '" + callee + "'", l.out, range))
    return std::nullopt;
  GraphNode n = derived(GraphNode::Kind::Layer, {*x}, l.out, true, range);
  n.label = l.name;
  int64_t weightFanIn = 1;
  for (const LayerParam &p : record.parameters(l)) {
    if (p.role == LayerParam::Role::Weight && !withinLimit("the weight tensor of '" + callee + "'", p.dims, range))
      return std::nullopt;
    int64_t count = 1;
    for (int64_t d : p.dims)
      count *= d;
    ParamSpec spec{l.name + "." + p.suffix, p.dims, p.init, count, count, 1};
    switch (p.role) {
    case LayerParam::Role::Weight:
      spec.init = inits[0].value_or(p.init);
      spec.lrMult = lrMult;
      fans(spec);
      weightFanIn = spec.fanIn;
      break;
    case LayerParam::Role::Bias:
      spec.init = inits[1].value_or(p.init);
      spec.lrMult = lrMult;
      spec.fanIn = spec.fanOut = weightFanIn;
      break;
    case LayerParam::Role::Fixed:
      break;
    }
    std::vector<ParamSpec> &list = p.buffer ? spec_.buffers : spec_.params;
    (p.buffer ? l.buffers : l.params).push_back(static_cast<int>(list.size()));
    list.push_back(std::move(spec));
    if (!p.buffer)
      n.paramCount += count;
  }
  n.layer = std::move(l);
  return tensor(std::move(n));
}

} // namespace soma::graph
