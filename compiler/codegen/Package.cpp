#include "codegen/Package.h"

#include "codegen/KernelEmitter.h"

#include <llvm/IR/Constants.h>
#include <llvm/IR/IRBuilder.h>
#include <llvm/IR/Module.h>

#include <cctype>

namespace soma::codegen {

namespace {

// One C function of a library: its name after the prefix, the runtime function it calls, its
// LLVM signature (return type, then parameters: v void, p pointer, i int, l int64, f float), and
// its declaration and documentation in the header ({m} is the model type).
struct CFunction {
  const char *suffix, *runtime, *signature, *declaration, *doc;
};

const CFunction kFunctions[] = {
    {"create", "soma_rt_create", "pl", "{m} *{p}_create(int64_t max_batch)",
     "A model instance with fresh weights (seed 1) for batches of 1 to max_batch samples (max_batch at most\n"
     "   2^30), or NULL when max_batch is out of that range or its buffers cannot be allocated; then\n"
     "   {p}_error(NULL) says which."},
    {"destroy", "soma_rt_destroy", "vp", "void {p}_destroy({m} *model)", "Frees the instance (NULL is allowed)."},
    {"error", "soma_rt_error", "pp", "const char *{p}_error(const {m} *model)",
     "The message of the model's last failure (\"\" if none); for NULL, why the last {p}_create of this\n"
     "   thread returned NULL. The text stays valid until the next call on the model."},
    {"init", "soma_rt_init", "ipl", "int {p}_init({m} *model, uint64_t seed)",
     "New weights from the model's initializers, drawn with `seed`, and the optimizer's state reset."},
    {"load_weights", "soma_rt_load_weights", "ipp", "int {p}_load_weights({m} *model, const char *path)",
     "Loads the weights of a safetensors file (`soma run --checkpoint`, save_weights). A file of another model is\n"
     "   refused, naming the tensor and both shapes, and the weights are left as they were."},
    {"save_weights", "soma_rt_save_weights", "ipp", "int {p}_save_weights({m} *model, const char *path)",
     "Saves the weights as safetensors (to path.tmp, then renamed over path); a path that is not a regular\n"
     "   file (a symbolic link, a device) is refused."},
    {"predict", "soma_rt_predict", "ipplp", "int {p}_predict({m} *model, const float *x, int64_t n, float *out)",
     "The model's outputs for n >= 0 samples: x holds n * {P}_INPUT_SIZE floats, out receives n * {P}_OUTPUTS\n"
     "   (any n: larger ones run in batches of max_batch)."},
    {"train_step", "soma_rt_train_step", "ippplfp",
     "int {p}_train_step({m} *model, const float *x, const float *labels, int64_t n, float lr, float *loss)",
     "One step of the train block's optimizer on 1 to max_batch samples with labels (n * {P}_LABEL_SIZE\n"
     "   floats: class indices, or targets; NULL when it is 0), at a positive, finite learning rate lr; the\n"
     "   batch's mean loss goes to *loss (unless NULL).\n"
     "   Fails for a model without a train block, a label that is not a class, or n or lr out of range."},
    {"set_threads", "soma_rt_lib_set_threads", "ii", "int {p}_set_threads(int threads)",
     "Worker threads for every instance, 1 to 256 (the default is 1); -1 for a count out of that range."},
};

llvm::Type *typeOf(llvm::LLVMContext &ctx, char c) {
  switch (c) {
  case 'v':
    return llvm::Type::getVoidTy(ctx);
  case 'p':
    return llvm::PointerType::get(ctx, 0);
  case 'i':
    return llvm::Type::getInt32Ty(ctx);
  case 'l':
    return llvm::Type::getInt64Ty(ctx);
  default:
    return llvm::Type::getFloatTy(ctx);
  }
}

std::string replaceAll(std::string s, const std::string &from, const std::string &to) {
  for (size_t at = s.find(from); at != std::string::npos; at = s.find(from, at + to.size()))
    s.replace(at, from.size(), to);
  return s;
}

std::string upper(std::string s) {
  for (char &c : s)
    c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return s;
}

} // namespace

void addProgram(llvm::Module &m, const std::string &model, bool training, ProgramKind kind, const std::string &prefix) {
  llvm::LLVMContext &ctx = m.getContext();
  llvm::Type *ptr = llvm::PointerType::get(ctx, 0), *i64 = llvm::Type::getInt64Ty(ctx);
  auto constant = [&](const char *name, llvm::Constant *init) { return privateConstant(m, name, init, 8); };
  llvm::GlobalVariable *data = constant("soma.model", llvm::ConstantDataArray::getString(ctx, model, false));
  llvm::Function *forward = m.getFunction("forward"), *train = m.getFunction("train_step");
  forward->setLinkage(llvm::GlobalValue::InternalLinkage);
  if (train)
    train->setLinkage(llvm::GlobalValue::InternalLinkage);
  auto *recordTy = llvm::StructType::get(ctx, {ptr, i64, ptr, ptr});
  llvm::Constant *trainPtr = training && train ? static_cast<llvm::Constant *>(train)
                                               : llvm::ConstantPointerNull::get(llvm::PointerType::get(ctx, 0));
  llvm::GlobalVariable *record = constant(
      "soma.program",
      llvm::ConstantStruct::get(recordTy, {data, llvm::ConstantInt::get(i64, model.size()), forward, trainPtr}));

  auto define = [&](const std::string &name, llvm::FunctionType *type, const std::string &callee, bool withRecord) {
    auto *fn = llvm::Function::Create(type, llvm::GlobalValue::ExternalLinkage, name, m);
    llvm::IRBuilder<> b(llvm::BasicBlock::Create(ctx, "entry", fn));
    std::vector<llvm::Type *> params;
    std::vector<llvm::Value *> args;
    if (withRecord) {
      params.push_back(ptr);
      args.push_back(record);
    }
    for (llvm::Argument &a : fn->args()) {
      params.push_back(a.getType());
      args.push_back(&a);
    }
    llvm::FunctionCallee target =
        m.getOrInsertFunction(callee, llvm::FunctionType::get(type->getReturnType(), params, false));
    llvm::Value *result = b.CreateCall(target, args);
    if (type->getReturnType()->isVoidTy())
      b.CreateRetVoid();
    else
      b.CreateRet(result);
  };
  if (kind == ProgramKind::Executable) {
    define("main", llvm::FunctionType::get(llvm::Type::getInt32Ty(ctx), {llvm::Type::getInt32Ty(ctx), ptr}, false),
           "soma_rt_main", true);
    return;
  }
  for (const CFunction &f : kFunctions) {
    std::vector<llvm::Type *> params;
    for (const char *c = f.signature + 1; *c; ++c)
      params.push_back(typeOf(ctx, *c));
    define(prefix + "_" + f.suffix, llvm::FunctionType::get(typeOf(ctx, f.signature[0]), params, false), f.runtime,
           std::string(f.suffix) == "create");
  }
}

std::string libraryHeader(const std::string &prefix, const rt::ModelInfo &info) {
  std::string P = upper(prefix), type = prefix + "_model";
  std::string guard = P + "_H";
  std::string h = "/* " + prefix + ".h: the C interface of model '" + info.name +
                  "', built by Soma.\n"
                  "   Link with lib" +
                  prefix +
                  ".a and -lstdc++ -lm -lmvec -lpthread.\n"
                  "   Functions returning int give 0 on success, -1 on failure (see " +
                  prefix +
                  "_error).\n"
                  "   Every function taking a model returns -1 for NULL; no function keeps x, labels or\n"
                  "   out after it returns. An instance is used by one thread at a time. */\n";
  h += "#ifndef " + guard + "\n#define " + guard +
       "\n#include <stdint.h>\n\n#ifdef __cplusplus\nextern \"C\" {\n#endif\n\n";
  h += "/* One sample: input '" + info.inputName + "' of shape " + rt::formatDims(info.inputDims) + ", row-major. */\n";
  h += "#define " + P + "_INPUT_SIZE " + std::to_string(info.sampleSize()) + "\n";
  h += "/* One sample's outputs, shape " + rt::formatDims(info.outputDims) + ". */\n";
  h += "#define " + P + "_OUTPUTS " + std::to_string(info.outputs) + "\n";
  if (info.config) {
    h += "/* One sample's labels for train_step: a class index or a number (1), several values, or none (0). */\n";
    h += "#define " + P + "_LABEL_SIZE " + std::to_string(info.config->labelSize) + "\n";
  }
  h += "\n";
  h += "typedef struct " + type + " " + type + ";\n\n";
  for (const CFunction &f : kFunctions) {
    std::string decl = replaceAll(replaceAll(f.declaration, "{m}", type), "{p}", prefix);
    h += "/* " + replaceAll(replaceAll(f.doc, "{P}", P), "{p}", prefix) + " */\n" + decl + ";\n";
  }
  h += "\n#ifdef __cplusplus\n}\n#endif\n#endif\n";
  return h;
}

} // namespace soma::codegen
