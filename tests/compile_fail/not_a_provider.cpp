// EXPECT: flushkit: this type is not a flush provider
// A type with neither `status flush()` nor `flush_result flush(request&)`
// must be rejected with one readable sentence.
#include <flushkit/core/region.hpp>

struct returns_int {
  int flush() { return 0; }
};

int main() {
  flushkit::region<returns_int> r;
  return r.flush().value();
}
