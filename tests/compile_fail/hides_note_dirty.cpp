// EXPECT: flushkit: this wrapper hides its provider's note_dirty
// A wrapper that exposes the provider it wraps (provider()) but does not
// forward note_dirty would let a device acknowledge writes it never reported
// to a dirty-tracking provider: the region refuses it at compile time.
#include <flushkit/core/region.hpp>
#include <flushkit/testing/volatile_cache.hpp>

struct forgetful_wrapper {
  flushkit::testing::volatile_cache* cache;
  flushkit::testing::volatile_cache& provider() { return *cache; }
  flushkit::status flush() { return cache->flush(); }
};

int main() {
  flushkit::testing::volatile_cache cache({4096});
  flushkit::region<forgetful_wrapper> r(forgetful_wrapper{&cache});
  return r.flush().value();
}
