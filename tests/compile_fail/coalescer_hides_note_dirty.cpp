// EXPECT: flushkit: this wrapper hides its provider's note_dirty
// The same check runs for every link of a chain: a non-forwarding wrapper
// under a coalescer is refused where the coalescer is instantiated.
#include <flushkit/coalesce/coalescer.hpp>
#include <flushkit/testing/volatile_cache.hpp>

struct forgetful_wrapper {
  flushkit::testing::volatile_cache* cache;
  flushkit::testing::volatile_cache& provider() { return *cache; }
  flushkit::status flush() { return cache->flush(); }
};

int main() {
  flushkit::testing::volatile_cache cache({4096});
  forgetful_wrapper w{&cache};
  flushkit::coalescer<forgetful_wrapper&> c(w);
  return c.stats().flushes_issued == 0 ? 0 : 1;
}
