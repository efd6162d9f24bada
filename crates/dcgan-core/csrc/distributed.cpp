// Data-parallel training on libtorch's own distributed engine (c10d): a TCPStore for the
// rendezvous and a ProcessGroupGloo for the collectives, as torch.distributed builds them for
// init_process_group("gloo"). Each function returns nullptr on success or the text of the C++
// exception (Gloo reports a dead peer or a timeout by throwing), valid until the next call on the
// same thread. The Gloo headers are not in the wheel: see gloo-decl/gloo/README.md.
#define USE_C10D_GLOO 1
#include "guard.h"
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>

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

// The Gloo group exchanges host memory: a tensor on a GPU travels through a host copy (NCCL,
// which would exchange GPU memory directly, is not built: see README, "Backend").
static at::Tensor on_host(const at::Tensor &t) { return t.is_cpu() ? t : t.to(at::kCPU); }
static void back_from_host(at::Tensor &t, const at::Tensor &host) {
  if (!t.is_cpu()) t.copy_(host);
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
