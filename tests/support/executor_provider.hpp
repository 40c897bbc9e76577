// tests/support/executor_provider.hpp - an asynchronous provider that completes
// each request from a work item on an ordered_executor.
//
// The smallest honest async provider: it takes ownership of the request,
// queues the request's embedded work item, and completes it with `result`
// when the item runs. Used to drive the asynchronous path in tests.
#pragma once

#include <flushkit/core/flush_result.hpp>
#include <flushkit/core/request.hpp>
#include <flushkit/exec/ordered_executor.hpp>

namespace flushkit::test {

template <class Executor> class executor_provider {
public:
  explicit executor_provider(ordered_executor<Executor>& ex) : ex_(&ex) {}

  status result{};
  int calls = 0;

  flush_result flush(request& req) {
    ++calls;
    req.work.set(&executor_provider::run, this);
    const status st = ex_->submit(req.work);
    if (st) return flush_result::done(st);
    return flush_result::async(req);
  }

private:
  static void run(work_item& item, void* ctx) {
    auto* self = static_cast<executor_provider*>(ctx);
    request& req = request::from_work(item);
    self->ex_->finish(item);
    req.complete(self->result);
  }

  ordered_executor<Executor>* ex_;
};

} // namespace flushkit::test
