// Line tables are built once per file; lookups are binary searches.
#include "support/SourceManager.h"

#include <algorithm>
#include <fstream>
#include <sstream>

namespace soma {

uint32_t SourceManager::addBuffer(std::string path, std::string text) {
  File f{std::move(path), std::move(text), {0}};
  for (uint32_t i = 0; i < f.text.size(); ++i)
    if (f.text[i] == '\n')
      f.lineStarts.push_back(i + 1);
  files_.push_back(std::move(f));
  return static_cast<uint32_t>(files_.size());
}

uint32_t SourceManager::addFile(const std::string &path, std::string &error) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    error = "cannot open file";
    return 0;
  }
  std::ostringstream ss;
  ss << in.rdbuf();
  if (in.bad()) {
    error = "cannot read file";
    return 0;
  }
  return addBuffer(path, ss.str());
}

LineCol SourceManager::lineCol(SourceLoc loc) const {
  const File &f = files_.at(loc.file - 1);
  auto it = std::upper_bound(f.lineStarts.begin(), f.lineStarts.end(), loc.offset);
  unsigned line = static_cast<unsigned>(it - f.lineStarts.begin());
  return {line, loc.offset - f.lineStarts[line - 1] + 1};
}

std::string_view SourceManager::lineText(SourceLoc loc) const {
  const File &f = files_.at(loc.file - 1);
  LineCol lc = lineCol(loc);
  size_t begin = f.lineStarts[lc.line - 1];
  size_t end = f.text.find('\n', begin);
  if (end == std::string::npos)
    end = f.text.size();
  if (end > begin && f.text[end - 1] == '\r')
    --end;
  return std::string_view(f.text).substr(begin, end - begin);
}

SourceLoc SourceManager::locAt(uint32_t file, unsigned line, unsigned col) const {
  const File &f = files_.at(file - 1);
  if (line == 0 || line > f.lineStarts.size())
    return {file, static_cast<uint32_t>(f.text.size())};
  return {file, f.lineStarts[line - 1] + (col ? col - 1 : 0)};
}

} // namespace soma
