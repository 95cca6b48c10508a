#include "driver/Cache.h"

#include <cstdlib>
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
  // An ELF object, complete: written whole under a temporary name, then renamed.
  return object.size() > 64 && object.compare(0, 4, "\x7f" "ELF") == 0;
}

void writeCachedObject(const std::string &key, const std::string &object) {
  std::string dir = cacheDirectory();
  if (dir.empty())
    return;
  std::error_code ec;
  fs::create_directories(dir, ec);
  std::string tmp = pathOf(key) + ".tmp" + std::to_string(getpid());
  {
    std::ofstream out(tmp, std::ios::binary);
    if (!out)
      return;
    out.write(object.data(), static_cast<std::streamsize>(object.size()));
    if (!out.flush())
      return (void)fs::remove(tmp, ec);
  }
  fs::rename(tmp, pathOf(key), ec);
  if (ec)
    fs::remove(tmp, ec);
}

} // namespace soma
