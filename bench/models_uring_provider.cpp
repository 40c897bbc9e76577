// bench/models_uring_provider.cpp - flushkit's io_uring provider (durable scenario).
//
//  flushkit-uring           pmem_device over the mmapped bench file; the region's
//                           provider is pmem::uring_sync_provider: IORING_OP_FSYNC
//                           submitted from the event loop, reaped there (no thread
//                           of flushkit's on the path)
//  flushkit-uring-coalesce  the same behind a coalescer (the default policy)
//
// Without liburing at build time, or where io_uring_queue_init fails at run
// time, both are skipped with a message.
#include "model.hpp"

#if FLUSHKIT_BENCH_HAVE_URING

#include "stacks.hpp"

#include <flushkit/pmem/uring_sync_provider.hpp>

#include <stdexcept>
#include <string>

namespace flushkit::bench {

namespace {

/// The io_uring provider on the submitter's own event loop.
struct uring_stack {
  using top_type = pm::uring_sync_provider<io_executor>;
  static constexpr bool completes_on_app = true;
  uring_stack(const pm::backing& medium, app_thread& app) : provider(app.ctx.get_executor(), medium) {
    if (const status st = provider.usable()) throw std::runtime_error("uring_sync_provider: " + st.message());
  }
  top_type& top() noexcept { return provider; }
  std::uint64_t flushes() const { return provider.flushes(); }
  void quiesce() { provider.shutdown(); } // every flush completed: the harness waited for its slots
  top_type provider;
};

const char* uring_unavailable() {
  static const status st = pm::uring_sync_provider<io_executor>::available();
  return st ? "io_uring_queue_init fails here" : nullptr;
}

} // namespace

void add_uring_provider_models(model_registry& r) {
  r.push_back({"durable", "flushkit-uring", &make_device_workload<uring_stack>, false, 0, &uring_unavailable});
  r.push_back({"durable", "flushkit-uring-coalesce", &make_device_workload<coalesced_over<uring_stack>>, false, 0,
               &uring_unavailable});
}

} // namespace flushkit::bench

#else

namespace flushkit::bench {

namespace {
const char* no_liburing() { return "built without liburing (Debian liburing-dev)"; }
} // namespace

void add_uring_provider_models(model_registry& r) {
  r.push_back({"durable", "flushkit-uring", nullptr, false, 0, &no_liburing});
  r.push_back({"durable", "flushkit-uring-coalesce", nullptr, false, 0, &no_liburing});
}

} // namespace flushkit::bench

#endif
