#pragma once

#include <string>

#include "sockstate/common/error.h"

namespace sockstate {

// A shared library loaded at run time (dlopen, RTLD_NOW | RTLD_LOCAL) for what only some
// runs use, its functions bound by name: a run that does not use it does not load it nor
// the libraries it brings (libmicrohttpd brings GnuTLS; librdkafka OpenSSL, SASL, zstd and
// lz4). Never closed: what was bound stays valid for the life of the process.
class SharedLibrary {
 public:
  // Fails with dlerror()'s text when the library cannot be loaded.
  static Result<SharedLibrary> open(const char* soname);

  // Binds `fn` to the library's function `name`; false when it has none, and the first
  // name missing is kept for missing().
  template <typename F>
  bool bind(const char* name, F& fn) {
    fn = reinterpret_cast<F>(symbol(name));
    if (fn == nullptr && missing_.empty()) {
      missing_ = name;
    }
    return fn != nullptr;
  }
  // The first name bind() did not find; empty when every one was found.
  [[nodiscard]] const std::string& missing() const { return missing_; }

 private:
  explicit SharedLibrary(void* handle) : handle_(handle) {}
  [[nodiscard]] void* symbol(const char* name) const;

  void* handle_ = nullptr;
  std::string missing_;
};

}  // namespace sockstate
