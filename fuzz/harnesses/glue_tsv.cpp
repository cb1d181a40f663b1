// GLUE TSV rows: data::read_glue_file (src/text/glue.h). The first byte picks the task (one of the
// nine) and the label mode; the rest is the file.
#include "harness.h"
#include "text/glue.h"

LORAKIT_FUZZ_TARGET(glue_tsv) {
  if (size == 0) return 0;
  const auto names = lorakit::data::glue_task_names();
  const auto& task = lorakit::data::glue_task(names[data[0] % names.size()]);
  const auto mode = (data[0] / names.size()) % 2 ? lorakit::data::LabelMode::Required : lorakit::data::LabelMode::Auto;
  const auto& scratch = lorakit::fuzz::Scratch::get("glue_tsv");
  const std::string path = scratch.write("dev.tsv", std::string(reinterpret_cast<const char*>(data) + 1, size - 1));
  lorakit::fuzz::expect_clean(
      [&] {
        for (const auto& ex : lorakit::data::read_glue_file(task, path, mode)) {
          if (ex.has_b != task.has_pair) lorakit::fuzz::fail("example without its second sentence");
          if (!task.is_regression && ex.label == ex.label &&
              (ex.label < 0 || ex.label >= static_cast<float>(task.num_labels)))
            lorakit::fuzz::fail("label " + std::to_string(ex.label) + " outside the task's classes");
        }
      },
      path);
  return 0;
}
