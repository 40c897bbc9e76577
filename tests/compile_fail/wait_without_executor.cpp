// EXPECT: has no associated executor
// A plain callback has no executor and async_wait was given none: nothing
// says where it may run, so flushkit refuses rather than pick system_executor.
#include <flushkit/core/completion.hpp>

int main() {
  flushkit::request req(flushkit::req_op::flush, 0, {});
  flushkit::async_wait(req, [](boost::system::error_code) {});
}
