// bench/model.hpp - the model registry: which contenders run in which scenario.
//
// A model is a named way of making a 4 KiB write durable. Names are fixed so
// results compare across versions. To add models (e.g. virtio-inproc and
// virtio-2proc), define them in a models_<name>.cpp and append them in its
// add_*_models function; main.cpp runs every model registered for the
// selected scenario (`flushkit-bench --list-models` prints them).
#pragma once

#include "harness.hpp"

#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include <fcntl.h>
#include <unistd.h>

namespace flushkit::bench {

/// What a model gets to build its workload.
struct bench_env {
  /// Pre-allocated, pre-written file; empty: anonymous memory. In the
  /// preallocation scenario: the bench file, next to which each model
  /// creates a file of its own.
  std::string file_path;
  std::uint64_t medium_bytes = 0; ///< bytes of the file / anonymous medium used
  std::size_t inflight = 1;
};

/// Appended to the bench file's path to name the preallocation scenario's
/// fresh file.
inline constexpr std::string_view fresh_file_suffix = ".prealloc";

/// A file opened read-write (the blocking and io_uring models' descriptor).
class file_fd {
public:
  explicit file_fd(const std::string& path) : fd_(::open(path.c_str(), O_RDWR | O_CLOEXEC)) {
    if (fd_ < 0) throw std::system_error(errno, std::generic_category(), "open " + path);
  }
  file_fd(const file_fd&) = delete;
  file_fd& operator=(const file_fd&) = delete;
  ~file_fd() { ::close(fd_); }
  int get() const noexcept { return fd_; }

private:
  int fd_;
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

void add_overhead_models(model_registry& r);      // models_overhead.cpp
void add_file_models(model_registry& r);          // models_file.cpp: submit, durable
void add_baseline_models(model_registry& r);      // models_baselines.cpp: durable
void add_io_uring_models(model_registry& r);      // models_io_uring.cpp: durable
void add_virtio_models(model_registry& r);        // models_virtio.cpp
void add_preallocation_models(model_registry& r); // models_preallocation.cpp
void add_uring_provider_models(model_registry& r); // models_uring_provider.cpp: durable
void add_journal_models(model_registry& r); // models_journal.cpp: journal-64, journal-256, journal-4k

/// pwrite-fdatasync over `env.file_path` (models_file.cpp; the
/// preallocation scenario reuses it).
std::unique_ptr<workload> make_pwrite_fdatasync(const bench_env& env);

/// Every model, in report order.
inline model_registry all_models() {
  model_registry r;
  add_overhead_models(r);
  add_file_models(r);
  add_baseline_models(r);
  add_io_uring_models(r);
  add_uring_provider_models(r);
  add_virtio_models(r);
  add_preallocation_models(r);
  add_journal_models(r);
  return r;
}

} // namespace flushkit::bench
