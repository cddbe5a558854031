// Paper tables built from a DB filled with known values: every number a table prints is checked.
#include "reports/tables.h"

#include "reports/paper.h"
#include "reports_test_util.h"

#include <gtest/gtest.h>

namespace fb {
namespace {

using test::metric;

// A job spec as the runner stores it: expanded from a config through the method's registered
// schema (so a spec the method would reject fails the test); jobs without a method have no
// method parameters to check.
json make_spec(const std::string& model, const std::string& method, const json& method_params, const std::string& eval,
               const json& eval_params = json::object()) {
  if (method.empty()) return test::make_spec(model, method, method_params, eval, eval_params);
  return test::config_spec(model, method, method_params, eval, eval_params);
}

// The row whose first cell starts with `first` and whose column `col` equals `value`, else nullptr.
const std::vector<std::string>* find_row(const Table& t, const std::string& first, size_t col = 0,
                                         const std::string& value = "") {
  for (const auto& r : t.rows)
    if (r[0].rfind(first, 0) == 0 && (value.empty() || r[col] == value)) return &r;
  return nullptr;
}

size_t column(const Table& t, const std::string& header) {
  auto it = std::find(t.headers.begin(), t.headers.end(), header);
  EXPECT_NE(it, t.headers.end()) << "no column " << header << " in " << t.title;
  return static_cast<size_t>(it - t.headers.begin());
}

std::string cell(const Table& t, const std::vector<std::string>* row, const std::string& header) {
  EXPECT_NE(row, nullptr) << t.title;
  return row ? (*row)[column(t, header)] : "";
}

SiteRecord site(int layer, const std::string& role, int bits, double flops, int k_in, int k_flat, double kl) {
  SiteRecord s;
  s.layer = layer;
  s.role = role;
  s.w_bits = s.a_bits = bits;
  s.flops = flops;
  s.k_in = k_in;
  s.k_flat = k_flat;
  s.k_pad = (k_flat + 31) / 32 * 32;
  s.kl = kl;
  return s;
}

class ReportTables : public ::testing::Test {
 protected:
  test::ReportDb db;
  std::string run = db.run();
};

TEST_F(ReportTables, Table4CountsInt4SitesByLayerAndByFlopsAndShowsThePaperNumber) {
  JobResult fromSites;
  fromSites.synthetic = true;
  fromSites.sites = {site(0, "q", 4, 1, 64, 64, 0.01), site(0, "k", 8, 1, 64, 70, 0.3), site(0, "fc1", 8, 4, 64, 64, 0.5),
                     site(0, "fc2", 8, 4, 256, 256, 0.4)};
  fromSites.metrics = {metric("ppl", 20)};
  db.job(run, make_spec("opt-synth", "flattenquant", {{"gamma", 0.1}}, "ppl"), fromSites);
  JobResult fromMetrics;
  fromMetrics.metrics = {metric("int4_share_layers", 0.5), metric("int4_share_flops", 40, "%")};
  db.job(run, make_spec("opt-synth", "flattenquant", {{"gamma", 0.5}}, "ppl"), fromMetrics);

  Table t = build_tables(db.store, "t4_int4_share").at(0);
  auto low = find_row(t, "opt-synth [synthetic]", column(t, "γ"), "0.1");
  EXPECT_EQ(cell(t, low, "INT4 share (layers)"), "25.00%");   // 1 of 4 sites
  EXPECT_EQ(cell(t, low, "INT4 share (FLOPs)"), "10.00%");    // 1 of 10 FLOPs
  EXPECT_EQ(cell(t, low, "sites"), "4");
  auto high = find_row(t, "opt-synth", column(t, "γ"), "0.5");
  EXPECT_EQ(cell(t, high, "INT4 share (layers)"), "50.00%");  // metric as a fraction
  EXPECT_EQ(cell(t, high, "INT4 share (FLOPs)"), "40.00%");   // metric in %
  auto paper = find_row(t, "OPT-30B (paper only)");
  EXPECT_EQ(cell(t, paper, "paper"), "48.29%");
  EXPECT_NE(cell(t, paper, "paper source").find("2402.17985"), std::string::npos);

  std::string md = t.render("md");
  EXPECT_NE(md.find("source: run " + run.substr(0, 8) + ": commit abc1234def, host hostA (Test CPU)"), std::string::npos) << md;
  EXPECT_NE(md.find("[synthetic] = generated weights"), std::string::npos);
}

TEST_F(ReportTables, Table5TakesTheFastestBackendPerPrecisionAndComputesSpeedups) {
  JobResult r;
  auto g = [](const char* backend, const char* dtype, double ms) {
    GemmRecord x;
    x.backend = backend;
    x.dtype = dtype;
    x.m = 256, x.n = 768, x.k = 768;
    x.median_ms = ms;
    return x;
  };
  r.gemms = {g("openblas", "fp32", 2.0), g("eigen", "fp32", 3.0), g("ours_s8", "s8s8s32", 1.0), g("ours_w4a8", "w4a8", 0.5),
             g("fused", "flatten_quant", 0.1), g("kron", "kron_quant", 0.2)};
  db.job(run, make_spec("", "", json::object(), "gemm"), r);
  Table t = build_tables(db.store, "t5_latency").at(0);
  auto row = find_row(t, "cpu");
  EXPECT_EQ(cell(t, row, "fp32 ms"), "2");
  EXPECT_EQ(cell(t, row, "int8 ms"), "1");
  EXPECT_EQ(cell(t, row, "int4 ms"), "0.5");
  EXPECT_EQ(cell(t, row, "flatten ms"), "0.1");
  EXPECT_EQ(cell(t, row, "transform ms"), "0.2");
  EXPECT_EQ(cell(t, row, "INT8 speedup"), "2");
  EXPECT_EQ(cell(t, row, "INT4 speedup"), "4");
  auto paper = find_row(t, "A100");
  EXPECT_EQ(cell(t, paper, "fp16 ms"), "3.12");
  EXPECT_EQ(cell(t, paper, "int4 ms"), "1.57");
  EXPECT_EQ(cell(t, paper, "flatten ms"), "0.19");
  EXPECT_EQ(cell(t, paper, "INT4 speedup"), "1.99");  // 3.12 / 1.57
}

TEST_F(ReportTables, Table6ReportsMiBAndTheReductionAgainstTheFp16JobOfTheSameModel) {
  const double MiB = 1024.0 * 1024.0;
  JobResult fp16, fq;
  fp16.metrics = {metric("mem_linear_weights", 80 * MiB, "bytes"), metric("mem_total", 100 * MiB, "bytes")};
  fq.metrics = {metric("mem_linear_weights", 20 * MiB, "bytes"), metric("mem_scales", 0.5 * MiB, "bytes"),
                metric("mem_total", 40 * MiB, "bytes")};
  db.job(run, make_spec("opt-synth", "fp16", json::object(), "memory"), fp16);
  db.job(run, make_spec("opt-synth", "flattenquant", {{"beta", 2}}, "memory"), fq);
  Table t = build_tables(db.store, "t6_memory").at(0);
  auto row = find_row(t, "opt-synth", column(t, "method"), "flattenquant(beta=2)");
  EXPECT_EQ(cell(t, row, "linear weights"), "20");
  EXPECT_EQ(cell(t, row, "scales"), "0.5");
  EXPECT_EQ(cell(t, row, "total"), "40");
  EXPECT_EQ(cell(t, row, "reduction vs fp16"), "2.5x");
  EXPECT_EQ(cell(t, find_row(t, "opt-synth", column(t, "method"), "fp16"), "reduction vs fp16"), "1x");
  EXPECT_NE(t.render("text").find("26.1–60.2 GB"), std::string::npos);
}

TEST_F(ReportTables, Table7PutsThePaperPplBesideTheMatchingSmoothingSetting) {
  JobResult on, off;
  on.metrics = {metric("ppl", 11.9)};
  off.metrics = {metric("ppl", 12.5)};
  db.job(run, make_spec("opt-6.7b", "flattenquant", {{"smooth", true}, {"alpha", 0.5}}, "ppl", {{"dataset", "wikitext2"}}), on);
  db.job(run, make_spec("opt-6.7b", "flattenquant", {{"smooth", false}, {"alpha", 0.5}}, "ppl", {{"dataset", "wikitext2"}}), off);
  Table t = build_tables(db.store, "t7_ablation").at(0);
  auto smooth = find_row(t, "opt-6.7b", column(t, "smoothing"), "on");
  EXPECT_EQ(cell(t, smooth, "PPL"), "11.9");
  EXPECT_EQ(cell(t, smooth, "paper PPL"), "11.68");
  auto plain = find_row(t, "opt-6.7b", column(t, "smoothing"), "off");
  EXPECT_EQ(cell(t, plain, "PPL"), "12.5");
  EXPECT_EQ(cell(t, plain, "paper PPL"), "12.16");
  EXPECT_EQ(cell(t, plain, "dataset"), "wikitext2");
}

TEST_F(ReportTables, Table8MergesPplAndMemoryJobsOfOneSettingAndSortsByBeta) {
  const double MiB = 1024.0 * 1024.0;
  const double betas[] = {4, 1, 2}, ratios[] = {0.05, 0.4, 0.2}, ppls[] = {8.7, 9.0, 8.5};
  for (int i = 0; i < 3; ++i) {
    JobResult ppl, mem;
    ppl.metrics = {metric("flatten_ratio", ratios[i]), metric("flatten_ratio_padded", ratios[i] + 0.1), metric("ppl", ppls[i])};
    mem.metrics = {metric("flatten_ratio", ratios[i]), metric("mem_total", (10 + 10 * ratios[i]) * MiB, "bytes")};
    db.job(run, make_spec("stories260K", "flattenquant", {{"beta", betas[i]}}, "ppl"), ppl);
    db.job(run, make_spec("stories260K", "flattenquant", {{"beta", betas[i]}}, "memory"), mem);
  }
  Table t = build_tables(db.store, "t8_beta").at(0);
  ASSERT_EQ(t.rows.size(), 3u);
  EXPECT_EQ(t.rows[0][column(t, "β")], "1");
  EXPECT_EQ(t.rows[1][column(t, "β")], "2");
  EXPECT_EQ(t.rows[2][column(t, "β")], "4");
  EXPECT_EQ(t.rows[0][column(t, "flatten ratio")], "40.00%");
  EXPECT_EQ(t.rows[0][column(t, "flatten ratio (padded)")], "50.00%");
  EXPECT_EQ(t.rows[0][column(t, "total memory MiB")], "14");
  EXPECT_EQ(t.rows[0][column(t, "PPL")], "9");
  EXPECT_EQ(t.rows[1][column(t, "PPL")], "8.5");
  EXPECT_NE(t.render("md").find("flatten ratio > 30%"), std::string::npos);  // the paper's qualitative finding
}

TEST_F(ReportTables, FlattenRegimeSortsByOutlierScaleBitsAndFlatteningAndSkipsJobsWithoutGroupMetrics) {
  struct Case {
    double scale, beta;
    const char* ref;
    double ratio_norm, act_norm;
  };
  const Case cases[] = {{100, 0.25, "max", 0.5, 0.06}, {1, 1.0, "max", 0, 0.038}, {100, 2.0, "median", 2.1, 0.002},
                        {100, 1.0, "max", 0, 0.0625}, {100, 0.25, "staggered", 0.5, 0.01}};
  for (const Case& c : cases) {
    const bool staggered = std::string(c.ref) == "staggered";
    json params = {{"beta", c.beta}, {"beta_ref", staggered ? "max" : c.ref}, {"bits_mode", "int4"}};
    params["split"] = staggered ? "staggered" : "equal";
    json spec = make_spec("opt-regime", "flattenquant", params, "memory");
    spec["model"]["outlier_channels"] = 4;
    spec["model"]["outlier_scale"] = c.scale;
    JobResult r;
    r.metrics = {metric("flatten_ratio_norm_inputs", c.ratio_norm, "%"), metric("act_rel_err_norm_inputs", c.act_norm),
                 metric("scale_reduction_norm_inputs", 4, "x"), metric("dominance_norm_inputs", 121.7, "x"),
                 metric("crest_inner_inputs", 12.48, "x"),
                 metric("top1_agreement", 16.4, "%")};
    db.job(run, spec, r);
  }
  JobResult old;  // a job of an older build: no per-group metrics, not a regime row
  old.metrics = {metric("flatten_ratio", 3, "%")};
  db.job(run, make_spec("opt-regime", "flattenquant", {{"beta", 0.5}}, "memory"), old);

  Table t = build_tables(db.store, "flatten_regime").at(0);
  ASSERT_EQ(t.rows.size(), 5u);
  const size_t scale = column(t, "outliers ×"), beta = column(t, "β");
  EXPECT_EQ(t.rows[0][scale], "1");
  EXPECT_EQ(t.rows[1][beta], "1 × max");  // max before median, least flattening first
  EXPECT_EQ(t.rows[2][beta], "0.25 × max");
  EXPECT_EQ(t.rows[3][beta], "2 × median");
  EXPECT_EQ(t.rows[4][beta], "0.25 × max, staggered");  // split modes after one another, equal first
  EXPECT_EQ(t.rows[2][column(t, "flatten ratio norm")], "0.5%");
  EXPECT_EQ(t.rows[3][column(t, "A err norm")], "0.002");
  EXPECT_EQ(t.rows[2][column(t, "scale cut norm")], "4×");
  EXPECT_EQ(t.rows[2][column(t, "dominance norm")], "122×");
  EXPECT_EQ(t.rows[2][column(t, "crest inner")], "12.5×");
  EXPECT_EQ(t.rows[2][column(t, "top-1")], "16.4%");
  EXPECT_NE(t.render("md").find("round identically"), std::string::npos);
}

TEST_F(ReportTables, SweepTablesShowOtherSettingsAndTheFp16Reference) {
  JobResult fp16, int8, int4;
  fp16.metrics = {metric("ppl", 7.5)};
  int8.metrics = {metric("ppl", 7.6), metric("flatten_ratio", 10, "%")};
  int4.metrics = {metric("ppl", 9.0), metric("flatten_ratio", 10, "%")};
  db.job(run, make_spec("stories260K", "fp16", json::object(), "ppl"), fp16);
  db.job(run, make_spec("stories260K", "flattenquant", {{"beta", 0.5}, {"bits_mode", "int8"}}, "ppl"), int8);
  db.job(run, make_spec("stories260K", "flattenquant", {{"beta", 0.5}, {"bits_mode", "int4"}}, "ppl"), int4);
  Table t = build_tables(db.store, "t8_beta").at(0);
  ASSERT_EQ(t.rows.size(), 3u);
  EXPECT_EQ(t.rows[0][column(t, "setting")], "flattenquant(bits_mode=int4)");  // β is its own column
  EXPECT_EQ(t.rows[0][column(t, "flatten ratio")], "10.00%");                  // a metric in % read as %
  EXPECT_EQ(t.rows[1][column(t, "PPL")], "7.6");
  EXPECT_EQ(t.rows[2][column(t, "setting")], "fp16 (reference)");
  EXPECT_EQ(t.rows[2][column(t, "PPL")], "7.5");
  EXPECT_EQ(gamma_cell(1e30), "∞ (all INT4)");
  EXPECT_EQ(gamma_cell(-1), "-1 (all INT8)");
}

TEST_F(ReportTables, Table10ListsInt4ShareAndPplPerGamma) {
  const double gammas[] = {0.01, 0.1}, shares[] = {0.25, 0.75}, ppls[] = {9.5, 11.25};
  for (int i = 0; i < 2; ++i) {
    JobResult r;
    r.metrics = {metric("int4_share_layers", shares[i]), metric("int4_share_flops", shares[i] / 2), metric("ppl", ppls[i])};
    db.job(run, make_spec("stories260K", "flattenquant", {{"gamma", gammas[i]}}, "ppl"), r);
  }
  Table t = build_tables(db.store, "t10_gamma").at(0);
  ASSERT_EQ(t.rows.size(), 2u);
  EXPECT_EQ(t.rows[1][column(t, "γ")], "0.1");
  EXPECT_EQ(t.rows[1][column(t, "INT4 share (layers)")], "75.00%");
  EXPECT_EQ(t.rows[1][column(t, "INT4 share (FLOPs)")], "37.50%");
  EXPECT_EQ(t.rows[1][column(t, "PPL")], "11.25");
  nlohmann::json j = t.to_json();
  EXPECT_EQ(j["rows"][1]["PPL"].get<double>(), 11.25);
}

TEST_F(ReportTables, FlatQuantComparisonMatchesPaperRowsAndSumsCalibrationTimePerBlock) {
  JobResult fp16, fq;
  fp16.metrics = {metric("ppl", 5.5)};
  fq.metrics = {metric("ppl", 5.9), metric("calib_s/block0", 2, "s"), metric("calib_s/block1", 3, "s"),
                metric("method_seconds", 7, "s")};
  const json w4a4kv4 = {{"w_bits", 4}, {"a_bits", 4}, {"k_bits", 4}, {"v_bits", 4}};
  db.job(run, make_spec("Llama-2-7b-hf", "fp16", json::object(), "ppl", {{"dataset", "wikitext2"}}), fp16);
  db.job(run, make_spec("Llama-2-7b-hf", "flatquant", w4a4kv4, "ppl", {{"dataset", "wikitext2"}}), fq);
  // The flatquant method's own names: per-block seconds, their mean, and the total (which wins).
  JobResult named;
  named.metrics = {metric("ppl", 7.1), metric("calib_seconds_block0", 4, "s"), metric("calib_seconds_block1", 6, "s"),
                   metric("calib_seconds_per_block", 5, "s"), metric("calib_seconds_total", 10, "s")};
  db.job(run, make_spec("Llama-3-8b", "flatquant", {{"epochs", 10}}, "ppl", {{"dataset", "wikitext2"}}), named);
  JobResult blocks_only;
  blocks_only.metrics = {metric("ppl", 7.2), metric("calib_seconds_block0", 4, "s"), metric("calib_seconds_block1", 6, "s"),
                         metric("calib_seconds_per_block", 5, "s")};
  db.job(run, make_spec("Llama-3-8b", "flatquant", w4a4kv4, "ppl", {{"dataset", "wikitext2"}}), blocks_only);
  auto tables = build_tables(db.store, "flatquant");
  ASSERT_EQ(tables.size(), 2u);
  const Table& t = tables[0];
  EXPECT_EQ(find_row(t, "Llama-3-8b", column(t, "W quant"), "GPTQ"), nullptr) << "no job here ran FlatQuant's GPTQ";
  auto tuned = find_row(t, "Llama-3-8b", column(t, "PPL"), "7.1");
  EXPECT_EQ(cell(t, tuned, "calibration s"), "10");  // the total wins
  EXPECT_EQ(cell(t, tuned, "bits"), "W4A4KV4");     // the defaults, filled in from the schema
  auto rtn = find_row(t, "Llama-3-8b", column(t, "PPL"), "7.2");
  EXPECT_EQ(cell(t, rtn, "calibration s"), "10");  // 4 + 6, not the per-block mean
  EXPECT_EQ(cell(t, rtn, "paper PPL"), "6.98");
  auto ours = find_row(t, "Llama-2-7b-hf", column(t, "bits"), "W4A4KV4");
  EXPECT_EQ(cell(t, ours, "W quant"), "RTN");
  EXPECT_EQ(cell(t, ours, "PPL"), "5.9");
  EXPECT_EQ(cell(t, ours, "calibration s"), "5");
  EXPECT_EQ(cell(t, ours, "÷ fp16 PPL pass"), "5.0×") << "5 s of calibration over the run's 1 s fp16 PPL job";
  EXPECT_EQ(cell(t, tuned, "÷ fp16 PPL pass"), "") << "no fp16 PPL job of Llama-3-8b in the run";
  EXPECT_EQ(cell(t, ours, "paper PPL"), "5.79");
  auto base = find_row(t, "Llama-2-7b-hf", column(t, "bits"), "FP16");
  EXPECT_EQ(cell(t, base, "paper PPL"), "5.47");
  EXPECT_EQ(cell(t, base, "calibration s"), "");  // nothing to calibrate at fp16
  // The paper's table stays separate and says whose numbers they are; it keeps the methods we
  // do not run (QuaRot) and our methods' rows only for weight quantizers they can run.
  const Table& ref = tables[1];
  EXPECT_NE(ref.title.find("paper"), std::string::npos);
  int found = 0, flatquant_gptq = 0;
  for (const auto& r : ref.rows) {
    flatquant_gptq += r[1] == "FlatQuant" && r[2] == "GPTQ";  // w_quantizer: gptq runs it here
    if (r[0] == "wikitext2" && r[1] == "FlatQuant" && r[2] == "RTN") found += r[column(ref, "LLaMA-3-8B")] == "6.98";
    if (r[0] == "c4" && r[1] == "QuaRot" && r[2] == "GPTQ") found += 1;
    if (r[0] == "c4" && r[1] == "FP16") found += r[column(ref, "LLaMA-2-7B")] == "7.26";
  }
  EXPECT_EQ(found, 3);
  EXPECT_GT(flatquant_gptq, 0) << "FlatQuant runs GPTQ here, so the paper's FlatQuant GPTQ rows are reproducible";
}

// The bits column comes from the parameters each method really has: FlatQuant's k_bits and
// v_bits (one label when equal, both when not), FlattenQuant's bits_mode and its kv_bits.
TEST_F(ReportTables, FlatQuantTableLabelsBitsFromEachMethodsOwnParameters) {
  const json ppl = {{"dataset", "wikitext2"}};
  const std::pair<json, std::string> cases[] = {
      {make_spec("m", "flattenquant", {{"bits_mode", "int8"}}, "ppl", ppl), "W8A8"},
      {make_spec("m", "flattenquant", {{"bits_mode", "int4"}, {"kv_bits", 4}}, "ppl", ppl), "W4A4KV4"},
      {make_spec("m", "flattenquant", {{"gamma", 0.1}}, "ppl", ppl), "W4/8A4/8 (KL, γ=0.1)"},
      {make_spec("m", "flatquant", {{"v_bits", 8}}, "ppl", ppl), "W4A4K4V8"},
      {make_spec("m", "flatquant", {{"k_bits", 16}, {"v_bits", 16}}, "ppl", ppl), "W4A4"},
      {make_spec("m", "rtn", {{"w_bits", 4}, {"a_bits", 8}, {"kv_bits", 4}}, "ppl", ppl), "W4A8KV4"},
      {make_spec("m", "smoothquant", {{"w_bits", 8}, {"a_bits", 8}}, "ppl", ppl), "W8A8"},
      {make_spec("m", "flatquant", {{"w_quantizer", "gptq"}}, "ppl", ppl), "W4A4KV4"},
  };
  double value = 1;
  for (const auto& [spec, label] : cases) {
    JobResult r;
    r.metrics = {metric("ppl", value++)};
    db.job(run, spec, r);
  }
  const Table t = build_tables(db.store, "flatquant").at(0);
  value = 1;
  for (const auto& [spec, label] : cases) {
    SCOPED_TRACE(label);
    auto row = find_row(t, "m", column(t, "PPL"), num_cell(value++));
    EXPECT_EQ(cell(t, row, "bits"), label);
  }
  // FlattenQuant's default weight quantizer is GPTQ; FlatQuant's default is RTN.
  EXPECT_EQ(cell(t, find_row(t, "m", column(t, "PPL"), "1"), "W quant"), "GPTQ");
  EXPECT_EQ(cell(t, find_row(t, "m", column(t, "PPL"), "4"), "W quant"), "RTN");
  EXPECT_EQ(cell(t, find_row(t, "m", column(t, "PPL"), "8"), "W quant"), "GPTQ") << "FlatQuant with w_quantizer: gptq";
  // A spec the method would reject never reaches a table.
  EXPECT_ANY_THROW(make_spec("m", "flatquant", {{"kv_bits", 4}}, "ppl", ppl));
  EXPECT_ANY_THROW(make_spec("m", "flatquant", {{"w_quantizer", "awq"}}, "ppl", ppl));
}

TEST_F(ReportTables, GemmTablesComeOnePerDevice) {
  JobResult r;
  GemmRecord cpu, gpu;
  cpu.device = "cpu", cpu.backend = "openblas", cpu.dtype = "fp32", cpu.m = cpu.n = cpu.k = 512, cpu.median_ms = 4;
  gpu.device = "cuda:H100", gpu.backend = "cublas", gpu.dtype = "fp16", gpu.m = gpu.n = gpu.k = 512, gpu.median_ms = 0.05;
  r.gemms = {cpu, gpu};
  db.job(run, make_spec("", "", json::object(), "gemm"), r);
  auto tables = build_tables(db.store, "gemm");
  ASSERT_EQ(tables.size(), 2u);
  EXPECT_EQ(tables[0].title, "GEMM latency on cpu");
  EXPECT_EQ(tables[1].title, "GEMM latency on cuda:H100");
  EXPECT_EQ(tables[1].rows.at(0)[column(tables[1], "median ms")], "0.05");
  std::string csv = tables[0].render("csv");
  EXPECT_EQ(csv.substr(0, csv.find('\n')), "backend,dtype,M,N,K,verify,reps,min ms,median ms,max ms,GOP/s,×fp32");
}

TEST_F(ReportTables, EveryTableRendersOnAnEmptyDbAndUnknownNamesListTheKnownOnes) {
  for (const auto& def : table_defs())
    for (const auto& t : def.build(db.store))
      for (const char* format : {"text", "md", "csv", "json"}) EXPECT_FALSE(t.render(format).empty()) << def.name;
  try {
    build_tables(db.store, "t99");
    FAIL() << "expected an error";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("t4_int4_share"), std::string::npos) << e.what();
  }
}

// The CLI end to end: `report --table all --format json` is one parseable document holding every table.
TEST_F(ReportTables, CliRendersEveryTableAsOneJsonDocument) {
  JobResult r;
  r.metrics = {metric("int4_share_layers", 0.5), metric("ppl", 12)};
  db.job(run, make_spec("stories260K", "flattenquant", {{"gamma", 0.05}}, "ppl"), r);
  std::string cmd = std::string(FLATBENCH_BINARY) + " report --table all --format json --db '" + db.path.string() + "'";
  FILE* pipe = popen(cmd.c_str(), "r");
  ASSERT_NE(pipe, nullptr);
  std::string out;
  char buf[4096];
  for (size_t n; (n = fread(buf, 1, sizeof buf, pipe)) > 0;) out.append(buf, n);
  ASSERT_EQ(pclose(pipe), 0) << cmd;
  nlohmann::json j = nlohmann::json::parse(out);
  ASSERT_TRUE(j.is_array());
  bool found = false;
  for (const auto& t : j)
    if (t["title"].get<std::string>().find("Table 10") != std::string::npos) {
      EXPECT_EQ(t["rows"][0]["PPL"].get<double>(), 12);
      EXPECT_EQ(t["rows"][0]["INT4 share (layers)"].get<std::string>(), "50.00%");
      found = true;
    }
  EXPECT_TRUE(found);
}

TEST(ReportPaper, ModelKeysMatchAcrossSpellings) {
  EXPECT_EQ(model_key("Llama-2-7b-hf"), model_key("LLaMA-2-7B"));
  EXPECT_EQ(model_key("meta-llama/Meta-Llama-3-8B"), model_key("llama-3-8b"));
  EXPECT_NE(model_key("LLaMA-2-7B"), model_key("LLaMA-2-70B"));
  EXPECT_EQ(paper_lookup("flatquant-ppl", "llama-3-70b", "FlatQuant", "W4A4KV4 GPTQ", "ppl:c4")->value, 7.93);
  EXPECT_FALSE(paper_lookup("flatquant-ppl", "stories260K", "FlatQuant", "W4A4KV4 RTN", "ppl:wikitext2"));
}

TEST(ReportPaper, PrecisionClassesOfGemmDtypes) {
  EXPECT_EQ(precision_class("fp32"), "fp32");
  EXPECT_EQ(precision_class("fp16"), "fp16");
  EXPECT_EQ(precision_class("s8s8s32"), "int8");
  EXPECT_EQ(precision_class("w4a8"), "int4");
  EXPECT_EQ(precision_class("flatten_quant"), "flatten");
  EXPECT_EQ(precision_class("flatten_quant_staggered"), "flatten_staggered");  // not Table 5's (equal-split) op
  EXPECT_EQ(precision_class("fp8e4m3"), "fp8");
  EXPECT_EQ(precision_class("s8s8_fp16out"), "int8");  // the CUDA INT8 GEMM's dtype
  EXPECT_EQ(precision_class("kron_quant_int8"), "transform");
  EXPECT_EQ(precision_class("nf4_lut"), "");
}

}  // namespace
}  // namespace fb

namespace fb {
namespace {
// report --table backends: a spec's PPL on each backend beside the CPU's of the spec that differs
// only in `backend` (issue 19's 0.5% check), nothing for a GPU row without a CPU twin.
TEST(ReportBackendsTable, GpuRowsSitBesideTheCpuRowOfTheSameSpec) {
  test::ReportDb db;
  const std::string run = db.run();
  auto ppl_job = [&](const std::string& backend, const std::string& model, double ppl) {
    json spec = test::make_spec(model, "rtn", {{"w_bits", 4}}, "ppl", {{"dataset", "wikitext2"}});
    spec["backend"] = backend;
    JobResult r;
    r.metrics = {test::metric("ppl", ppl), test::metric("seqlen", 512)};
    db.job(run, spec, r);
  };
  ppl_job("cpu", "m", 100.0);
  ppl_job("cuda/fp32", "m", 100.02);
  ppl_job("cuda/fp16", "m", 99.5);
  ppl_job("cuda/fp16", "alone", 7.0);
  const Table t = build_tables(db.store, "backends").at(0);
  ASSERT_EQ(t.rows.size(), 4u);
  std::map<std::string, std::string> delta;
  const size_t backend_col = size_t(std::find(t.headers.begin(), t.headers.end(), "backend") - t.headers.begin());
  const size_t delta_col = size_t(std::find(t.headers.begin(), t.headers.end(), "Δ vs cpu") - t.headers.begin());
  for (const auto& row : t.rows) delta[row.at(0) + " " + row.at(backend_col)] = row.at(delta_col);
  EXPECT_EQ(delta["m cpu"], "");
  EXPECT_EQ(delta["m cuda/fp32"], "+2.00e-04");
  EXPECT_EQ(delta["m cuda/fp16"], "-5.00e-03");
  EXPECT_EQ(delta["alone cuda/fp16"], "");
}
}  // namespace
}  // namespace fb
