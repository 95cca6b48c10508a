// What turns the generated functions into a program or a library: the model's description as
// data, a soma_program record pointing at it and at the functions, and the entry points, main()
// or the C functions named after the model (runtime.h has the ABI).
#pragma once
#include "soma/Model.h"

#include <string>

namespace llvm {
class Module;
} // namespace llvm

namespace soma::codegen {

enum class ProgramKind { Executable, Library };

// Adds the record and the entry points to `m`; the generated functions become internal, so two
// models link into one program. `prefix` names a library's C functions.
void addProgram(llvm::Module &m, const std::string &model, bool training, ProgramKind kind, const std::string &prefix);

// The C header of a library built with `prefix`.
std::string libraryHeader(const std::string &prefix, const rt::ModelInfo &info);

} // namespace soma::codegen
