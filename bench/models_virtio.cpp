// bench/models_virtio.cpp - extension point for the virtio scenario.
//
// `virtio-inproc` (driver and device queues in one process) and
// `virtio-2proc` (device in a second process over shared memory) will be
// registered here once the virtio layer lands, as
//   r.push_back({"virtio", "virtio-inproc", &make_virtio_inproc});
// Until then the scenario reports "virtio models: not built yet".
#include "model.hpp"

namespace flushkit::bench {

void add_virtio_models(model_registry&) {}

} // namespace flushkit::bench
