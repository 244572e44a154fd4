#include "sockstate/common/shared_library.h"

#include <dlfcn.h>

namespace sockstate {

Result<SharedLibrary> SharedLibrary::open(const char* soname) {
  void* handle = ::dlopen(soname, RTLD_NOW | RTLD_LOCAL);
  if (handle == nullptr) {
    const char* why = ::dlerror();
    return Error{0, why != nullptr ? why : std::string("cannot load ") + soname};
  }
  return SharedLibrary(handle);
}

void* SharedLibrary::symbol(const char* name) const {
  return ::dlsym(handle_, name);
}

}  // namespace sockstate
