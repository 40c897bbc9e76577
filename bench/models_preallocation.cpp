// bench/models_preallocation.cpp - the preallocation scenario: durable 4 KiB
// writes into a file that `pmem::backing::file` has just created, with each
// of its preallocation modes.
//
//  zero-fill/pwrite-fdatasync   file_options::preallocate = zero_fill (every
//                               block written and synced at creation), then
//                               the durable scenario's pwrite-fdatasync
//  fallocate/pwrite-fdatasync   preallocate = fallocate (unwritten extents:
//                               the first durable write to each block also
//                               commits its extent conversion)
//  zero-fill/flushkit-coalesce  the durable scenario's flushkit-coalesce
//  fallocate/flushkit-coalesce  (coalescer + file_sync_provider) over it
//
// Each point gets a fresh file next to the bench file (its path plus
// fresh_file_suffix), created before and removed after the measured window.
#include "model.hpp"
#include "stacks.hpp"

#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>

#include <unistd.h>

namespace flushkit::bench {

namespace {

using make_fn = std::unique_ptr<workload> (*)(const bench_env&);

/// A fresh file of `env.medium_bytes`, allocated `how`, and the model
/// `make` builds over it.
class fresh_file_workload final : public workload {
public:
  fresh_file_workload(const bench_env& env, pm::preallocation how, make_fn make)
      : path_(env.file_path + std::string(fresh_file_suffix)) {
    static_cast<void>(::unlink(path_.c_str())); // a leftover would keep its blocks: not fresh
    pm::file_options opts;
    opts.size = static_cast<std::size_t>(env.medium_bytes);
    opts.preallocate = how;
    if (auto b = pm::backing::file(path_.c_str(), opts); !b)
      throw std::runtime_error("creating " + path_ + ": " + b.error().message());
    bench_env fresh = env;
    fresh.file_path = path_;
    try {
      inner_ = make(fresh);
    } catch (...) {
      ::unlink(path_.c_str());
      throw;
    }
  }
  fresh_file_workload(const fresh_file_workload&) = delete;
  fresh_file_workload& operator=(const fresh_file_workload&) = delete;
  ~fresh_file_workload() override {
    inner_.reset();
    ::unlink(path_.c_str());
  }

  void submit(op& o) override { inner_->submit(o); }
  std::uint64_t flushes() const override { return inner_->flushes(); }
  std::int64_t bytes_per_request() const override { return inner_->bytes_per_request(); }

private:
  std::string path_;
  std::unique_ptr<workload> inner_;
};

template <pm::preallocation How, make_fn Make> std::unique_ptr<workload> make_fresh(const bench_env& env) {
  return std::make_unique<fresh_file_workload>(env, How, Make);
}

/// Both preallocation modes of one model, zero-fill first.
template <make_fn Make> void add_both(model_registry& r, std::string_view zero_fill_name,
                                      std::string_view fallocate_name, bool blocking) {
  r.push_back({"preallocation", zero_fill_name, &make_fresh<pm::preallocation::zero_fill, Make>, blocking});
  r.push_back({"preallocation", fallocate_name, &make_fresh<pm::preallocation::fallocate, Make>, blocking});
}

using fsync_coalesced = coalesced_stack<pm::file_sync_provider>;

} // namespace

void add_preallocation_models(model_registry& r) {
  add_both<&make_pwrite_fdatasync>(r, "zero-fill/pwrite-fdatasync", "fallocate/pwrite-fdatasync", true);
  add_both<&make_device_workload<fsync_coalesced>>(r, "zero-fill/flushkit-coalesce", "fallocate/flushkit-coalesce",
                                                   false);
}

} // namespace flushkit::bench
