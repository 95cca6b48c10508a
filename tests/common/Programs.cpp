#include "Programs.h"

#include "frontend/Parser.h"

#include <sstream>
#include <stdexcept>

namespace soma::test {

std::optional<Program> tryCheckProgram(const std::string &text, std::string &errors) {
  SourceManager sm;
  std::ostringstream errs;
  DiagnosticEngine diags(sm, errs);
  auto file = parseFile(sm.addBuffer("t.soma", text), sm, diags);
  auto p = file ? checkFile(*file, ".", diags) : std::nullopt;
  errors = errs.str();
  return p;
}

Program checkProgram(const std::string &text) {
  std::string errors;
  std::optional<Program> p = tryCheckProgram(text, errors);
  if (!p)
    throw std::runtime_error("the model does not check: " + errors);
  return *p;
}

} // namespace soma::test
