// How every extern "C" function of the shim reports failure: its body runs in a try block; a C++
// exception becomes a message (valid until the thread's next failing call) that Rust turns into
// an error, so no exception crosses into Rust and none aborts the Node process.
#pragma once
#include <exception>
#include <string>

namespace dcgan_shim {
inline thread_local std::string last_error;
}

#define GUARD(...)                                      \
  try {                                                 \
    __VA_ARGS__                                         \
    return nullptr;                                     \
  } catch (const std::exception &e) {                   \
    dcgan_shim::last_error = e.what();                  \
    return dcgan_shim::last_error.c_str();              \
  } catch (...) {                                       \
    dcgan_shim::last_error = "unknown C++ exception";   \
    return dcgan_shim::last_error.c_str();              \
  }
