// The task registry: every kind's factory, tried in turn.
#include <cctype>

#include "core/errors.h"
#include "core/fileutil.h"
#include "tasks/glue/task.h"
#include "tasks/image/task.h"
#include "tasks/squad/task.h"
#include "tasks/task.h"

namespace lorakit {
namespace {

// Lower-case without '-' and '_': "Fashion_MNIST" and "fashion-mnist" are one key.
std::string key_of(const std::string& s) {
  std::string k;
  for (unsigned char c : s)
    if (c != '-' && c != '_') k += static_cast<char>(std::tolower(c));
  return k;
}

}  // namespace

void Task::resolve_files(TaskOptions& o, bool) const {
  for (const std::string* f : {&o.train_file, &o.eval_file})
    if (!f->empty() && !file_exists(*f))
      throw Error("task " + name() + ": " + (f == &o.train_file ? "train file " : "eval file ") + *f + " does not exist");
}

std::vector<std::string> task_names() {
  std::vector<std::string> n = data::glue_task_names();
  n.push_back("squad");
  for (auto& t : image_task_names()) n.push_back(t);
  return n;
}

std::string canonical_task_name(const std::string& name) {
  const std::string k = key_of(name);
  for (auto& n : task_names())
    if (key_of(n) == k) return n;
  std::string known;
  for (auto& n : task_names()) known += (known.empty() ? "" : ", ") + n;
  throw Error("unknown task '" + name + "'; known tasks: " + known);
}

std::unique_ptr<Task> make_task(const std::string& name) {
  const std::string n = canonical_task_name(name);
  if (n == "squad") return make_squad_task();
  if (auto t = make_image_task(n)) return t;
  return make_glue_task(n);
}

}  // namespace lorakit
