// The content-addressed cache of machine code: an object file per digest of the LLVM IR and the
// target (codegen::cacheKey), in $SOMA_CACHE_DIR, else $XDG_CACHE_HOME/soma, else
// ~/.cache/soma. A repeated `soma run` or `soma build` of an unchanged model skips LLVM's
// optimizer and code generator. The cache is an optimization only: when it cannot be read or
// written, compilation goes on without it.
#pragma once
#include <string>
#include <vector>

namespace soma {

// The cache directory ("" when there is none).
std::string cacheDirectory();
// An entry holds one or more ELF objects (the parts of a parallel compilation).
bool readCachedObjects(const std::string &key, std::vector<std::string> &objects);
void writeCachedObjects(const std::string &key, const std::vector<std::string> &objects);

} // namespace soma
