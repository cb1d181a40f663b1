// GLUE as a lorakit::Task: TSV reader (text/glue.h), tokenized pairs (tasks/glue/dataset.h), a
// sequence-classification head (regression for STS-B), GLUE's metrics (text/metrics.h).
#pragma once
#include <memory>
#include <string>

#include "tasks/task.h"
#include "text/glue.h"

namespace lorakit {

// `name`: any spelling glue_task() accepts; GlueError for an unknown one.
std::unique_ptr<Task> make_glue_task(const std::string& name);

// --data may be the GLUE root (holding MRPC/) or the task's own folder (holding train.tsv); "" means
// ../shared/data/glue (relative to the working directory).
std::string glue_task_file(const std::string& data, const data::TaskInfo& task, const std::string& file);

// The rows of a GLUE file; with limit > 0 the first `limit`, or (random) `limit` rows drawn with
// data_seed, kept in the file's order.
std::vector<data::Example> read_glue_subset(const data::TaskInfo& task, const std::string& path, int64_t limit,
                                            bool random, uint64_t data_seed,
                                            data::LabelMode mode = data::LabelMode::Required);

}  // namespace lorakit
