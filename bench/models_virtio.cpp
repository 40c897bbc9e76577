// bench/models_virtio.cpp - the virtio scenario: durable 4 KiB FUA writes through a virtio-pmem guest driver.
//
//  virtio-inproc      pmem_device<region<coalescer<pmem_guest&>&>> over pmem_host in this
//                     process (inproc_pair), the host fdatasyncs the bench file on a
//                     2-thread pool
//  virtio-2proc       the same, with pmem_host in a forked child (memfd + eventfds)
//  flushkit-coalesce  baseline: the same coalescer over the direct fdatasync provider
//                     (the durable scenario's stack)
// Every device here stores into the mapping (data_step::store): a guest writes its
// RAM, it cannot pwrite the host's file; the baseline does the same.
// flushes = fdatasync calls made by the host. The wiring is demo/virtio_topology.hpp,
// shared with flushkit-demo.
#include "model.hpp"
#include "stacks.hpp"

#include "../demo/virtio_topology.hpp"

namespace flushkit::bench {

namespace {

/// A virtio topology as a bench stack: the region's provider is a coalescer
/// (an I/O object of the submitter's event loop) in front of the guest driver.
template <class Topology> struct virtio_stack {
  using top_type = coalescer<typename Topology::guest_t&>;
  static constexpr bool completes_on_app = true;
  virtio_stack(const pm::backing& medium, app_thread& app) : topo(medium), group(app.ctx, topo.guest()) {}
  top_type& top() noexcept { return group; }
  std::uint64_t flushes() const noexcept { return topo.host_flushes(); }
  void quiesce() { topo.shutdown(); }

  Topology topo;
  top_type group;
};

using fsync_coalesced = coalesced_stack<pm::file_sync_provider>;

} // namespace

void add_virtio_models(model_registry& r) {
  constexpr pm::data_step store = pm::data_step::store;
  r.push_back({"virtio", "flushkit-coalesce", &make_device_workload<fsync_coalesced, store>});
  r.push_back({"virtio", "virtio-inproc", &make_device_workload<virtio_stack<demo::inproc_topology>, store>});
  r.push_back({"virtio", "virtio-2proc", &make_device_workload<virtio_stack<demo::two_process_topology>, store>});
}

} // namespace flushkit::bench
