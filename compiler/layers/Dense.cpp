// Layers over a sample's features as a whole:
//   dense(units):        x @ w + b          (w is [in, units], b is [units]; x a vector [in])
//   flatten:             reshape to [batch, the sample's element count]
//   embedding(vocab, dim): integer ids (as numbers) of any shape -> one learned row of a
//                        [vocab, dim] table each (the gather op; its gradient sums one_hot(ids)
//                        against dy); an id outside [0, vocab), or not an integer, gives zeros
#include "layers/Layer.h"

namespace soma::layers {

using ir::Op;

namespace {

InitSpec normal(double mean, double std) {
  InitSpec i;
  i.kind = InitSpec::Kind::Normal;
  i.a = mean;
  i.b = std;
  return i;
}

bool checkDense(Layer &l, const LayerCall &call) {
  DenseAttrs a{static_cast<int64_t>(call.number("units", 0))};
  if (l.in.size() != 1)
    return call.wrongShape(l, "a vector [n] (add 'flatten' before it)");
  l.attrs = a;
  l.out = {a.units};
  return true;
}

std::vector<LayerParam> denseParams(const Layer &l) {
  int64_t units = l.as<DenseAttrs>().units;
  return {{"w", {l.in[0], units}, LayerParam::Role::Weight, {}, false},
          {"b", {units}, LayerParam::Role::Bias, {}, false}};
}

int lowerDense(LayerLowering &cx, const Layer &l, int x) {
  int mm = cx.b.matmul(x, cx.param(l, 0));
  return cx.b.binary(Op::Add, mm, cx.b.broadcast(cx.param(l, 1), cx.b.shape(mm), 1));
}

bool checkFlatten(Layer &l, const LayerCall &) {
  int64_t n = 1;
  for (int64_t d : l.in)
    n *= d;
  l.out = {n};
  return true;
}

int lowerFlatten(LayerLowering &cx, const Layer &l, int x) {
  ir::Shape s{ir::kBatch};
  s.insert(s.end(), l.out.begin(), l.out.end());
  return cx.b.reshape(x, s);
}

bool checkEmbedding(Layer &l, const LayerCall &call) {
  EmbeddingAttrs a{static_cast<int64_t>(call.number("vocab", 0)), static_cast<int64_t>(call.number("dim", 0))};
  l.attrs = a;
  l.out = l.in;
  l.out.push_back(a.dim);
  return true;
}

std::vector<LayerParam> embeddingParams(const Layer &l) { // PyTorch's default for embeddings: N(0, 1)
  const EmbeddingAttrs &a = l.as<EmbeddingAttrs>();
  return {{"w", {a.vocab, a.dim}, LayerParam::Role::Weight, normal(0, 1), false}};
}

int lowerEmbedding(LayerLowering &cx, const Layer &l, int x) {
  return cx.b.gather(x, cx.param(l, 0)); // a row of the table per id (zeros for an id out of range)
}

} // namespace

const LayerRecord Dense{"dense",
                        {{"units", ArgType::PositiveInt, true}, kLrMultParam, kInitParam, kBiasInitParam},
                        checkDense,
                        denseParams,
                        lowerDense};
const LayerRecord Flatten{"flatten", {}, checkFlatten, none, lowerFlatten};
const LayerRecord Embedding{
    "embedding",
    {{"vocab", ArgType::PositiveInt, true}, {"dim", ArgType::PositiveInt, true}, kLrMultParam, kInitParam},
    checkEmbedding,
    embeddingParams,
    lowerEmbedding};

} // namespace soma::layers
