// tests/support/fake_providers.hpp - providers whose result a test chooses.
//
// Fakes: a real flush cannot be made to fail with a chosen status on demand.
#pragma once

#include <flushkit/core/flush_result.hpp>
#include <flushkit/core/request.hpp>
#include <flushkit/core/status.hpp>

namespace flushkit::test {

/// Synchronous provider returning `next` and counting calls.
struct scripted_sync_provider {
  status next{};
  int calls = 0;
  status flush() {
    ++calls;
    return next;
  }
};

/// Asynchronous provider: answers synchronously with `next` unless
/// `take_ownership` is set; then it keeps the request in `owned` for the test
/// to complete.
struct scripted_async_provider {
  status next{};
  bool take_ownership = false;
  request* owned = nullptr;
  int calls = 0;
  flush_result flush(request& r) {
    ++calls;
    if (!take_ownership) return flush_result::done(next);
    owned = &r;
    return flush_result::async(r);
  }
};

} // namespace flushkit::test
