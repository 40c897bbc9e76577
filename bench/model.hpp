// bench/model.hpp - the model registry: which contenders run in which scenario.
//
// A model is a named way of making a 4 KiB write durable. Names are fixed so
// results compare across versions. To add models (e.g. virtio-inproc and
// virtio-2proc), define them in a models_<name>.cpp and append them in its
// add_*_models function; main.cpp runs every model registered for the
// selected scenario.
#pragma once

#include "harness.hpp"

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace flushkit::bench {

/// What a model gets to build its workload.
struct bench_env {
  std::string file_path;         ///< pre-allocated, pre-written file; empty: anonymous memory
  std::uint64_t medium_bytes = 0; ///< bytes of the file / anonymous medium used
  std::size_t inflight = 1;
};

struct model_info {
  std::string_view scenario;
  std::string_view name;
  std::unique_ptr<workload> (*make)(const bench_env&) = nullptr;
  /// `submit` completes before it returns: the harness runs one thread per
  /// in-flight slot.
  bool blocking = false;
  /// Largest in-flight count that means something for this model (0: any).
  std::size_t max_inflight = 0;
  /// Why the model cannot run here (nullptr: it can).
  const char* (*unavailable)() = nullptr;
};

using model_registry = std::vector<model_info>;

void add_overhead_models(model_registry& r); // models_overhead.cpp
void add_file_models(model_registry& r);     // models_file.cpp: submit, durable
void add_io_uring_models(model_registry& r); // models_io_uring.cpp
void add_virtio_models(model_registry& r);   // models_virtio.cpp (none yet)

/// Every model, in report order.
inline model_registry all_models() {
  model_registry r;
  add_overhead_models(r);
  add_file_models(r);
  add_io_uring_models(r);
  add_virtio_models(r);
  return r;
}

} // namespace flushkit::bench
