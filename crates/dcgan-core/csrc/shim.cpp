// libtorch calls that the tch crate does not expose. Each function returns nullptr on success or
// the text of the C++ exception, valid until the next call on the same thread.
#include "guard.h"
#include <ATen/ATen.h>
#include <ATen/autocast_mode.h>
#include <ATen/core/dispatch/Dispatcher.h>
#include <ATen/core/grad_mode.h>
#include <c10/core/CachingDeviceAllocator.h>
#include <c10/core/Event.h>
#include <c10/core/StreamGuard.h>
#include <c10/core/impl/VirtualGuardImpl.h>
#include <c10/core/impl/DeviceGuardImplInterface.h>
#include <torch/csrc/autograd/custom_function.h>
#include <cmath>
#include <map>
#include <mutex>
#include <stdexcept>
#include <string>
#include <vector>

using at::Tensor;


// A 4×4, stride-2, padding-1 (transposed) convolution links a "small" side (half the resolution)
// and a "big" side: a convolution maps big → small, a transposed one small → big. Every part of it
// is a matrix product between the small side's rows (one per pixel, channels-last) and either the
// weight or the big side's 4×4 patches ("cols"), plus a gather (unfold) or scatter-add (fold):
//   gather:  small = cols(big) · Wᵀ         a convolution's forward, a transposed one's input gradient
//   scatter: big = fold(small · W)          a transposed convolution's forward, a convolution's input gradient
//   weight:  grad_w = smallᵀ · cols(big)    both
// with W the Cs×Cb×4×4 weight as a Cs×(4·4·Cb) matrix, columns in (kh, kw, Cb) order, which is
// the memory order of a channels-last weight.

// Small-side pixels as rows: N·H·W × C (a view when `t` is channels-last).
static at::Tensor rows_of(const at::Tensor &t) {
  return t.permute({0, 2, 3, 1}).reshape({t.size(0) * t.size(2) * t.size(3), t.size(1)});
}

// The weight as Cs × (kh, kw, Cb).
static at::Tensor weight_matrix(const at::Tensor &w) {
  return w.permute({0, 2, 3, 1}).reshape({w.size(0), 16 * w.size(1)});
}

// The 4×4 patch of padded `big` under each small-side pixel: N·h·w × (kh, kw, Cb).
static at::Tensor cols_of(const at::Tensor &big) {
  const int64_t n = big.size(0), cb = big.size(1), h = big.size(2) / 2, w = big.size(3) / 2;
  at::Tensor padded = at::constant_pad_nd(big, {1, 1, 1, 1});
  return padded.unfold(2, 4, 2).unfold(3, 4, 2)        // n, cb, h, w, 4, 4
      .permute({0, 2, 3, 4, 5, 1})                       // n, h, w, 4, 4, cb
      .reshape({n * h * w, 16 * cb});
}

// `small` (N×Cs×h×w) times W, each pixel's 4×4×Cb patch added onto the big side: N×Cb×2h×2w,
// channels-last.
static at::Tensor scatter(const at::Tensor &small, const at::Tensor &w) {
  const int64_t n = small.size(0), h = small.size(2), wd = small.size(3), cb = w.size(1);
  at::Tensor patches = at::mm(rows_of(small), weight_matrix(w))   // n·h·w × (kh, kw, cb)
                           .view({n, h * wd, 16, cb})
                           .permute({0, 3, 2, 1})                  // n, cb, (kh, kw), h·w: col2im's order
                           .reshape({n, cb * 16, h * wd});
  return at::col2im(patches, {2 * h, 2 * wd}, {4, 4}, {1, 1}, {1, 1}, {2, 2})
      .contiguous(at::MemoryFormat::ChannelsLast);
}

// The gradient with respect to the small side, from the big side's patches: N×Cs×h×w, channels-last.
static at::Tensor gather(const at::Tensor &cols, const at::Tensor &w, const at::Tensor &like) {
  return at::mm(cols, weight_matrix(w).t())
      .view({like.size(0), like.size(2), like.size(3), w.size(0)})
      .permute({0, 3, 1, 2});
}

// grad_w = smallᵀ · cols(big), returned Cs×Cb×4×4 with channels-last strides.
static at::Tensor weight_grad(const at::Tensor &small, const at::Tensor &cols, int64_t cb) {
  return at::mm(rows_of(small).t(), cols).view({small.size(1), 4, 4, cb}).permute({0, 3, 1, 2});
}

// Which parts `ConvByMatmul` computes as matrix products (bit flags; values shared with ffi.rs).
enum MatmulPart : int64_t {
  kWeightGrad = 1,  // the weight gradient
  kGatherGrad = 2,  // a transposed convolution's input gradient (shares cols with kWeightGrad)
  kScatter = 4,     // a transposed convolution's forward, a convolution's input gradient
};

// A 4×4 stride-2 padding-1 (transposed) convolution whose `parts` run as matrix products and the
// rest as libtorch's (oneDNN) convolutions: oneDNN is far below a matrix product's speed for
// some shapes (weight gradients of wide layers at a 4×4 side; the image-side layers with 1 or 3
// channels), and these give the same sums in another order.
struct ConvByMatmul : public torch::autograd::Function<ConvByMatmul> {
  static at::Tensor forward(torch::autograd::AutogradContext *ctx, const at::Tensor &x,
                            const at::Tensor &w, const std::optional<at::Tensor> &bias,
                            bool transposed, int64_t parts) {
    ctx->save_for_backward({x, w});
    ctx->saved_data["transposed"] = transposed;
    ctx->saved_data["parts"] = parts;
    // An absent bias is no input of the autograd node: it has edges for x and w only.
    ctx->saved_data["has_bias"] = bias.has_value();
    if (transposed && (parts & kScatter)) {
      at::Tensor y = scatter(x, w);
      return bias ? y.add_(bias->view({1, -1, 1, 1})) : y;
    }
    return transposed ? at::conv_transpose2d(x, w, bias, 2, 1) : at::conv2d(x, w, bias, 2, 1);
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext *ctx,
                                                 torch::autograd::variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    const at::Tensor &x = saved[0], &w = saved[1];
    const bool transposed = ctx->saved_data["transposed"].toBool();
    const int64_t parts = ctx->saved_data["parts"].toInt();
    // Channels-last, where the rows of the products are views; not x's suggested format, which
    // is ambiguous for the image side's single channel.
    const at::Tensor go = grads[0].contiguous(at::MemoryFormat::ChannelsLast);
    const at::Tensor &small = transposed ? x : go, &big = transposed ? go : x;
    const bool want_x = ctx->needs_input_grad(0), want_w = ctx->needs_input_grad(1);
    const bool x_by_matmul = want_x && (parts & (transposed ? kGatherGrad : kScatter));
    const bool w_by_matmul = want_w && (parts & kWeightGrad);
    at::Tensor gx, gw, gb;
    at::Tensor cols;
    if (w_by_matmul || (x_by_matmul && transposed)) cols = cols_of(big);
    if (x_by_matmul) gx = transposed ? gather(cols, w, x) : scatter(go, w);
    if (w_by_matmul) gw = weight_grad(small, cols, w.size(1));
    const bool x_by_onednn = want_x && !x_by_matmul, w_by_onednn = want_w && !w_by_matmul;
    if (x_by_onednn || w_by_onednn) {
      auto g = at::convolution_backward(go, x, w, std::nullopt, {2, 2}, {1, 1}, {1, 1}, transposed,
                                        {0, 0}, 1, {x_by_onednn, w_by_onednn, false});
      if (x_by_onednn) gx = std::get<0>(g);
      if (w_by_onednn) gw = std::get<1>(g);
    }
    if (ctx->saved_data["has_bias"].toBool() && ctx->needs_input_grad(2)) gb = go.sum({0, 2, 3});
    return {gx, gw, gb, at::Tensor(), at::Tensor()};
  }
};


extern "C" {

// leaky_relu with an explicit slope (tch only binds the 0.01 default). In place when asked:
// safe after BatchNorm or a convolution, whose backward does not need their output.
const char *dcgan_leaky_relu(Tensor *x, double slope, int in_place, Tensor **out) {
  GUARD(
    Tensor r = in_place ? at::leaky_relu_(*x, slope) : at::leaky_relu(*x, slope);
    *out = new Tensor(r);
  )
}

// A copy of `x` (or `x` itself) laid out channels-last (NHWC in memory). tch has no
// memory-format argument.
const char *dcgan_channels_last(Tensor *x, Tensor **out) {
  GUARD(
    *out = new Tensor(x->contiguous(at::MemoryFormat::ChannelsLast));
  )
}

// One step of torch.optim.Adam (single-tensor path, no weight decay, no amsgrad), written with
// the same calls in the same order as torch/optim/adam.py so that results match bit for bit.
const char *dcgan_adam_step(Tensor **params, Tensor **grads, Tensor **exp_avgs,
                            Tensor **exp_avg_sqs, int64_t n, double lr, double beta1,
                            double beta2, double eps, int64_t step) {
  GUARD(
    at::NoGradGuard no_grad;
    const double bias_correction1 = 1.0 - std::pow(beta1, (double)step);
    const double bias_correction2 = 1.0 - std::pow(beta2, (double)step);
    const double step_size = lr / bias_correction1;
    const double bias_correction2_sqrt = std::pow(bias_correction2, 0.5);
    for (int64_t i = 0; i < n; ++i) {
      Tensor &param = *params[i];
      const Tensor &grad = *grads[i];
      exp_avgs[i]->lerp_(grad, 1.0 - beta1);
      exp_avg_sqs[i]->mul_(beta2).addcmul_(grad, grad, 1.0 - beta2);
      Tensor denom = (exp_avg_sqs[i]->sqrt() / bias_correction2_sqrt).add_(eps);
      param.addcdiv_(*exp_avgs[i], denom, -step_size);
    }
  )
}

// torch.optim.Adam's `capturable` single-tensor path: the step count is a tensor on the device
// (incremented here) and the bias corrections are computed from it there, so that a captured
// CUDA graph replays correct updates at every later step (host numbers would be frozen into it).
const char *dcgan_adam_step_on_device(Tensor **params, Tensor **grads, Tensor **exp_avgs,
                                      Tensor **exp_avg_sqs, int64_t n, double lr, double beta1,
                                      double beta2, double eps, Tensor *step) {
  GUARD(
    at::NoGradGuard no_grad;
    step->add_(1);
    const Tensor bias_correction1 = 1 - at::pow(beta1, *step);
    const Tensor bias_correction2 = 1 - at::pow(beta2, *step);
    const Tensor step_size_neg = (bias_correction1.reciprocal() * lr).neg();
    const Tensor bias_correction2_sqrt = bias_correction2.sqrt();
    for (int64_t i = 0; i < n; ++i) {
      Tensor &param = *params[i];
      const Tensor &grad = *grads[i];
      exp_avgs[i]->lerp_(grad, 1.0 - beta1);
      exp_avg_sqs[i]->mul_(beta2).addcmul_(grad, grad, 1.0 - beta2);
      Tensor denom = (exp_avg_sqs[i]->sqrt() / (bias_correction2_sqrt * step_size_neg))
                         .add_(step_size_neg.reciprocal() * eps);
      param.addcdiv_(*exp_avgs[i], denom);
    }
  )
}

// torch.optim.Adam(fused=True): libtorch's one-kernel update per tensor list (ATen's
// _fused_adam_, on the CPU and on CUDA), 3-4× faster than the seven element-wise passes above.
// Its step count is a float32 tensor on the parameters' device, incremented there (graph-safe,
// like the capturable path) before the kernel reads it, as torch.optim.Adam does.
const char *dcgan_adam_step_fused(Tensor **params, Tensor **grads, Tensor **exp_avgs,
                                  Tensor **exp_avg_sqs, int64_t n, double lr, double beta1,
                                  double beta2, double eps, Tensor *step) {
  GUARD(
    at::NoGradGuard no_grad;
    std::vector<Tensor> p, g, m, v, steps;
    for (int64_t i = 0; i < n; ++i) {
      p.push_back(*params[i]);
      g.push_back(*grads[i]);
      m.push_back(*exp_avgs[i]);
      v.push_back(*exp_avg_sqs[i]);
      steps.push_back(*step);
    }
    step->add_(1);
    at::_fused_adam_(p, g, m, v, {}, steps, lr, beta1, beta2, /*weight_decay=*/0.0, eps,
                     /*amsgrad=*/false, /*maximize=*/false);
  )
}

// A pinned copy of host tensor `x`. tch's pin_memory always passes a device, which libtorch 2.11
// answers with two deprecation warnings on stderr at every call (every step's batch and noise).
const char *dcgan_pin_memory(Tensor *x, Tensor **out) {
  GUARD(
    *out = new Tensor(x->pin_memory());
  )
}

// `ConvByMatmul` of `x` and `w` (and `bias`, which may be null) with `parts` as matrix products.
const char *dcgan_conv_by_matmul(Tensor *x, Tensor *w, Tensor *bias, int transposed, int64_t parts,
                                 Tensor **out) {
  GUARD(
    const std::optional<at::Tensor> b = bias ? std::optional<at::Tensor>(*bias) : std::nullopt;
    *out = new Tensor(ConvByMatmul::apply(*x, *w, b, transposed != 0, parts));
  )
}

// The device types an autocast region may be opened for (values of c10::DeviceType).
static at::DeviceType autocast_device(int device_type) {
  switch (device_type) {
    case 0: return at::kCPU;
    case 1: return at::kCUDA;
    default: throw std::invalid_argument("autocast: device type must be 0 (cpu) or 1 (cuda)");
  }
}

// What torch.autocast(device, dtype=torch.bfloat16).__enter__ does: remembers the thread's
// autocast state in `prev` (enabled, dtype, cache enabled), then enables autocast for the device
// with bfloat16, increments the nesting and enables the weight-cast cache.
const char *dcgan_autocast_enter_bf16(int device_type, int *prev) {
  GUARD(
    const at::DeviceType device = autocast_device(device_type);
    prev[0] = at::autocast::is_autocast_enabled(device);
    prev[1] = static_cast<int>(at::autocast::get_autocast_dtype(device));
    prev[2] = at::autocast::is_autocast_cache_enabled();
    at::autocast::set_autocast_enabled(device, true);
    at::autocast::set_autocast_dtype(device, at::kBFloat16);
    at::autocast::increment_nesting();
    at::autocast::set_autocast_cache_enabled(true);
  )
}

// What torch.autocast.__exit__ does: leaving the outermost region clears the cache of weights
// cast to bfloat16 (they change in the optimiser step), then the state from `prev` is restored.
const char *dcgan_autocast_exit(int device_type, const int *prev) {
  GUARD(
    const at::DeviceType device = autocast_device(device_type);
    if (at::autocast::decrement_nesting() == 0) {
      at::autocast::clear_cache();
    }
    at::autocast::set_autocast_enabled(device, prev[0] != 0);
    at::autocast::set_autocast_dtype(device, static_cast<at::ScalarType>(prev[1]));
    at::autocast::set_autocast_cache_enabled(prev[2] != 0);
  )
}

// Whether oneDNN runs bfloat16 convolutions on this CPU: the check PyTorch itself makes
// (torch.ops.mkldnn._is_mkldnn_bf16_supported), reached through the dispatcher.
const char *dcgan_cpu_bf16_supported(int *out) {
  GUARD(
    auto op = c10::Dispatcher::singleton()
                  .findSchemaOrThrow("mkldnn::_is_mkldnn_bf16_supported", "")
                  .typed<bool()>();
    *out = op.call() ? 1 : 0;
  )
}

// An event recorded on the current stream of GPU `device_index`, after the work enqueued so far:
// waiting for it waits for that work only, not for what is enqueued after it. c10's
// device-independent Event reaches CUDA through the guard that libtorch_cuda registers when it is
// loaded, so this builds against the CPU headers; without CUDA it fails with libtorch's message.
const char *dcgan_event_record(int device_index, void **out) {
  GUARD(
    const c10::Device device(c10::DeviceType::CUDA, static_cast<c10::DeviceIndex>(device_index));
    const auto *guard = c10::impl::getDeviceGuardImpl(c10::DeviceType::CUDA);
    auto event = std::make_unique<c10::Event>(c10::DeviceType::CUDA);
    event->record(guard->getStream(device));
    *out = event.release();
  )
}

const char *dcgan_event_synchronize(void *event) {
  GUARD(
    static_cast<c10::Event *>(event)->synchronize();
  )
}

// Whether the work before the event is done, without waiting for it.
const char *dcgan_event_query(void *event, int *done) {
  GUARD(
    *done = static_cast<c10::Event *>(event)->query() ? 1 : 0;
  )
}

void dcgan_event_free(void *event) { delete static_cast<c10::Event *>(event); }

// The stream that uploads batches to GPU `device`: one per device, from libtorch's pool.
static c10::Stream copy_stream(const c10::impl::VirtualGuardImpl &impl, const c10::Device &device) {
  static std::mutex mutex;
  static std::map<c10::DeviceIndex, c10::Stream> streams;
  std::lock_guard<std::mutex> lock(mutex);
  auto found = streams.find(device.index());
  if (found == streams.end()) found = streams.emplace(device.index(), impl.getStreamFromGlobalPool(device)).first;
  return found->second;
}

// Host tensor `pinned` (page-locked) copied to GPU `device_index` on a copy stream of its own, and
// the current stream made to wait for that copy: enqueued while the GPU still runs the previous
// step (the host runs a step ahead when it does not wait for the step's numbers), the copy overlaps
// that step instead of queueing behind it on the step's stream.
const char *dcgan_upload_on_copy_stream(Tensor *pinned, int device_index, Tensor **out) {
  GUARD(
    const c10::Device device(c10::DeviceType::CUDA, static_cast<c10::DeviceIndex>(device_index));
    const c10::impl::VirtualGuardImpl impl(c10::DeviceType::CUDA);
    const c10::Stream compute = impl.getStream(device);
    const c10::Stream copy = copy_stream(impl, device);
    at::Tensor uploaded;
    {
      const c10::StreamGuard on_copy_stream(copy);
      uploaded = pinned->to(device, pinned->scalar_type(), /*non_blocking=*/true);
    }
    c10::Event copied(c10::DeviceType::CUDA);
    copied.record(copy);
    copied.block(compute);
    // The caching allocator ties the block to the copy stream, where it was allocated; without
    // this it could hand the block to the next batch's copy while the step still reads it.
    impl.recordDataPtrOnStream(uploaded.storage().data_ptr(), compute);
    *out = new Tensor(uploaded);
  )
}

// Free and total bytes of GPU `device_index` (cudaMemGetInfo, through the allocator CUDA's
// library registers when it loads: nothing here names CUDA's API). Without CUDA, c10's error.
const char *dcgan_device_memory(int device_index, uint64_t *free_bytes, uint64_t *total_bytes) {
  GUARD(
    const auto info = c10::getDeviceAllocator(c10::DeviceType::CUDA)->getMemoryInfo(static_cast<c10::DeviceIndex>(device_index));
    *free_bytes = info.first;
    *total_bytes = info.second;
  )
}

}  // extern "C"
