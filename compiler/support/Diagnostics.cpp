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
  out_ << sm_.path(range.begin.file) << ":" << lc.line << ":" << lc.col << ": " << label << ": " << message << " ["
       << diagName(kind) << "]\n";
  // The line as a terminal shows it: ill-formed UTF-8 and control characters become '?', and the
  // caret counts characters, not bytes.
  std::string_view line = sm_.lineText(range.begin);
  std::string shown, caret;
  bool placed = false;
  size_t caretAt = lc.col - 1, caretEnd = caretAt + 1;
  if (range.end.valid() && range.end.file == range.begin.file && range.end.offset > range.begin.offset)
    caretEnd = caretAt + (range.end.offset - range.begin.offset);
  for (size_t i = 0; i < line.size();) {
    size_t n = utf8Sequence(line, i);
    unsigned char c = static_cast<unsigned char>(line[i]);
    bool printable = n > 1 || (n == 1 && (c >= 0x20 || c == '\t') && c != 0x7f);
    if (printable)
      shown.append(line.substr(i, n));
    else
      shown += '?';
    if (i < caretAt)
      caret += c == '\t' ? '\t' : ' ';
    else if (!placed)
      caret += '^', placed = true;
    else if (i < caretEnd)
      caret += '~';
    i += std::max<size_t>(n, 1);
  }
  if (!placed)
    caret += '^';
  out_ << shown << "\n";
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
