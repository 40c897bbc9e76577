// A minimal flushkit consumer, shared by every packaging test: it includes the
// umbrella header and uses one function and one constant of the library.
#include <flushkit/flushkit.hpp>

#include <cstring>

int main() {
  const flushkit::status st = flushkit::make_error_code(flushkit::errc::io_error);
  if (!st) return 1;
  if (std::strlen(flushkit::version_string) == 0) return 2;
  return 0;
}
