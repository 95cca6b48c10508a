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

struct LoweredModel {
  std::vector<ParamInfo> params;
  std::vector<ParamInfo> state; // optimizer buffers, zero at the start: dense_1.w.momentum, ...
  ir::Function forward; // x, label, params -> output, loss (evaluation and prediction)
  ir::Function train;   // x, label, params, lr -> loss; updates every parameter in place
  int64_t outputs = 0;  // per-sample output size
};

// Lowers the forward pass and loss; `train` is filled by lowerTraining.
LoweredModel lowerModel(const Program &program);
// Appends gradients and the optimizer's update to a copy of `forward` (autodiff included).
void lowerTraining(LoweredModel &m, const Program &program);

} // namespace soma
