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

// After the object: this tag and the object's size, so that a damaged entry is not used.
constexpr char kTag[8] = {'S', 'O', 'M', 'A', 'O', 'B', 'J', '1'};
constexpr size_t kTrailer = sizeof kTag + 8;

} // namespace

bool readCachedObject(const std::string &key, std::string &object) {
  if (cacheDirectory().empty())
    return false;
  std::ifstream in(pathOf(key), std::ios::binary);
  if (!in)
    return false;
  std::ostringstream s;
  s << in.rdbuf();
  object = s.str();
  if (object.size() < kTrailer || object.compare(object.size() - kTrailer, sizeof kTag, kTag, sizeof kTag) != 0)
    return false;
  uint64_t size = 0;
  std::memcpy(&size, object.data() + object.size() - 8, 8);
  object.resize(object.size() - kTrailer);
  return size == object.size() && object.compare(0, 4, "\x7f" "ELF") == 0;
}

void writeCachedObject(const std::string &key, const std::string &object) {
  std::string dir = cacheDirectory();
  if (dir.empty())
    return;
  std::error_code ec;
  fs::create_directories(dir, ec);
  uint64_t size = object.size();
  // Several compilations may store the same entry at once: each writes its own temporary file.
  rt::writeFileAtomically(pathOf(key), {{object.data(), object.size()}, {kTag, sizeof kTag}, {&size, 8}},
                          pathOf(key) + ".tmp" + std::to_string(getpid())); // a failure only costs the cache
}

} // namespace soma
