#pragma once
// See ../README.md. Only named behind smart pointers.
namespace gloo {
namespace transport {
class Device;
class UnboundBuffer;
}  // namespace transport
}  // namespace gloo
