#include "ast/Args.h"

#include <algorithm>
#include <cmath>
#include <limits>

namespace soma {

const char *typeName(ArgType t) {
  switch (t) {
  case ArgType::NumberList:
    return "a list of numbers >= 0, such as [1, 2.5]";
  case ArgType::PositiveInt:
    return "a positive integer";
  case ArgType::NonNegativeInt:
    return "an integer >= 0";
  case ArgType::PositiveIntPair:
    return "a positive integer or a pair of them, such as [1, 7]";
  case ArgType::NonNegativeIntPair:
    return "an integer >= 0 or a pair of them, such as [0, 3]";
  case ArgType::Padding:
    return "an integer >= 0, a pair of them such as [0, 3], \"same\" or \"valid\"";
  case ArgType::Int:
    return "an integer";
  case ArgType::Number:
    return "a number";
  case ArgType::PositiveNumber:
    return "a positive number";
  case ArgType::NonNegativeNumber:
    return "a number >= 0";
  case ArgType::UnitInterval:
    return "a number in [0, 1)";
  case ArgType::Fraction:
    return "a fraction in (0, 1)";
  case ArgType::String:
    return "a string";
  case ArgType::Bool:
    return "true or false";
  case ArgType::Expr:
    return "an expression";
  }
  return "";
}

std::string kindOf(const ast::Expr &e) {
  switch (e.kind) {
  case ast::Expr::Kind::Number:
    return e.isInteger ? "the integer " + ast::describe(e) : "the number " + ast::describe(e);
  case ast::Expr::Kind::String:
    return "the string " + ast::describe(e);
  case ast::Expr::Kind::Name:
    return "the name '" + e.text + "'";
  case ast::Expr::Kind::Call:
    return "a call to '" + e.text + "'";
  case ast::Expr::Kind::List:
    return "a list";
  case ast::Expr::Kind::Unary:
  case ast::Expr::Kind::Binary:
    return "the expression " + ast::describe(e);
  }
  return "";
}

// The name of a call, or the rendering of any other expression, for messages.
std::string calleeText(const ast::Expr &e) { return e.kind == ast::Expr::Kind::Call ? e.text : ast::describe(e); }

bool typeMatches(ArgType t, const ast::Expr &e) {
  using K = ast::Expr::Kind;
  switch (t) {
  case ArgType::NumberList:
    return e.kind == K::List && std::all_of(e.items.begin(), e.items.end(),
                                            [](const ast::Expr &i) { return i.kind == K::Number && i.number >= 0; });
  case ArgType::PositiveInt:
    return e.kind == K::Number && e.isInteger && e.number > 0;
  case ArgType::NonNegativeInt:
    return e.kind == K::Number && e.isInteger && e.number >= 0;
  case ArgType::Padding:
    return typeMatches(ArgType::NonNegativeIntPair, e) ||
           (e.kind == K::String && (e.text == "same" || e.text == "valid"));
  case ArgType::PositiveIntPair:
  case ArgType::NonNegativeIntPair: {
    ArgType one = t == ArgType::PositiveIntPair ? ArgType::PositiveInt : ArgType::NonNegativeInt;
    return typeMatches(one, e) ||
           (e.kind == K::List && e.items.size() == 2 && typeMatches(one, e.items[0]) && typeMatches(one, e.items[1]));
  }
  case ArgType::Int:
    return e.kind == K::Number && e.isInteger;
  case ArgType::Number:
    return e.kind == K::Number;
  case ArgType::PositiveNumber:
    return e.kind == K::Number && e.number > 0;
  case ArgType::NonNegativeNumber:
    return e.kind == K::Number && e.number >= 0;
  case ArgType::UnitInterval:
    return e.kind == K::Number && e.number >= 0 && e.number < 1;
  case ArgType::Fraction:
    return e.kind == K::Number && e.number > 0 && e.number < 1;
  case ArgType::String:
    return e.kind == K::String;
  case ArgType::Bool:
    return e.kind == K::Name && (e.text == "true" || e.text == "false");
  case ArgType::Expr:
    return true;
  }
  return false;
}

std::array<int64_t, 2> intPair(const ast::Expr *e, int64_t none) {
  if (!e)
    return {none, none};
  if (e->kind == ast::Expr::Kind::List)
    return {static_cast<int64_t>(e->items[0].number), static_cast<int64_t>(e->items[1].number)};
  return {static_cast<int64_t>(e->number), static_cast<int64_t>(e->number)};
}

bool floatRepresentable(ArgType t, const ast::Expr &e, DiagnosticEngine &diags) {
  bool real = t == ArgType::Number || t == ArgType::PositiveNumber || t == ArgType::NonNegativeNumber ||
              t == ArgType::UnitInterval || t == ArgType::Fraction;
  double x = std::abs(e.number);
  if (!real || e.kind != ast::Expr::Kind::Number || x == 0 ||
      (x >= std::numeric_limits<float>::min() && x <= std::numeric_limits<float>::max()))
    return true;
  diags.report(DiagKind::NumberRange, e.range, ast::describe(e),
               x < 1 ? "it rounds to 0 as a 32-bit float, which the model computes in (the smallest is about 1.2e-38)"
                     : "it is beyond a 32-bit float's range, which the model computes in (about 3.4e38)");
  return false;
}

std::optional<std::vector<const ast::Expr *>> ArgBinder::bind(const Signature &sig, const std::vector<ast::Arg> &args,
                                                              SourceRange callRange) {
  std::vector<const ast::Expr *> bound(sig.params.size(), nullptr);
  bool ok = true;
  size_t positional = 0;
  for (const ast::Arg &a : args) {
    size_t index;
    if (a.name.empty()) {
      index = positional++;
      if (index >= sig.params.size()) {
        diags_.report(DiagKind::TooManyArguments, a.value.range, sig.name, sig.params.size(), args.size());
        return std::nullopt;
      }
    } else {
      index = sig.params.size();
      for (size_t i = 0; i < sig.params.size(); ++i)
        if (a.name == sig.params[i].name)
          index = i;
      if (index == sig.params.size()) {
        std::string valid;
        for (const Param &p : sig.params)
          valid += (valid.empty() ? "" : ", ") + std::string(p.name);
        diags_.report(DiagKind::UnknownArgument, a.nameRange, sig.name, a.name, valid.empty() ? "none" : valid);
        ok = false;
        continue;
      }
    }
    if (bound[index]) {
      diags_.report(DiagKind::DuplicateArgument, a.name.empty() ? a.value.range : a.nameRange, sig.params[index].name);
      ok = false;
      continue;
    }
    if (!typeMatches(sig.params[index].type, a.value)) {
      diags_.report(DiagKind::ArgumentType, a.value.range, sig.params[index].name, sig.name,
                    typeName(sig.params[index].type), kindOf(a.value));
      ok = false;
      continue;
    }
    if (!floatRepresentable(sig.params[index].type, a.value, diags_)) {
      ok = false;
      continue;
    }
    bound[index] = &a.value;
  }
  for (size_t i = 0; i < sig.params.size(); ++i)
    if (ok && sig.params[i].required && !bound[i]) {
      diags_.report(DiagKind::MissingArgument, callRange, sig.name, sig.params[i].name);
      ok = false;
    }
  if (!ok)
    return std::nullopt;
  return bound;
}

} // namespace soma
