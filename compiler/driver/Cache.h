// The content-addressed cache of machine code: an object file per digest of the LLVM IR and the
// target (codegen::cacheKey), in $SOMA_CACHE_DIR, else $XDG_CACHE_HOME/soma, else
// ~/.cache/soma. A repeated `soma run` or `soma build` of an unchanged model skips LLVM's
// optimizer and code generator. The cache is an optimization only: when it cannot be read or
// written, compilation goes on without it.
#pragma once
#include <string>

namespace soma {

// The cache directory ("" when there is none).
std::string cacheDirectory();
bool readCachedObject(const std::string &key, std::string &object);
void writeCachedObject(const std::string &key, const std::string &object);

} // namespace soma
