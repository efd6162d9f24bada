#pragma once
// See ../README.md. ProcessGroupGloo::setTimeout (inline) calls Context::setTimeout; declared only.
#include <chrono>
namespace gloo {
class Context {
 public:
  void setTimeout(std::chrono::milliseconds timeout);
};
}  // namespace gloo
