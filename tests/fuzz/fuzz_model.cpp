// Model-file text through every compiler stage before machine code: parse, check, lowering,
// autodiff, common subexpressions, scheduling, and LLVM IR (verified). A rejected file must be
// rejected with diagnostics; anything else (a crash, a sanitizer report, a failed assertion, an
// invalid module) is a bug.
#include "MemFile.h"
#include "driver/Pipeline.h"

#include <llvm/IR/LLVMContext.h>
#include <llvm/IR/Module.h>
#include <llvm/IR/Verifier.h>
#include <llvm/Support/raw_ostream.h>

#include <cstdio>
#include <cstdlib>
#include <sstream>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  soma::fuzz::MemFile file(data, size);
  soma::CompileOptions opts;
  opts.path = file.path();
  opts.stopAfter = soma::Stage::Kernels;
  std::ostringstream out, errs;
  std::unique_ptr<soma::CompiledModel> cm = soma::compile(opts, out, errs);
  if (!cm) {
    if (errs.str().find("error") == std::string::npos) {
      std::fprintf(stderr, "rejected without an error message:\n%s\n", errs.str().c_str());
      std::abort();
    }
    return 0;
  }
  llvm::LLVMContext ctx;
  std::vector<soma::codegen::FunctionToEmit> fns = {{&cm->lowered.forward, &cm->forwardSchedule, &cm->forwardPlans}};
  if (cm->program.train)
    fns.push_back({&cm->lowered.train, &cm->trainSchedule, &cm->trainPlans});
  std::unique_ptr<llvm::Module> module = soma::codegen::emitModule(ctx, fns, soma::codegen::hostTarget());
  if (llvm::verifyModule(*module, &llvm::errs())) {
    std::fprintf(stderr, "invalid LLVM IR\n");
    std::abort();
  }
  return 0;
}
