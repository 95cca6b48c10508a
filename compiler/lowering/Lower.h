// AST -> IR. Layers and losses decompose into primitive ops here; the training step is
// forward + loss + the gradients from autodiff/ + the optimizer update, all in one function.
#pragma once
#include "ast/Sema.h"
#include "ir/IR.h"

namespace soma {

struct ParamInfo {
  std::string name;   // dense_1.w
  ir::Shape shape;
  int64_t fanIn = 1;  // for the initializer
  double lrMult = 1;  // its learning rate is lr * lrMult
  int64_t fanOut = 1;
  InitSpec init;
};

// The inputs every lowered function takes, by name.
inline constexpr const char *kInputX = "x";
inline constexpr const char *kInputLabel = "label";
inline constexpr const char *kInputLr = "lr";
inline constexpr const char *kInputInvBatch = "inv_batch"; // 1 / (rows in this batch)
// Adam and AdamW, from the step count t: lr / (1 - beta1^t) and 1 / sqrt(1 - beta2^t).
inline constexpr const char *kInputAdamStepSize = "adam_step_size";
inline constexpr const char *kInputAdamInvSqrtBias2 = "adam_inv_sqrt_bias2";
// Dropout's masks: a number that changes every training step (see Op::Random).
inline constexpr const char *kInputDropoutSeed = "dropout_seed";

struct LoweredModel {
  std::vector<ParamInfo> params;
  std::vector<ParamInfo> state; // optimizer buffers, zero at the start: dense_1.w.momentum, ...
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
