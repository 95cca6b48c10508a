// The only code that sees ANTLR: parses one source buffer into an ast::File.
// Syntax errors become SyntaxError diagnostics; ANTLR's console output is never used.
#pragma once
#include "ast/AST.h"
#include "support/Diagnostics.h"

#include <optional>

namespace soma {

// Returns nullopt if there were syntax errors (already reported).
std::optional<ast::File> parseFile(uint32_t fileId, const SourceManager &sm, DiagnosticEngine &diags);

} // namespace soma
