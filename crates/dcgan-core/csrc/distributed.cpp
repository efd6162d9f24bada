// Data-parallel training on libtorch's own distributed engine (c10d): a TCPStore for the
// rendezvous and a ProcessGroupGloo for the collectives, as torch.distributed builds them for
// init_process_group("gloo"). Each function returns nullptr on success or the text of the C++
// exception (Gloo reports a dead peer or a timeout by throwing), valid until the next call on the
// same thread. The Gloo headers are not in the wheel: see gloo-decl/gloo/README.md.
#define USE_C10D_GLOO 1
#include "guard.h"
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#include <torch/csrc/autograd/custom_function.h>

#include <chrono>
#include <string>

namespace {

// A process group: the store it met its peers through and the Gloo backend.
struct Group {
  c10::intrusive_ptr<c10d::Store> store;
  c10::intrusive_ptr<c10d::Backend> backend;
  int world;
  std::chrono::milliseconds timeout;
};

// Waits for a collective; a peer that died or did not answer within the timeout throws.
void finish(const c10::intrusive_ptr<c10d::Work> &work, const Group &g) {
  if (!work->wait(g.timeout)) {
    throw std::runtime_error("the collective did not finish within the timeout");
  }
}

// The Gloo group exchanges host memory: a tensor on a GPU travels through a host copy (NCCL,
// which would exchange GPU memory directly, is not built: see README, "Backend").
at::Tensor on_host(const at::Tensor &t) { return t.is_cpu() ? t : t.to(at::kCPU); }
void back_from_host(at::Tensor &t, const at::Tensor &host) {
  if (!t.is_cpu()) t.copy_(host);
}

// Sums `t` over the ranks, in place; without a group (nullptr) `t` stays as it is.
void allreduce_sum(Group *g, at::Tensor &t) {
  if (g == nullptr) return;
  at::NoGradGuard no_grad;
  at::Tensor host = on_host(t);
  std::vector<at::Tensor> tensors{host};
  c10d::AllreduceOptions options;
  options.timeout = g->timeout;
  finish(g->backend->allreduce(tensors, options), *g);
  back_from_host(t, host);
}

// View of a per-channel vector that broadcasts over an N×C×H×W tensor.
at::Tensor per_channel(const at::Tensor &v) { return v.view({1, -1, 1, 1}); }

// Training-mode BatchNorm whose statistics are those of the whole global batch (every rank's
// shard), as torch.nn.SyncBatchNorm computes them: forward all-reduces each channel's count, sum
// and sum of squares (from each rank's float mean and biased variance, summed in float64); backward
// all-reduces the sums of dy and dy·(x − mean) that the input gradient needs. The weight and bias
// gradients stay each rank's own, to be averaged with the others by the data-parallel all-reduce,
// as SyncBatchNorm leaves them to DDP. One process on the global batch gives the same result.
struct SyncBatchNorm : public torch::autograd::Function<SyncBatchNorm> {
  static at::Tensor forward(torch::autograd::AutogradContext *ctx, const at::Tensor &x,
                            const at::Tensor &weight, const at::Tensor &bias, at::Tensor running_mean,
                            at::Tensor running_var, double momentum, double eps, int64_t group) {
    Group *g = reinterpret_cast<Group *>(group);
    const int64_t local = x.numel() / x.size(1);
    auto [var, mean] = at::var_mean(x, {0, 2, 3}, /*correction=*/0, /*keepdim=*/false);
    at::Tensor m = mean.to(at::kDouble), v = var.to(at::kDouble);
    at::Tensor sums = at::cat({at::full({1}, static_cast<double>(local), m.options()), m * local, (v + m * m) * local});
    allreduce_sum(g, sums);
    const double count = sums[0].item<double>();
    if (count < 2) throw std::runtime_error("BatchNorm needs more than one value per channel in training");
    const int64_t c = x.size(1);
    at::Tensor global_mean = sums.narrow(0, 1, c) / count;
    at::Tensor global_var = (sums.narrow(0, 1 + c, c) / count - global_mean * global_mean).clamp_min(0);
    {
      at::NoGradGuard no_grad;
      running_mean.mul_(1 - momentum).add_(global_mean.to(running_mean.scalar_type()), momentum);
      running_var.mul_(1 - momentum).add_((global_var * (count / (count - 1))).to(running_var.scalar_type()), momentum);
    }
    at::Tensor mean_f = global_mean.to(x.scalar_type());
    at::Tensor invstd = (global_var + eps).rsqrt().to(x.scalar_type());
    ctx->save_for_backward({x, weight, mean_f, invstd});
    ctx->saved_data["group"] = group;
    ctx->saved_data["count"] = count;
    return (x - per_channel(mean_f)) * per_channel(invstd * weight) + per_channel(bias);
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext *ctx,
                                                 torch::autograd::variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    const at::Tensor &x = saved[0], &weight = saved[1], &mean = saved[2], &invstd = saved[3];
    Group *g = reinterpret_cast<Group *>(ctx->saved_data["group"].toInt());
    const double count = ctx->saved_data["count"].toDouble();
    const at::Tensor &dy = grads[0];
    at::Tensor xmu = x - per_channel(mean);
    at::Tensor sum_dy = dy.sum({0, 2, 3});
    at::Tensor sum_dy_xmu = (dy * xmu).sum({0, 2, 3});
    at::Tensor grad_weight = sum_dy_xmu * invstd;
    at::Tensor grad_bias = sum_dy;
    at::Tensor sums = at::cat({sum_dy, sum_dy_xmu});
    try {
      allreduce_sum(g, sums);
    } catch (const std::exception &e) {
      // Autograd rethrows it as its own error: the prefix lets the Rust side say what failed
      // (distributed.rs, SYNC_BN_EXCHANGE_FAILED).
      throw std::runtime_error(std::string("dcgan: the synchronised BatchNorm's exchange failed: ") + e.what());
    }
    const int64_t c = x.size(1);
    at::Tensor mean_dy = sums.narrow(0, 0, c) / count;
    at::Tensor mean_dy_xmu = sums.narrow(0, c, c) / count;
    at::Tensor gx = (dy - per_channel(mean_dy) - xmu * per_channel(invstd * invstd * mean_dy_xmu)) * per_channel(invstd * weight);
    return {gx, grad_weight, grad_bias, at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor()};
  }
};

}  // namespace


extern "C" {

// Meets the other `world - 1` processes at host:port (rank 0 hosts the store) and connects a
// Gloo process group; both steps give up after `timeout_ms`.
const char *dcgan_dist_init(const char *host, int port, int rank, int world, int64_t timeout_ms,
                            void **out) {
  GUARD(
    const std::chrono::milliseconds timeout(timeout_ms);
    c10d::TCPStoreOptions store_options;
    store_options.port = static_cast<std::uint16_t>(port);
    store_options.isServer = rank == 0;
    store_options.numWorkers = world;
    store_options.waitWorkers = true;
    store_options.timeout = timeout;
    auto store = c10::make_intrusive<c10d::TCPStore>(std::string(host), store_options);
    // create_default picks the network device as torch.distributed does (GLOO_SOCKET_IFNAME, or
    // the address this machine's hostname resolves to, or the loopback device).
    auto options = c10d::ProcessGroupGloo::Options::create_default(timeout);
    auto backend = c10::make_intrusive<c10d::ProcessGroupGloo>(store, rank, world, options);
    *out = new Group{store, backend, world, timeout};
  )
}

void dcgan_dist_free(void *group) { delete static_cast<Group *>(group); }

// DDP's gradient average, in place: each rank divides by the world size, then the ranks sum.
const char *dcgan_dist_allreduce_mean(void *group, at::Tensor *t) {
  GUARD(
    Group &g = *static_cast<Group *>(group);
    at::NoGradGuard no_grad;
    t->div_(g.world);
    at::Tensor host = on_host(*t);
    std::vector<at::Tensor> tensors{host};
    c10d::AllreduceOptions options;
    options.timeout = g.timeout;
    finish(g.backend->allreduce(tensors, options), g);
    back_from_host(*t, host);
  )
}

// The sum over the ranks of `t`, in place.
const char *dcgan_dist_allreduce_sum(void *group, at::Tensor *t) {
  GUARD(
    allreduce_sum(static_cast<Group *>(group), *t);
  )
}

// Rank `root`'s values of `t` into every rank's `t`, in place.
const char *dcgan_dist_broadcast(void *group, at::Tensor *t, int root) {
  GUARD(
    Group &g = *static_cast<Group *>(group);
    at::NoGradGuard no_grad;
    at::Tensor host = on_host(*t);
    std::vector<at::Tensor> tensors{host};
    c10d::BroadcastOptions options;
    options.rootRank = root;
    options.timeout = g.timeout;
    finish(g.backend->broadcast(tensors, options), g);
    back_from_host(*t, host);
  )
}

// Training-mode BatchNorm over the global batch of `group`'s ranks (SyncBatchNorm above; with a
// null group, this rank's batch alone), updating the running statistics in place.
const char *dcgan_sync_batch_norm(void *group, at::Tensor *x, at::Tensor *weight, at::Tensor *bias,
                                  at::Tensor *running_mean, at::Tensor *running_var, double momentum,
                                  double eps, at::Tensor **out) {
  GUARD(
    at::Tensor y = SyncBatchNorm::apply(*x, *weight, *bias, *running_mean, *running_var, momentum, eps,
                                        reinterpret_cast<int64_t>(group));
    *out = new at::Tensor(y);
  )
}

// Waits until every rank has called it.
const char *dcgan_dist_barrier(void *group) {
  GUARD(
    Group &g = *static_cast<Group *>(group);
    c10d::BarrierOptions options;
    options.timeout = g.timeout;
    finish(g.backend->barrier(options), g);
  )
}

}  // extern "C"
