// The sweep report: write_sweep_report (results.md with Table 1, Table 4 and the run timings;
// results.csv, table4.csv, runs.csv) and the per-task gnuplot plots.
#include <fmt/core.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "core/errors.h"
#include "core/fileutil.h"
#include "sweep/internal.h"
#include "sweep/sweep.h"
#include "tasks/task.h"
#include "text/glue.h"

namespace lorakit {
using namespace sweep_detail;
namespace {

struct Record {
  const SweepRun* run = nullptr;
  bool ok = false;
  std::string error;
  json results;             // results.json
  std::vector<json> epochs; // metrics.jsonl
  json best;                // the epoch with the best main metric
};

double jnum(const json& j, const std::string& k) {
  if (!j.is_object() || !j.contains(k) || !j[k].is_number()) return std::nan("");
  return j[k].get<double>();
}

// The sweep's own record in results.json ({} when absent).
json sweep_part(const json& results) {
  return results.is_object() && results.contains("sweep") && results["sweep"].is_object() ? results["sweep"] : json::object();
}

Record load_record(const SweepRun& run) {
  Record r;
  r.run = &run;
  const RunState st = run_state(run);
  if (st == RunState::Changed) {
    r.error = "finished with other settings, left out (--dry-run shows them, --redo-changed redoes them)";
    return r;
  }
  if (st != RunState::Finished) {
    const std::string ep = join_path(run.dir, "error.txt");
    if (file_exists(ep)) r.error = read_text_file(ep);
    return r;
  }
  try {
    r.results = read_json_file(join_path(run.dir, "results.json"));
    std::ifstream is(join_path(run.dir, "metrics.jsonl"));
    std::string line;
    while (std::getline(is, line))
      if (!line.empty()) r.epochs.push_back(json::parse(line));
  } catch (const std::exception& e) {
    r.error = e.what();
    return r;
  }
  const auto& task = task_facts(run.task);
  const std::string key = "eval_" + task.main_metric;
  double best = -std::numeric_limits<double>::infinity();
  for (auto& e : r.epochs) {
    double v = jnum(e, key);
    if (std::isnan(v)) v = jnum(e, "eval_accuracy");
    if (v > best) {  // first epoch wins ties, as in the trainer
      best = v;
      r.best = e;
    }
  }
  r.ok = !r.best.is_null();
  if (!r.ok) r.error = "metrics.jsonl has no epochs";
  return r;
}

struct Row {
  std::string method;
  int64_t rank = 0;
  std::string label() const { return sweep_rank_free(method) ? method_title(method) : fmt::format("{} R={}", method_title(method), rank); }
};

// Table 1 order: rank-free methods first, then per rank the methods in configuration order.
std::vector<Row> table_rows(const SweepConfig& c, const std::vector<SweepRun>& runs) {
  std::vector<std::string> methods;
  for (auto& r : runs)
    if (std::find(methods.begin(), methods.end(), r.method) == methods.end()) methods.push_back(r.method);
  std::vector<Row> rows;
  for (auto& m : methods)
    if (sweep_rank_free(m)) rows.push_back({m, 0});
  for (auto r : c.ranks)
    for (auto& m : methods)
      if (!sweep_rank_free(m)) rows.push_back({m, r});
  return rows;
}

bool in_row(const Record& rec, const Row& row, const std::string& task) {
  return rec.run->task == task && rec.run->method == row.method && rec.run->rank == row.rank;
}

std::vector<double> collect(const std::vector<Record>& recs, const Row& row, const std::string& task,
                            const std::string& key, bool from_results = false) {
  std::vector<double> v;
  for (auto& r : recs) {
    if (!r.ok || !in_row(r, row, task)) continue;
    const double x = jnum(from_results ? r.results : r.best, key);
    if (std::isfinite(x)) v.push_back(x);
  }
  return v;
}

std::string params_cell(const std::vector<Record>& recs, const Row& row, const std::vector<std::string>& tasks) {
  std::vector<double> t, i;
  for (auto& task : tasks) {
    auto a = collect(recs, row, task, "trainable_params", true);
    auto b = collect(recs, row, task, "inference_params", true);
    t.insert(t.end(), a.begin(), a.end());
    i.insert(i.end(), b.begin(), b.end());
  }
  if (t.empty()) return "–";
  auto span = [](const std::vector<double>& v) {
    const auto [lo, hi] = std::minmax_element(v.begin(), v.end());
    const std::string a = human_count(static_cast<int64_t>(*lo)), b = human_count(static_cast<int64_t>(*hi));
    return a == b ? a : a + "–" + b;
  };
  return span(t) + " / " + (i.empty() ? "–" : span(i));
}

// Runs gnuplot on one task's script; "" on success, else why not.
std::string run_gnuplot(const std::string& gnuplot, const std::string& plots_dir, const std::string& task) {
  const std::string cmd = "cd " + shell_quote(plots_dir) + " && " + shell_quote(gnuplot) + " " + shell_quote(task + ".gp") + " > " +
                          shell_quote(task + ".log") + " 2>&1";
  const int rc = std::system(cmd.c_str());
  const std::string png = join_path(plots_dir, task + ".png");
  std::string magic;
  {
    std::ifstream is(png, std::ios::binary);
    char buf[8] = {};
    if (is.read(buf, 8)) magic.assign(buf, 8);
  }
  if (rc == 0 && magic == std::string("\x89PNG\r\n\x1a\n", 8)) return "";
  std::string tail;
  try {
    tail = read_text_file(join_path(plots_dir, task + ".log"));
    if (tail.size() > 300) tail = "…" + tail.substr(tail.size() - 300);
  } catch (...) {
  }
  for (auto& ch : tail)
    if (ch == '\n') ch = ' ';
  return fmt::format("gnuplot failed for {} (exit {}){}", task, rc, tail.empty() ? "" : ": " + tail);
}

std::string gp_string(const std::string& s) {
  std::string r = "'";
  for (char ch : s) r += ch == '\'' ? std::string("''") : std::string(1, ch);
  return r + "'";
}

}  // namespace

SweepSummary write_sweep_report(const SweepConfig& c, const std::vector<SweepRun>& runs) {
  SweepSummary sum;
  sum.planned = runs.size();
  make_dirs(c.out);
  std::vector<Record> recs;
  recs.reserve(runs.size());
  for (auto& r : runs) recs.push_back(load_record(r));
  const std::vector<Row> rows = table_rows(c, runs);
  const size_t n_seeds = c.seeds.size();
  size_t n_ok = 0;
  double total_wall = 0;
  for (auto& r : recs) {
    if (!r.ok) {
      sum.failures.push_back(r.run->label() + ": " + (r.error.empty() ? std::string("not run yet") : r.error));
      continue;
    }
    ++n_ok;
    double w = jnum(sweep_part(r.results), "run_wall_seconds");
    if (!std::isfinite(w)) w = jnum(r.results, "wall_seconds");
    if (std::isfinite(w)) total_wall += w;
  }

  // ---- Table 1 (markdown + results.csv)
  std::ostringstream md;
  md << "# lorakit sweep results\n\n";
  // Data: the GLUE root when a GLUE task is swept; each other task's folder (or its default).
  std::string data_desc;
  for (auto& t : c.tasks) {
    const auto task = make_task(t);
    std::string d;
    if (task->kind() == "glue") {
      d = "GLUE `" + c.data + "`";
    } else {
      auto it = c.task_data.find(t);
      d = task_title(t) + " " + (it != c.task_data.end() && !it->second.empty() ? "`" + it->second + "`" : "(its default)");
    }
    if (data_desc.find(d) == std::string::npos) data_desc += (data_desc.empty() ? "" : ", ") + d;
  }
  md << "- model: `" << c.model << "`; data: " << data_desc << "\n";
  md << "- tasks: ";
  for (size_t i = 0; i < c.tasks.size(); ++i) {
    const auto& t = c.tasks[i];
    const auto& tk = task_facts(t);
    const int64_t mt = c.max_train_samples.get(t);
    const int64_t me = c.max_eval_samples.get(t);
    auto ev = c.eval_file.find(t);
    md << (i ? ", " : "") << tk.dir_name << " (" << c.epochs.get(t) << " epochs"
       << (mt > 0 ? fmt::format(", {} {} training rows", c.subsample == "random" ? "random" : "first", mt) : "")
       << (me > 0 ? fmt::format(", first {} evaluation rows", me) : "")
       << (ev != c.eval_file.end() ? ", evaluated on `" + ev->second + "`" : "") << ")";
  }
  md << "\n- methods: ";
  {
    std::vector<std::string> ms;
    for (auto& row : rows)
      if (std::find(ms.begin(), ms.end(), row.method) == ms.end()) ms.push_back(row.method);
    for (size_t i = 0; i < ms.size(); ++i) md << (i ? ", " : "") << ms[i] << " (lr " << c.lr.get(ms[i]) << ")";
  }
  std::vector<std::string> unavailable;
  for (auto& m : c.optional_methods)
    if (!registered(m)) unavailable.push_back(m);
  if (!unavailable.empty()) {
    md << "; not available in this build: ";
    for (size_t i = 0; i < unavailable.size(); ++i) md << (i ? ", " : "") << unavailable[i];
  }
  md << "\n- ranks: ";
  for (size_t i = 0; i < c.ranks.size(); ++i) md << (i ? ", " : "") << c.ranks[i];
  md << " (LoRA alpha " << (c.alpha > 0 ? fmt::format("{}", c.alpha) : fmt::format("{}·r", c.alpha_ratio))
     << ", target modules " << (c.target_regex.empty() ? [&] {
          std::string s;
          for (auto& t : c.target_modules) s += (s.empty() ? "" : ",") + t;
          return s;
        }() : "regex " + c.target_regex)
     << "); seeds: ";
  for (size_t i = 0; i < c.seeds.size(); ++i) md << (i ? ", " : "") << c.seeds[i];
  md << "; batch size " << c.batch_size << ", max_seq_len " << c.max_seq_len << "\n";
  md << fmt::format("- {} of {} runs finished; run time {} in all (sum of the runs' wall times)\n", n_ok, runs.size(),
                    hms(total_wall));
  md << fmt::format("- written {} by lorakit {} on a {}-core machine (LibTorch threads: {})\n\n", utc_now(),
                    LORAKIT_VERSION, std::thread::hardware_concurrency(),
                    c.threads > 0 ? std::to_string(c.threads) : "one per core");
  md << "Each cell: mean ± standard deviation (n − 1) over seeds of each run's best epoch, the epoch with the best "
        "main metric on the evaluation file (CoLA MCC, STS-B Pearson, SQuAD F1, otherwise accuracy); every metric of a "
        "run comes from that same epoch. `(n=k)` marks cells with fewer finished seeds than configured. "
        "# T / I-Params: trainable / inference parameters (task head included).\n\n";
  md << "## Table 1\n\n";

  // Columns: one per task, holding that task's metrics "a / b"; best mean of each metric in bold.
  // (No bold where every row has the same mean: nothing wins.)
  std::map<std::string, std::map<std::string, double>> best_mean;  // task → metric → best mean over rows
  for (auto& t : c.tasks)
    for (auto& m : table_metrics(t)) {
      std::vector<double> means;
      for (auto& row : rows) {
        const Stat s = stat_of(collect(recs, row, t, "eval_" + m));
        if (s.n) means.push_back(s.mean);
      }
      if (means.size() > 1 && *std::min_element(means.begin(), means.end()) < *std::max_element(means.begin(), means.end()))
        best_mean[t][m] = *std::max_element(means.begin(), means.end());
    }
  md << "| Method | # T / I-Params |";
  for (auto& t : c.tasks) {
    md << " " << task_title(t) << " ";
    auto ms = table_metrics(t);
    for (size_t i = 0; i < ms.size(); ++i) md << (i ? " / " : "") << metric_title(ms[i]);
    md << " |";
  }
  md << "\n|---|---|";
  for (size_t i = 0; i < c.tasks.size(); ++i) md << "---|";
  md << "\n";
  std::ostringstream csv;
  csv << "method,rank,label";
  for (auto& t : c.tasks) {
    csv << "," << t << "_t_params," << t << "_i_params," << t << "_seeds";
    for (auto& m : table_metrics(t)) csv << "," << t << "_" << m << "_mean," << t << "_" << m << "_std";
  }
  csv << "\n";
  for (auto& row : rows) {
    md << "| " << row.label() << " | " << params_cell(recs, row, c.tasks) << " |";
    csv << row.method << "," << (sweep_rank_free(row.method) ? "" : std::to_string(row.rank)) << ","
        << csv_field(row.label());
    for (auto& t : c.tasks) {
      auto ms = table_metrics(t);
      md << " ";
      const auto tp = collect(recs, row, t, "trainable_params", true);
      const auto ip = collect(recs, row, t, "inference_params", true);
      csv << "," << (tp.empty() ? "" : fmt::format("{}", static_cast<int64_t>(tp[0]))) << ","
          << (ip.empty() ? "" : fmt::format("{}", static_cast<int64_t>(ip[0])));
      csv << "," << collect(recs, row, t, "eval_" + ms[0]).size();
      for (size_t i = 0; i < ms.size(); ++i) {
        const Stat s = stat_of(collect(recs, row, t, "eval_" + ms[i]));
        std::string cell = fmt_stat(s, 3, n_seeds);
        const bool bold = s.n && best_mean[t].count(ms[i]) && s.mean == best_mean[t][ms[i]];
        md << (i ? " / " : "") << (bold ? "**" + cell + "**" : cell);
        csv << "," << csv_num(s.mean) << "," << (s.n ? csv_num(s.std) : "");
      }
      md << " |";
    }
    md << "\n";
    csv << "\n";
  }

  // ---- Table 2 (seed 001): SQuAD in its own form, with the rank trained and kept at inference.
  for (auto& t : c.tasks) {
    if (make_task(t)->kind() != "squad") continue;
    md << "\n## Table 2: " << task_title(t) << "\n\n"
       << "# T / I-Rank: the rank each adapted module trains with (mean over modules; AdaLoRA and SoRA start "
          "at 2R) / the mean numerical rank of its ΔW at the best epoch (what pruning left); EM and F1 are the "
          "official SQuAD v1.1 scores (percent).\n\n"
       << "| Method | # T / I-Rank | # T / I-Params | EM | F1 |\n|---|---|---|---|---|\n";
    for (auto& row : rows) {
      std::string rank_cell = "–";
      if (!sweep_rank_free(row.method)) {
        const Stat trained = stat_of(collect(recs, row, t, "lora_r_mean"));
        const Stat kept = stat_of(collect(recs, row, t, "dw_rank_mean"));
        auto num = [](const Stat& s) { return s.n ? fmt::format("{:.3g}", s.mean) : std::string("–"); };
        rank_cell = num(trained) + " / " + num(kept);
      }
      md << "| " << row.label() << " | " << rank_cell << " | " << params_cell(recs, row, {t}) << " | "
         << fmt_stat(stat_of(collect(recs, row, t, "eval_exact_match")), 2, n_seeds) << " | "
         << fmt_stat(stat_of(collect(recs, row, t, "eval_f1")), 2, n_seeds) << " |\n";
    }
  }

  // ---- Table 4: rank and orthogonality loss of ΔW vs the test metric, per task, LoRA-family rows.
  md << "\n## Table 4: orthogonality of ΔW and generalization\n\n";
  md << "Rank of ΔW: numerical rank of ΔW = s·B·A, mean over the adapted modules (min–max over modules and "
        "seeds in brackets); orthogonality loss ‖ΔW ΔWᵀ − I‖²_F, mean over the adapted modules; both at each run's "
        "best epoch, then mean ± std over seeds.\n\n";
  std::ostringstream t4;
  t4 << "task,method,rank,label,seeds,dw_rank_mean,dw_rank_std,dw_rank_min,dw_rank_max,dw_orth_loss_mean,"
        "dw_orth_loss_std,dw_orth_loss_core_mean,metric,metric_mean,metric_std\n";
  bool any_t4 = false;
  for (auto& t : c.tasks) {
    const auto& tk = task_facts(t);
    std::ostringstream block;
    bool any = false;
    block << "### " << tk.dir_name << "\n\n| Method | Rank of ΔW | Orthogonality loss of ΔW | " << tk.dir_name << " "
          << metric_title(tk.main_metric) << " |\n|---|---|---|---|\n";
    for (auto& row : rows) {
      if (sweep_rank_free(row.method)) continue;
      const Stat rk = stat_of(collect(recs, row, t, "dw_rank_mean"));
      const Stat ol = stat_of(collect(recs, row, t, "dw_orth_loss_mean"));
      const Stat olc = stat_of(collect(recs, row, t, "dw_orth_loss_core_mean"));
      const Stat mt = stat_of(collect(recs, row, t, "eval_" + tk.main_metric));
      if (!rk.n && !ol.n) continue;
      any = true;
      const auto mins = collect(recs, row, t, "dw_rank_min"), maxs = collect(recs, row, t, "dw_rank_max");
      std::string range;
      if (!mins.empty() && !maxs.empty())
        range = fmt::format(" ({}–{})", static_cast<int64_t>(*std::min_element(mins.begin(), mins.end())),
                            static_cast<int64_t>(*std::max_element(maxs.begin(), maxs.end())));
      block << "| " << row.label() << " | " << fmt_stat(rk, 1, n_seeds) << range << " | " << fmt_stat(ol, 3, n_seeds)
            << " | " << fmt_stat(mt, 3, n_seeds) << " |\n";
      t4 << t << "," << row.method << "," << row.rank << "," << csv_field(row.label()) << "," << std::max(rk.n, ol.n)
         << "," << csv_num(rk.mean) << "," << csv_num(rk.std) << ","
         << (mins.empty() ? "" : csv_num(*std::min_element(mins.begin(), mins.end()))) << ","
         << (maxs.empty() ? "" : csv_num(*std::max_element(maxs.begin(), maxs.end()))) << "," << csv_num(ol.mean) << ","
         << csv_num(ol.std) << "," << csv_num(olc.mean) << "," << tk.main_metric << "," << csv_num(mt.mean) << ","
         << csv_num(mt.std) << "\n";
    }
    if (any) {
      md << block.str() << "\n";
      any_t4 = true;
    }
  }
  if (!any_t4)
    md << "No finished LoRA-family run reports ΔW diagnostics (`dw_rank_mean` / `dw_orth_loss_mean` in "
          "metrics.jsonl).\n\n";

  // ---- Runs: wall time and throughput; runs.csv with one row per run.
  md << "## Runs\n\nPer method and task: finished runs, mean wall time per run (model loading included), mean "
        "training samples/s, mean best epoch. Every run's directory, metrics and timings: `runs.csv`.\n\n";
  md << "| Task | Method | Runs | Wall time / run (s) | Train samples/s | Best epoch |\n|---|---|---|---|---|---|\n";
  std::vector<std::string> metric_cols;
  for (auto& t : c.tasks) {
    const TaskFacts facts = task_facts(t);
    for (auto& m : facts.metric_names)
      if (std::find(metric_cols.begin(), metric_cols.end(), "eval_" + m) == metric_cols.end())
        metric_cols.push_back("eval_" + m);
  }
  std::ostringstream rc;
  rc << "task,method,rank,seed,status,best_epoch,epochs,train_loss,train_accuracy,eval_loss,eval_accuracy";
  for (auto& m : metric_cols)
    if (m != "eval_accuracy") rc << "," << m;
  rc << ",generalization_gap,dw_rank_mean,dw_orth_loss_mean,trainable_params,inference_params,wall_seconds,"
        "run_wall_seconds,train_samples_per_second,dir\n";
  for (auto& t : c.tasks) {
    for (auto& row : rows) {
      size_t planned = 0, done = 0;
      std::vector<double> wall, sps, be;
      for (auto& r : recs) {
        if (!in_row(r, row, t)) continue;
        ++planned;
        if (!r.ok) continue;
        ++done;
        double w = jnum(sweep_part(r.results), "run_wall_seconds");
        if (!std::isfinite(w)) w = jnum(r.results, "wall_seconds");
        if (std::isfinite(w)) wall.push_back(w);
        const double s = jnum(r.results, "train_samples_per_second");
        if (std::isfinite(s)) sps.push_back(s);
        be.push_back(jnum(r.best, "epoch"));
      }
      if (!planned) continue;
      md << "| " << task_title(t) << " | " << row.label() << " | " << done << "/" << planned << " | "
         << (wall.empty() ? "–" : fmt::format("{:.1f}", stat_of(wall).mean)) << " | "
         << (sps.empty() ? "–" : fmt::format("{:.0f}", stat_of(sps).mean)) << " | "
         << (be.empty() ? "–" : fmt::format("{:.1f}", stat_of(be).mean)) << " |\n";
    }
  }
  for (auto& r : recs) {
    const SweepRun& run = *r.run;
    std::vector<std::string> f = {run.task, run.method, sweep_rank_free(run.method) ? "" : std::to_string(run.rank),
                                  std::to_string(run.seed), r.ok ? "finished" : (r.error.empty() ? "not run" : "failed")};
    auto add = [&](double v) { f.push_back(r.ok ? csv_num(v) : ""); };
    add(jnum(r.best, "epoch"));
    f.push_back(r.ok ? std::to_string(r.epochs.size()) : "");
    for (const char* k : {"train_loss", "train_accuracy", "eval_loss", "eval_accuracy"}) add(jnum(r.best, k));
    for (auto& m : metric_cols)
      if (m != "eval_accuracy") add(jnum(r.best, m));
    add(jnum(r.best, "generalization_gap"));
    add(jnum(r.best, "dw_rank_mean"));
    add(jnum(r.best, "dw_orth_loss_mean"));
    for (const char* k : {"trainable_params", "inference_params"}) {
      const double v = jnum(r.results, k);
      f.push_back(r.ok && std::isfinite(v) ? std::to_string(static_cast<int64_t>(v)) : "");
    }
    add(jnum(r.results, "wall_seconds"));
    add(jnum(sweep_part(r.results), "run_wall_seconds"));
    add(jnum(r.results, "train_samples_per_second"));
    f.push_back(csv_field(run.dir));
    for (size_t i = 0; i < f.size(); ++i) rc << (i ? "," : "") << f[i];
    rc << "\n";
  }
  if (!sum.failures.empty()) {
    md << "\n### Unfinished runs\n\n";
    for (auto& f : sum.failures) {
      std::string one = f;
      for (auto& ch : one)
        if (ch == '\n') ch = ' ';
      md << "- " << one << "\n";
    }
  }

  // ---- Plots (seed 001 Figure 1): per task, a 2×2 multiplot of per-epoch means over seeds.
  const std::string plots_dir = join_path(c.out, "plots");
  make_dirs(plots_dir);
  std::vector<std::string> plotted;
  for (auto& t : c.tasks) {
    std::ostringstream dat, plots[4];
    size_t block = 0;
    std::vector<std::string> row_methods;
    for (auto& row : rows)
      if (std::find(row_methods.begin(), row_methods.end(), row.method) == row_methods.end()) row_methods.push_back(row.method);
    for (auto& row : rows) {
      std::map<int64_t, std::array<std::vector<double>, 4>> per_epoch;
      for (auto& r : recs) {
        if (!r.ok || !in_row(r, row, t)) continue;
        for (auto& e : r.epochs) {
          auto& a = per_epoch[e.value("epoch", int64_t{0})];
          const char* keys[4] = {"train_accuracy", "eval_accuracy", "eval_loss", "generalization_gap"};
          for (int k = 0; k < 4; ++k) {
            const double v = jnum(e, keys[k]);
            if (std::isfinite(v)) a[k].push_back(v);
          }
        }
      }
      if (per_epoch.empty()) continue;
      dat << "# " << row.label() << "\n# epoch train_accuracy eval_accuracy eval_loss generalization_gap\n";
      for (auto& [ep, a] : per_epoch) {
        dat << ep;
        for (int k = 0; k < 4; ++k) dat << " " << (a[k].empty() ? std::string("NaN") : csv_num(stat_of(a[k]).mean));
        dat << "\n";
      }
      dat << "\n\n";
      // Colour and point type per method, dash type per rank (solid for the first rank and for full).
      const size_t mi = std::find(row_methods.begin(), row_methods.end(), row.method) - row_methods.begin();
      const size_t ri = sweep_rank_free(row.method) ? 0 : std::find(c.ranks.begin(), c.ranks.end(), row.rank) - c.ranks.begin();
      for (int k = 0; k < 4; ++k)
        plots[k] << (block ? ", \\\n     " : "") << gp_string(t + ".dat") << " index " << block << " using 1:" << (k + 2)
                 << " with linespoints lw 1.5 lc " << (mi + 1) << " pt " << (mi + 1) << " dt " << (ri + 1) << " title "
                 << gp_string(row.label());
      ++block;
    }
    if (!block) continue;
    write_text_atomically(join_path(plots_dir, t + ".dat"), dat.str());
    std::ostringstream gp;
    const auto& tk = task_facts(t);
    gp << "# " << tk.dir_name << ": per-epoch means over seeds (seed 001 Figure 1). Run: gnuplot " << t << ".gp\n";
    gp << "if (strstrt(GPVAL_TERMINALS, 'pngcairo') > 0) {\n"
          "  set terminal pngcairo size 1400,1000 font ',10'\n} else {\n  set terminal png size 1400,1000\n}\n";
    gp << "set output " << gp_string(t + ".png") << "\n";
    gp << "set datafile missing 'NaN'\nset grid\nset xlabel 'epoch'\nset key outside right top font ',8'\n"
          "set xtics 1\nset offsets 0.2, 0.2, 0, 0\n";
    gp << "set multiplot layout 2,2 title " << gp_string(tk.dir_name + ": mean over seeds per epoch (model " + c.model + ")") << "\n";
    const char* titles4[4] = {"Train accuracy", "Eval accuracy", "Eval loss", "Generalization gap (train acc - eval acc)"};
    for (int k = 0; k < 4; ++k) gp << "set title " << gp_string(titles4[k]) << "\nplot " << plots[k].str() << "\n";
    gp << "unset multiplot\n";
    write_text_atomically(join_path(plots_dir, t + ".gp"), gp.str());
    plotted.push_back(t);
  }
  std::vector<std::string> plot_errors;
  if (plotted.empty()) {
    sum.plots_note = "no finished runs to plot";
  } else if (c.gnuplot.empty()) {
    sum.plots_note = "plots disabled (\"gnuplot\": \"\"); the .gp scripts are in plots/";
  } else if (std::system(("command -v " + shell_quote(c.gnuplot) + " > /dev/null 2>&1").c_str()) != 0) {
    sum.plots_note = "gnuplot not found (`" + c.gnuplot + "`); install gnuplot-nox and run `gnuplot <task>.gp` in plots/";
  } else {
    for (auto& t : plotted) {
      std::error_code ec;
      fs::remove(join_path(plots_dir, t + ".png"), ec);
      const std::string err = run_gnuplot(c.gnuplot, plots_dir, t);
      if (!err.empty()) plot_errors.push_back(err);
    }
    if (plot_errors.empty()) {
      sum.plots_ok = true;
    } else {
      for (auto& e : plot_errors) sum.plots_note += (sum.plots_note.empty() ? "" : "; ") + e;
    }
  }
  md << "\n## Plots\n\nPer task: train accuracy, eval accuracy, eval loss and generalization gap (train − eval "
        "accuracy) per epoch, mean over seeds, one line per method (seed 001 Figure 1).\n\n";
  if (sum.plots_ok || !plot_errors.empty()) {
    for (auto& t : plotted)
      if (file_exists(join_path(plots_dir, t + ".png")))
        md << "![" << task_title(t) << "](plots/" << t << ".png)\n\n";
  }
  if (!sum.plots_ok) md << "**No plots:** " << sum.plots_note << "\n";

  write_text_atomically(join_path(c.out, "results.md"), md.str());
  write_text_atomically(join_path(c.out, "results.csv"), csv.str());
  write_text_atomically(join_path(c.out, "table4.csv"), t4.str());
  write_text_atomically(join_path(c.out, "runs.csv"), rc.str());
  sum.report = join_path(c.out, "results.md");
  return sum;
}

}  // namespace lorakit
