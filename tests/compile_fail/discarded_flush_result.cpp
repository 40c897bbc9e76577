// EXPECT: ignoring return value
// A provider that computes `flush_result::done(st)` and drops it never
// completes its request: the result is [[nodiscard]], so that is a diagnostic
// (an error here, and under the project's -Werror everywhere).
#pragma GCC diagnostic error "-Wunused-result"
#include <flushkit/core/flush_result.hpp>

struct forgetful_provider {
  flushkit::flush_result flush(flushkit::request&) {
    flushkit::flush_result::done(make_error_code(flushkit::errc::io_error));
    return flushkit::flush_result::done();
  }
};

int main() {
  forgetful_provider p;
  flushkit::request r;
  return p.flush(r).is_async() ? 1 : 0;
}
