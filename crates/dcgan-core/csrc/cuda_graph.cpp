// CUDA graph capture of a training step: libdcgan_cuda_graph.so, loaded at run time by
// src/cuda_graph.rs. It is not part of the addon: at::cuda::CUDAGraph lives in libtorch_cuda.so,
// which the one-binary addon does not link, and its headers need the CUDA runtime's. It is built
// against a CUDA libtorch (benchmark/gpu/build-cuda-graph.sh) and must match that torch version.
//
// What a caller does with it (the order PyTorch's torch.cuda.graph follows):
//   dcgan_graph_new → warm-up steps between dcgan_graph_enter and dcgan_graph_exit (on the
//   graph's side stream: cuDNN's autotuning and lazy handles happen outside the capture) →
//   dcgan_graph_enter, dcgan_graph_capture_begin, one step, dcgan_graph_capture_end,
//   dcgan_graph_exit → dcgan_graph_replay per step, after copying the step's inputs into the
//   tensors the captured step read.
// Each function returns nullptr on success or the text of the C++ exception, valid until the next
// call on the same thread.
#include <ATen/ATen.h>
#include <ATen/cuda/CUDAGraph.h>
#include <c10/cuda/CUDACachingAllocator.h>
#include <c10/cuda/CUDAFunctions.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <exception>
#include <optional>
#include <string>

namespace {

thread_local std::string last_error;

template <typename F>
const char *guarded(F &&f) {
  try {
    f();
    return nullptr;
  } catch (const c10::Error &e) {
    last_error = e.what_without_backtrace();
  } catch (const std::exception &e) {
    last_error = e.what();
  } catch (...) {
    last_error = "unknown C++ exception";
  }
  return last_error.c_str();
}

struct Graph {
  explicit Graph(c10::DeviceIndex device)
      : device(device), side(c10::cuda::getStreamFromPool(false, device)) {}
  c10::DeviceIndex device;
  // Capture needs a stream other than the default one; warm-up runs there too.
  c10::cuda::CUDAStream side;
  std::optional<c10::cuda::CUDAStreamGuard> on_side;
  at::cuda::CUDAGraph graph;
  bool captured = false;
};

}  // namespace

extern "C" {

const char *dcgan_graph_new(int device, void **out) {
  return guarded([&] { *out = new Graph(static_cast<c10::DeviceIndex>(device)); });
}

// Makes the graph's side stream and device current, after the work enqueued so far on the
// graph's device (a device-wide wait: this happens for the few warm-up steps and the capture only).
// The stream guard sets the device too and keeps it until dcgan_graph_exit: capture_begin takes
// the current device's stream, which for a GPU other than the thread's current one would
// otherwise be that device's default stream, which a capture refuses.
const char *dcgan_graph_enter(void *g) {
  return guarded([&] {
    auto *graph = static_cast<Graph *>(g);
    graph->on_side.emplace(graph->side);
    c10::cuda::device_synchronize();
  });
}

// Back to the previous stream (first, whatever happens next), after the side stream's work.
const char *dcgan_graph_exit(void *g) {
  return guarded([&] {
    auto *graph = static_cast<Graph *>(g);
    graph->on_side.reset();
    graph->side.synchronize();
  });
}

// As torch.cuda.graph does before a capture: the blocks cached for other streams (warm-up on the
// side stream) are returned first, so that the graph's private pool does not come on top of them.
const char *dcgan_graph_capture_begin(void *g) {
  return guarded([&] {
    c10::cuda::CUDACachingAllocator::emptyCache();
    static_cast<Graph *>(g)->graph.capture_begin();
  });
}

const char *dcgan_graph_capture_end(void *g) {
  return guarded([&] {
    auto *graph = static_cast<Graph *>(g);
    graph->graph.capture_end();
    graph->captured = true;
  });
}

// Launches the captured step on the current stream (after the copies into its inputs).
const char *dcgan_graph_replay(void *g) {
  return guarded([&] {
    auto *graph = static_cast<Graph *>(g);
    if (!graph->captured) throw std::runtime_error("replay before a capture ended");
    graph->graph.replay();
  });
}

void dcgan_graph_free(void *g) {
  try {
    delete static_cast<Graph *>(g);
  } catch (...) {
  }
}

}  // extern "C"
