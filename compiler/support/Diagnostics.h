// Diagnostics as data: every kind is declared in Diagnostics.def; the engine renders
//   file:line:col: error: message [Kind]
//   <source line>
//       ^~~~
// User errors go through here; compiler bugs are assertions.
#pragma once
#include "support/SourceManager.h"

#include <fmt/format.h>
#include <iosfwd>
#include <string>

namespace soma {

enum class DiagKind {
#define DIAG(Kind, Severity, Format) Kind,
#include "support/Diagnostics.def"
};

enum class Severity { Error, Warning, Note };

const char *diagName(DiagKind kind);
Severity diagSeverity(DiagKind kind);
const char *diagFormat(DiagKind kind);

class DiagnosticEngine {
public:
  DiagnosticEngine(const SourceManager &sm, std::ostream &out) : sm_(sm), out_(out) {}

  template <typename... Args> void report(DiagKind kind, SourceRange range, Args &&...args) {
    emit(kind, range, fmt::vformat(diagFormat(kind), fmt::make_format_args(args...)));
  }
  void emit(DiagKind kind, SourceRange range, const std::string &message);

  unsigned errorCount() const { return errors_; }
  bool hadError() const { return errors_ != 0; }

private:
  const SourceManager &sm_;
  std::ostream &out_;
  unsigned errors_ = 0;
};

// Damerau-free Levenshtein distance; used to suggest the closest known name.
unsigned editDistance(std::string_view a, std::string_view b);
// Returns "; did you mean 'x'?" when some candidate is close to `name`, else "".
template <typename Range> std::string suggest(std::string_view name, const Range &candidates) {
  std::string best;
  unsigned bestDist = ~0u;
  for (const auto &c : candidates) {
    std::string_view cv(c);
    unsigned d = editDistance(name, cv);
    if (d < bestDist) {
      bestDist = d;
      best = std::string(cv);
    }
  }
  if (best.empty() || bestDist > std::max<size_t>(1, name.size() / 3 + 1))
    return "";
  return "; did you mean '" + best + "'?";
}

} // namespace soma
