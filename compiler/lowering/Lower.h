// AST -> IR. Layers and losses decompose into primitive ops here; the training step is
// forward + loss + the gradients from autodiff/ + the optimizer update, all in one function.
#pragma once
#include "ast/Sema.h"
#include "ir/IR.h"

namespace soma {

struct ParamInfo {
  std::string name; // dense_1.w
  ir::Shape shape;
  int64_t fanIn = 1; // for the initializer
  double lrMult = 1; // its learning rate is lr * lrMult
  int64_t fanOut = 1;
  InitSpec init;
  rt::TensorInfo info() const { return {name, shape, init, fanIn, fanOut}; } // the runtime's view
};

// The inputs every lowered function takes, by name (soma/Model.h).
using rt::kInputAdamInvSqrtBias2;
using rt::kInputAdamStepSize;
using rt::kInputDropoutSeed;
using rt::kInputInvBatch;
using rt::kInputLabel;
using rt::kInputLr;
using rt::kInputX;

struct LoweredModel {
  std::vector<ParamInfo> params;
  std::vector<ParamInfo> state;   // optimizer buffers, zero at the start: dense_1.w.momentum, ...
  std::vector<ParamInfo> buffers; // model statistics, not trained: batchnorm_1.running_mean, ...
  // What a weights file holds: the parameters, then the statistics.
  std::vector<ParamInfo> weights() const {
    std::vector<ParamInfo> w = params;
    w.insert(w.end(), buffers.begin(), buffers.end());
    return w;
  }
  ir::Function forward; // x, label, params -> output, loss (evaluation and prediction)
  ir::Function train;   // x, label, params, lr -> loss; updates every parameter in place
  int64_t outputs = 0;  // per-sample output size
};

// Lowers the forward pass and loss; `train` is filled by lowerTraining.
LoweredModel lowerModel(const Program &program);
// The forward pass and loss as training runs it: dropout active, batchnorm on the batch's
// statistics (updating the running ones, results that overwrite the buffers).
ir::Function lowerTrainingForward(LoweredModel &m, const Program &program);
// The training step: lowerTrainingForward, its gradients (autodiff), clipping and the
// optimizer's update, in one function.
void lowerTraining(LoweredModel &m, const Program &program);

} // namespace soma
