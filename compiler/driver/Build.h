// `soma build`: the model's object code linked with Soma's runtime into an executable, or
// packed with it into a static (or shared) library and a C header.
#pragma once
#include "driver/Pipeline.h"

#include <string>

namespace soma {

struct BuildOptions {
  std::string output; // the executable; with lib, the directory for lib<name>.a and <name>.h
  bool lib = false, shared = false;
  std::string name; // the library's name and C prefix ("": from the model's name)
};

// Writes the files; returns the exit code after reporting any error on stderr.
int buildOutputs(const CompiledModel &m, const BuildOptions &opts);

} // namespace soma
