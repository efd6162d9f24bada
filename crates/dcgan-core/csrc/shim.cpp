// libtorch calls that the tch crate does not expose. Each function returns nullptr on success or
// the text of the C++ exception, valid until the next call on the same thread.
#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>
#include <cmath>
#include <string>

using at::Tensor;

static thread_local std::string last_error;

#define GUARD(body)                           \
  try {                                       \
    body                                      \
    return nullptr;                           \
  } catch (const std::exception &e) {         \
    last_error = e.what();                    \
    return last_error.c_str();                \
  } catch (...) {                             \
    last_error = "unknown C++ exception";     \
    return last_error.c_str();                \
  }

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

}  // extern "C"
