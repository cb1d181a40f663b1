#include "text/glue.h"

#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <system_error>

namespace lorakit::data {
namespace {

// How a task's file is laid out.
struct Layout {
  bool has_header = true;
  // Header names (has_header) of the text/label columns; label_col may be
  // empty only for unlabeled layouts.
  std::string col_a, col_b, col_label;
  // Headerless layout (CoLA): positions and exact column count.
  size_t pos_a = 0, pos_label = 0, ncols = 0;
};

TaskInfo make_task(std::string name, std::string dir, bool regression,
                   std::vector<std::string> labels, bool pair, std::string main_metric,
                   std::vector<std::string> metric_names,
                   std::vector<std::string> eval_files = {"dev.tsv"}) {
  TaskInfo t;
  t.name = std::move(name);
  t.dir_name = std::move(dir);
  t.is_regression = regression;
  t.label_names = std::move(labels);
  t.num_labels = regression ? 1 : static_cast<int>(t.label_names.size());
  t.has_pair = pair;
  t.train_file = "train.tsv";
  t.eval_files = std::move(eval_files);
  t.main_metric = std::move(main_metric);
  t.metric_names = std::move(metric_names);
  return t;
}

const std::vector<TaskInfo>& registry() {
  static const std::vector<TaskInfo> tasks = [] {
    const std::vector<std::string> bin = {"0", "1"};
    const std::vector<std::string> nli2 = {"entailment", "not_entailment"};
    std::vector<TaskInfo> v;
    v.push_back(make_task("cola", "CoLA", false, bin, false, "mcc", {"mcc"}));
    v.push_back(make_task("sst2", "SST-2", false, bin, false, "accuracy", {"accuracy"}));
    v.push_back(make_task("mrpc", "MRPC", false, bin, true, "accuracy",
                          {"accuracy", "f1", "acc_and_f1"}));
    v.push_back(make_task("stsb", "STS-B", true, {}, true, "pearson",
                          {"pearson", "spearmanr", "corr"}));
    v.push_back(make_task("qqp", "QQP", false, bin, true, "accuracy",
                          {"accuracy", "f1", "acc_and_f1"}));
    v.push_back(make_task("mnli", "MNLI", false, {"contradiction", "entailment", "neutral"},
                          true, "accuracy", {"accuracy"},
                          {"dev_matched.tsv", "dev_mismatched.tsv"}));
    v.push_back(make_task("qnli", "QNLI", false, nli2, true, "accuracy", {"accuracy"}));
    v.push_back(make_task("rte", "RTE", false, nli2, true, "accuracy", {"accuracy"}));
    v.push_back(make_task("wnli", "WNLI", false, bin, true, "accuracy", {"accuracy"}));
    return v;
  }();
  return tasks;
}

Layout layout_for(const std::string& task) {
  Layout l;
  if (task == "cola") {
    l.has_header = false;
    l.pos_label = 1;
    l.pos_a = 3;
    l.ncols = 4;
  } else if (task == "sst2") {
    l.col_a = "sentence";
    l.col_label = "label";
  } else if (task == "mrpc") {
    l.col_a = "#1 String";
    l.col_b = "#2 String";
    l.col_label = "Quality";
  } else if (task == "stsb") {
    l.col_a = "sentence1";
    l.col_b = "sentence2";
    l.col_label = "score";
  } else if (task == "qqp") {
    l.col_a = "question1";
    l.col_b = "question2";
    l.col_label = "is_duplicate";
  } else if (task == "mnli") {
    l.col_a = "sentence1";
    l.col_b = "sentence2";
    l.col_label = "gold_label";
  } else if (task == "qnli") {
    l.col_a = "question";
    l.col_b = "sentence";
    l.col_label = "label";
  } else if (task == "rte" || task == "wnli") {
    l.col_a = "sentence1";
    l.col_b = "sentence2";
    l.col_label = "label";
  } else {
    throw GlueError("no GLUE file layout for task '" + task + "'");
  }
  return l;
}

std::string normalise_name(const std::string& s) {
  std::string out;
  for (unsigned char c : s) {
    if (c == '-' || c == '_' || std::isspace(c)) continue;
    out.push_back(static_cast<char>(std::tolower(c)));
  }
  return out;
}

std::string trim(const std::string& s) {
  size_t b = 0, e = s.size();
  while (b < e && (s[b] == ' ' || s[b] == '\t' || s[b] == '\r' || s[b] == '\n')) ++b;
  while (e > b && (s[e - 1] == ' ' || s[e - 1] == '\t' || s[e - 1] == '\r' || s[e - 1] == '\n'))
    --e;
  return s.substr(b, e - b);
}

// Printable, bounded rendering of a field for error messages.
std::string show(const std::string& s) {
  std::string out = "'";
  size_t n = 0;
  for (unsigned char c : s) {
    if (++n > 60) {
      out += "...";
      break;
    }
    if (c < 0x20 || c == 0x7f) {
      static const char* hex = "0123456789abcdef";
      out += "\\x";
      out.push_back(hex[c >> 4]);
      out.push_back(hex[c & 15]);
    } else {
      out.push_back(static_cast<char>(c));
    }
  }
  return out + "'";
}

[[noreturn]] void fail(const std::string& path, size_t line, const std::string& what) {
  throw GlueError(path + ":" + std::to_string(line) + ": " + what);
}

std::string join_names(const std::vector<std::string>& v) {
  std::string s;
  for (size_t i = 0; i < v.size(); ++i) s += (i ? ", " : "") + v[i];
  return s;
}

float parse_label(const TaskInfo& task, const std::string& raw, const std::string& path,
                  size_t line) {
  const std::string v = trim(raw);
  if (task.is_regression) {
    if (v.empty()) fail(path, line, "empty score (expected a number)");
    const char* b = v.c_str();
    char* end = nullptr;
    errno = 0;
    const double d = std::strtod(b, &end);
    if (end == b || *end != '\0' || errno == ERANGE || !std::isfinite(d))
      fail(path, line, "cannot parse score " + show(raw) + " as a finite number");
    return static_cast<float>(d);
  }
  for (size_t i = 0; i < task.label_names.size(); ++i)
    if (v == task.label_names[i]) return static_cast<float>(i);
  fail(path, line,
       "label " + show(raw) + " is not one of {" + join_names(task.label_names) + "}");
}

}  // namespace

const TaskInfo& glue_task(const std::string& name) {
  const std::string key = normalise_name(name);
  for (const auto& t : registry())
    if (t.name == key) return t;
  throw GlueError("unknown GLUE task '" + name + "'; known tasks: " +
                  join_names(glue_task_names()));
}

std::vector<std::string> glue_task_names() {
  std::vector<std::string> names;
  for (const auto& t : registry()) names.push_back(t.name);
  return names;
}

std::vector<std::string> split_tsv_line(const std::string& line) {
  std::vector<std::string> cols;
  size_t start = 0;
  while (true) {
    const size_t tab = line.find('\t', start);
    if (tab == std::string::npos) {
      cols.push_back(line.substr(start));
      break;
    }
    cols.push_back(line.substr(start, tab - start));
    start = tab + 1;
  }
  return cols;
}

std::vector<Example> read_glue_file(const TaskInfo& task, const std::string& path,
                                    LabelMode mode) {
  const Layout layout = layout_for(task.name);

  std::error_code ec;
  if (std::filesystem::is_directory(path, ec))
    throw GlueError(path + ": is a directory, expected a GLUE " + task.dir_name + " TSV file");
  errno = 0;
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    const std::string why = errno ? std::strerror(errno) : "cannot open";
    throw GlueError(path + ": cannot open GLUE " + task.dir_name + " file (" + why + ")");
  }

  std::vector<Example> out;
  std::string line;
  size_t lineno = 0;
  bool seen_any = false;    // any non-blank line
  bool header_done = false;
  size_t ncols = layout.ncols;
  size_t ia = 0, ib = 0, il = 0;
  bool labeled = true;

  while (std::getline(in, line)) {
    ++lineno;
    if (lineno == 1 && line.size() >= 3 && static_cast<unsigned char>(line[0]) == 0xEF &&
        static_cast<unsigned char>(line[1]) == 0xBB && static_cast<unsigned char>(line[2]) == 0xBF)
      line.erase(0, 3);
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.find_first_not_of(" \t") == std::string::npos) continue;  // blank line
    seen_any = true;
    std::vector<std::string> cols = split_tsv_line(line);

    if (!header_done) {
      header_done = true;
      if (layout.has_header) {
        std::vector<std::string> names;
        for (const auto& c : cols) names.push_back(trim(c));
        auto find = [&](const std::string& want, bool required) -> size_t {
          for (size_t i = 0; i < names.size(); ++i)
            if (names[i] == want) return i;
          if (required)
            fail(path, lineno,
                 "header has no column '" + want + "' (GLUE " + task.dir_name +
                     " layout; header is missing or wrong? got " +
                     std::to_string(names.size()) + " columns: " + show(line) + ")");
          return std::string::npos;
        };
        ia = find(layout.col_a, true);
        if (task.has_pair) ib = find(layout.col_b, true);
        il = find(layout.col_label, mode == LabelMode::Required);
        labeled = il != std::string::npos;
        ncols = names.size();
        continue;
      }
      // CoLA: headerless train/dev; GLUE's test.tsv has the header "index\tsentence".
      if (cols.size() == 2 && trim(cols[0]) == "index" && trim(cols[1]) == "sentence") {
        if (mode == LabelMode::Required)
          fail(path, lineno,
               "this is CoLA's unlabeled test layout (header 'index\\tsentence'); "
               "a labeled file has no header and 4 columns");
        labeled = false;
        ncols = 2;
        ia = 1;
        continue;
      }
      ia = layout.pos_a;
      il = layout.pos_label;
    }

    if (cols.size() != ncols)
      fail(path, lineno,
           "expected " + std::to_string(ncols) + " tab-separated columns, got " +
               std::to_string(cols.size()));

    Example ex;
    ex.line = lineno;
    ex.text_a = std::move(cols[ia]);
    ex.has_b = task.has_pair;
    if (task.has_pair) ex.text_b = std::move(cols[ib]);
    ex.label = labeled ? parse_label(task, cols[il], path, lineno)
                       : std::numeric_limits<float>::quiet_NaN();
    out.push_back(std::move(ex));
  }
  if (in.bad()) throw GlueError(path + ":" + std::to_string(lineno) + ": read error");
  if (!seen_any) throw GlueError(path + ":1: file is empty");
  if (out.empty())
    throw GlueError(path + ":" + std::to_string(lineno) + ": no examples (header only)");
  return out;
}

}  // namespace lorakit::data
