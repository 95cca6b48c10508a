// Arguments of calls in model files: each callee's signature (names, types, which are required)
// and the binding of positional and named arguments to it, with a diagnostic for each mistake.
// Shared by the checks of the model, the layers and the train block.
#pragma once
#include "ast/AST.h"
#include "support/Diagnostics.h"

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace soma {

enum class ArgType {
  NumberList,
  PositiveInt,
  NonNegativeInt,
  PositiveIntPair,    // n, or [h, w]: one per image axis
  NonNegativeIntPair, // the same, >= 0
  Padding,            // a NonNegativeIntPair, or "same" or "valid"
  Int,
  Number,
  PositiveNumber,
  NonNegativeNumber,
  UnitInterval,
  Fraction,
  String,
  Bool,
  Expr // anything: checked by the caller
};
struct Param {
  const char *name;
  ArgType type;
  bool required;
};
struct Signature {
  const char *name;
  std::vector<Param> params;
};

const char *typeName(ArgType t);            // "a positive integer"
std::string kindOf(const ast::Expr &e);     // "the number 1.5"
std::string calleeText(const ast::Expr &e); // the name of a call, or the rendering of anything else
bool typeMatches(ArgType t, const ast::Expr &e);
// An argument of a *Pair type as its two values (a number stands for both); `none` when absent.
std::array<int64_t, 2> intPair(const ast::Expr *e, int64_t none);
// Numbers become 32-bit floats in the generated code: one that would round to 0 or to infinity
// there is reported (NumberRange) and false returned.
bool floatRepresentable(ArgType t, const ast::Expr &e, DiagnosticEngine &diags);

class ArgBinder {
public:
  explicit ArgBinder(DiagnosticEngine &diags) : diags_(diags) {}
  // Binds positional and named arguments to `sig`; nullptr where an optional one is absent.
  std::optional<std::vector<const ast::Expr *>> bind(const Signature &sig, const std::vector<ast::Arg> &args,
                                                     SourceRange callRange);

private:
  DiagnosticEngine &diags_;
};

} // namespace soma
