// Rendering of diagnostics and the closest-name helper.
#include "support/Diagnostics.h"

#include <algorithm>
#include <ostream>
#include <vector>

namespace soma {

namespace {
struct DiagInfo {
  const char *name;
  Severity severity;
  const char *format;
};
constexpr DiagInfo kDiags[] = {
#define DIAG(Kind, Sev, Format) {#Kind, Severity::Sev, Format},
#include "support/Diagnostics.def"
};
} // namespace

const char *diagName(DiagKind k) { return kDiags[static_cast<int>(k)].name; }
Severity diagSeverity(DiagKind k) { return kDiags[static_cast<int>(k)].severity; }
const char *diagFormat(DiagKind k) { return kDiags[static_cast<int>(k)].format; }

void DiagnosticEngine::emit(DiagKind kind, SourceRange range, const std::string &message) {
  Severity sev = diagSeverity(kind);
  const char *label = sev == Severity::Error ? "error" : sev == Severity::Warning ? "warning" : "note";
  if (sev == Severity::Error)
    ++errors_;
  if (!range.begin.valid()) {
    out_ << "soma: " << label << ": " << message << " [" << diagName(kind) << "]\n";
    return;
  }
  LineCol lc = sm_.lineCol(range.begin);
  out_ << sm_.path(range.begin.file) << ":" << lc.line << ":" << lc.col << ": " << label << ": "
       << message << " [" << diagName(kind) << "]\n";
  std::string_view line = sm_.lineText(range.begin);
  out_ << line << "\n";
  std::string caret;
  for (unsigned i = 0; i + 1 < lc.col && i < line.size(); ++i)
    caret += line[i] == '\t' ? '\t' : ' ';
  caret += '^';
  if (range.end.valid() && range.end.file == range.begin.file && range.end.offset > range.begin.offset) {
    size_t width = range.end.offset - range.begin.offset;
    size_t room = line.size() >= lc.col ? line.size() - lc.col : 0; // stay on this line
    for (size_t i = 1; i < std::min(width, room + 1); ++i)
      caret += '~';
  }
  out_ << caret << "\n";
}

unsigned editDistance(std::string_view a, std::string_view b) {
  std::vector<unsigned> prev(b.size() + 1), cur(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j)
    prev[j] = static_cast<unsigned>(j);
  for (size_t i = 1; i <= a.size(); ++i) {
    cur[0] = static_cast<unsigned>(i);
    for (size_t j = 1; j <= b.size(); ++j)
      cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] == b[j - 1] ? 0u : 1u)});
    std::swap(prev, cur);
  }
  return prev[b.size()];
}

} // namespace soma
