// tests/support/pmem_support.hpp - backings for every kind, and scripted flush providers (fakes) for pmem tests.
#pragma once

#include <flushkit/core/flush_result.hpp>
#include <flushkit/core/request.hpp>
#include <flushkit/core/status.hpp>
#include <flushkit/exec/ordered_executor.hpp>
#include <flushkit/pmem/backing.hpp>

#include <boost/asio/io_context.hpp>

#include <array>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <mutex>
#include <ostream> // doctest prints a status through operator<<
#include <string>
#include <vector>

#include <fcntl.h>
#include <unistd.h>

namespace flushkit::test {

/// A unique temporary file under /tmp (mkstemp), removed on destruction.
class temp_file {
public:
  temp_file() {
    char name[] = "/tmp/flushkit-pmem-XXXXXX";
    const int fd = ::mkstemp(name);
    if (fd >= 0) ::close(fd);
    path_ = name;
  }
  temp_file(const temp_file&) = delete;
  temp_file& operator=(const temp_file&) = delete;
  ~temp_file() { ::unlink(path_.c_str()); }
  const char* path() const noexcept { return path_.c_str(); }

private:
  std::string path_;
};

/// Reads `size` bytes of a file through a fresh descriptor (not the mapping).
inline std::vector<std::byte> read_file(const char* path, std::size_t size) {
  std::vector<std::byte> out(size);
  const int fd = ::open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return {};
  const ssize_t n = ::pread(fd, out.data(), size, 0);
  ::close(fd);
  if (n != static_cast<ssize_t>(size)) out.clear();
  return out;
}

/// A backing of kind `Kind` for tests, with a temp file for the file kind.
/// `medium_now()` returns the medium's bytes; for a file it reopens the file
/// and reads them through a new descriptor, so the check covers the file.
template <pmem::backing_kind Kind> class test_medium {
public:
  explicit test_medium(std::size_t size) {
    auto r = make(size);
    ok_ = r.has_value();
    if (ok_) backing_ = std::move(r).value();
  }
  bool ok() const noexcept { return ok_; }
  pmem::backing& backing() noexcept { return backing_; }
  std::span<std::byte> bytes() noexcept { return backing_.bytes(); }

  std::vector<std::byte> medium_now() const {
    if constexpr (Kind == pmem::backing_kind::file) return read_file(file_.path(), backing_.size());
    else return {backing_.bytes().begin(), backing_.bytes().end()};
  }

private:
  pmem::result<pmem::backing> make(std::size_t size) {
    if constexpr (Kind == pmem::backing_kind::anonymous) return pmem::backing::anonymous(size);
    else if constexpr (Kind == pmem::backing_kind::memfd) return pmem::backing::memfd(size);
    else return pmem::backing::file(file_.path(), {.size = size});
  }

  temp_file file_;
  pmem::backing backing_;
  bool ok_ = false;
};

/// Tags for TEST_CASE_TEMPLATE over the three backings.
struct anonymous_kind { static constexpr pmem::backing_kind value = pmem::backing_kind::anonymous; };
struct memfd_kind { static constexpr pmem::backing_kind value = pmem::backing_kind::memfd; };
struct file_kind { static constexpr pmem::backing_kind value = pmem::backing_kind::file; };

/// The statuses successive flushes return (then success), a flush counter,
/// and an optional probe byte recorded at each flush (to prove ordering).
class flush_script {
public:
  static constexpr std::size_t max_steps = 8;

  void then(status st) {
    std::lock_guard lk(mu_);
    steps_[planned_++] = st;
  }
  status next() {
    std::lock_guard lk(mu_);
    if (probe_ != nullptr && seen_count_ < max_steps) seen_[seen_count_++] = *probe_;
    const std::size_t i = flushes_++;
    return i < planned_ ? steps_[i] : status{};
  }
  void probe(const std::byte* p) { probe_ = p; }
  std::size_t flushes() const {
    std::lock_guard lk(mu_);
    return flushes_;
  }
  /// The probe byte as seen by flush number `i`.
  std::byte seen(std::size_t i) const {
    std::lock_guard lk(mu_);
    return seen_[i];
  }

private:
  mutable std::mutex mu_;
  std::array<status, max_steps> steps_{};
  std::size_t planned_ = 0;
  std::size_t flushes_ = 0;
  const std::byte* probe_ = nullptr;
  std::array<std::byte, max_steps> seen_{};
  std::size_t seen_count_ = 0;
};

/// Fake synchronous provider: `status flush()` follows the script. (A real
/// provider cannot fail on demand.)
class sequenced_sync_provider {
public:
  status flush() { return script.next(); }
  flush_script script;
};

/// Fake asynchronous provider: `flush(request&)` queues the request's work
/// item on an `ordered_executor` and completes the request from the
/// io_context with the script's status (the virtio-pmem shape). With
/// `fail_allocation` set it answers `no_memory` synchronously (it "could not
/// allocate a work item"). Also offers a request-less synchronous `flush()`.
class sequenced_async_provider {
public:
  explicit sequenced_async_provider(boost::asio::io_context& io) : exec_(io.get_executor()) {}
  sequenced_async_provider(const sequenced_async_provider&) = delete;
  sequenced_async_provider& operator=(const sequenced_async_provider&) = delete;
  ~sequenced_async_provider() { exec_.shutdown(); }

  flush_result flush(request& req) {
    if (fail_allocation) return flush_result::done(make_error_code(errc::no_memory));
    req.work.set(&sequenced_async_provider::run, this);
    if (status st = exec_.submit(req.work)) return flush_result::done(st);
    return flush_result::async(req);
  }
  status flush() { return script.next(); }

  flush_script script;
  bool fail_allocation = false;

private:
  static void run(work_item& item, void* context) {
    auto* self = static_cast<sequenced_async_provider*>(context);
    const status st = self->script.next();
    self->exec_.finish(item);
    request::from_work(item).complete(st);
  }

  ordered_executor<boost::asio::io_context::executor_type> exec_;
};

} // namespace flushkit::test
