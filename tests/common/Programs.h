// Model files as strings, parsed and checked for tests.
#pragma once
#include "ast/Sema.h"

#include <optional>
#include <string>

namespace soma::test {

// The checked program; throws std::runtime_error with the diagnostics if the text has errors.
Program checkProgram(const std::string &text);
// The checked program, or nullopt with the diagnostics in `errors`.
std::optional<Program> tryCheckProgram(const std::string &text, std::string &errors);

} // namespace soma::test
