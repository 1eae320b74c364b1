// One change of the coordinator's state: the records to write, in one batch, and what to
// do in memory once that batch is durable. The order is always the same (Coordinator::
// commit): validate, commit the batch, then apply to memory, then reply — a commit that
// fails applies nothing, so memory never runs ahead of what a restart would load.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "coordinator/state_store.h"

namespace sp {

struct Change {
  StateStore::Batch batch;
  std::vector<std::function<void()>> apply;  // after the commit, in order
  std::vector<std::string> log;              // log lines (the events), after the commit
  bool empty() const { return batch.count() == 0 && apply.empty(); }
};

}  // namespace sp
