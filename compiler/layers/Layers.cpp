// The table of layer records, indexed by LayerKind, and what the records share.
#include "layers/Layer.h"

namespace soma {

namespace {

const LayerRecord *const kRecords[] = {
#define LAYER(Kind) &layers::Kind,
#include "layers/Layers.def"
};

} // namespace

const LayerRecord &layerRecord(LayerKind k) { return *kRecords[static_cast<size_t>(k)]; }
const char *layerSpelling(LayerKind k) { return layerRecord(k).spelling; }

std::optional<LayerKind> layerNamed(const std::string &spelling) {
  for (size_t i = 0; i < std::size(kRecords); ++i)
    if (spelling == kRecords[i]->spelling)
      return static_cast<LayerKind>(i);
  return std::nullopt;
}

std::vector<std::string> layerSpellings() {
  std::vector<std::string> names;
  for (const LayerRecord *r : kRecords)
    names.emplace_back(r->spelling);
  return names;
}

const ast::Expr *LayerCall::arg(const char *name) const {
  for (size_t i = 0; i < sig_.size(); ++i)
    if (std::string_view(sig_[i].name) == name)
      return bound_[i];
  return nullptr;
}

double LayerCall::number(const char *name, double absent) const {
  const ast::Expr *e = arg(name);
  return e ? e->number : absent;
}

bool LayerCall::flag(const char *name, bool absent) const {
  const ast::Expr *e = arg(name);
  return e ? e->text == "true" : absent;
}

std::array<int64_t, 2> LayerCall::pair(const char *name, int64_t absent) const { return intPair(arg(name), absent); }

bool LayerCall::wrongShape(const Layer &l, const std::string &want) const {
  diags.report(DiagKind::ShapeMismatch, range, spelling, want, formatDims(l.in));
  return false;
}

int LayerLowering::seed() {
  if (dropoutSeed < 0)
    dropoutSeed = b.input(rt::kInputDropoutSeed, ir::InputRole::Scalar, {});
  return dropoutSeed;
}

int negativePart(ir::Builder &b, int x) { return b.binary(ir::Op::Sub, x, b.unary(ir::Op::Relu, x)); }

int absSloped(ir::Builder &b, int x) {
  using ir::Op;
  return b.binary(Op::Sub, b.binary(Op::Mul, b.fill(2.0, {}), b.unary(Op::Relu, x)), x);
}

int softmax(ir::Builder &b, int z, bool log, int64_t axis) {
  using ir::Op;
  ir::Shape s = b.shape(z);
  uint32_t along = 1u << axis;
  int m = b.broadcast(b.reduce(Op::ReduceMax, z, along), s, along);
  int shifted = b.binary(Op::Sub, z, m);
  int e = b.unary(Op::Exp, shifted);
  int sum = b.reduce(Op::ReduceSum, e, along);
  if (log)
    return b.binary(Op::Sub, shifted, b.broadcast(b.unary(Op::Log, sum), s, along));
  return b.binary(Op::Div, e, b.broadcast(sum, s, along));
}

std::vector<LayerParam> layers::none(const Layer &) { return {}; }

} // namespace soma
