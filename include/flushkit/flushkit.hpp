// flushkit/flushkit.hpp - every public header of the core and exec layers.
#pragma once

#include <flushkit/version.hpp>
#include <flushkit/core/completion.hpp>
#include <flushkit/core/flush_result.hpp>
#include <flushkit/core/provider.hpp>
#include <flushkit/core/region.hpp>
#include <flushkit/core/request.hpp>
#include <flushkit/core/status.hpp>
#include <flushkit/core/work_item.hpp>
#include <flushkit/exec/ordered_executor.hpp>
