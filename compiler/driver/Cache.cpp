#include "driver/Cache.h"

#include "soma/Safetensors.h"

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <unistd.h>

namespace soma {

namespace fs = std::filesystem;

std::string cacheDirectory() {
  if (const char *dir = std::getenv("SOMA_CACHE_DIR"))
    return dir;
  if (const char *xdg = std::getenv("XDG_CACHE_HOME"); xdg && *xdg)
    return std::string(xdg) + "/soma";
  if (const char *home = std::getenv("HOME"); home && *home)
    return std::string(home) + "/.cache/soma";
  return "";
}

namespace {

std::string pathOf(const std::string &key) { return cacheDirectory() + "/" + key + ".o"; }

// After each object: this tag and the object's size, so that a damaged entry is not used. An
// entry is read from its end: each trailer gives the start of its object and the end of the one
// before.
constexpr char kTag[8] = {'S', 'O', 'M', 'A', 'O', 'B', 'J', '1'};
constexpr size_t kTrailer = sizeof kTag + 8;

} // namespace

bool readCachedObjects(const std::string &key, std::vector<std::string> &objects) {
  if (cacheDirectory().empty())
    return false;
  std::ifstream in(pathOf(key), std::ios::binary);
  if (!in)
    return false;
  std::ostringstream s;
  s << in.rdbuf();
  std::string entry = s.str();
  objects.clear();
  for (size_t end = entry.size(); end > 0;) {
    if (end < kTrailer || entry.compare(end - kTrailer, sizeof kTag, kTag, sizeof kTag) != 0)
      return false;
    uint64_t size = 0;
    std::memcpy(&size, entry.data() + end - 8, 8);
    if (size > end - kTrailer)
      return false;
    size_t begin = end - kTrailer - size;
    if (entry.compare(begin, 4,
                      "\x7f"
                      "ELF") != 0)
      return false;
    objects.insert(objects.begin(), entry.substr(begin, size));
    end = begin;
  }
  return !objects.empty();
}

void writeCachedObjects(const std::string &key, const std::vector<std::string> &objects) {
  std::string dir = cacheDirectory();
  if (dir.empty())
    return;
  std::error_code ec;
  fs::create_directories(dir, ec);
  std::vector<uint64_t> sizes;
  for (const std::string &o : objects)
    sizes.push_back(o.size());
  std::vector<rt::FilePart> pieces;
  for (size_t i = 0; i < objects.size(); ++i) {
    pieces.push_back({objects[i].data(), objects[i].size()});
    pieces.push_back({kTag, sizeof kTag});
    pieces.push_back({&sizes[i], 8});
  }
  // Several compilations may store the same entry at once: each writes its own temporary file.
  rt::writeFileAtomically(pathOf(key), pieces,
                          pathOf(key) + ".tmp" + std::to_string(getpid())); // a failure only costs the cache
}

} // namespace soma
