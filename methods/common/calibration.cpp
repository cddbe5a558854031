#include "methods/common/calibration.h"

#include "datasets/corpus.h"
#include "core/params.h"
#include "core/progress.h"

#include <fmt/format.h>

#include <algorithm>
#include <random>
#include <utility>
#include <stdexcept>

namespace fb {

CalibConfig calib_config_from(const json& params, uint64_t seed) {
  CalibConfig c;
  c.dataset = param_string(params, "calib_dataset");
  c.samples = param_int(params, "calib_samples");
  c.seqlen = param_int(params, "calib_seqlen");
  if (params.contains("calib_rows")) c.max_rows = param_int(params, "calib_rows");
  c.seed = seed;
  if (c.samples <= 0 || c.seqlen <= 1)
    throw std::invalid_argument(fmt::format("calibration needs calib_samples > 0 and calib_seqlen > 1, got {} and {}",
                                            c.samples, c.seqlen));
  return c;
}

std::vector<std::vector<int>> calibration_windows(const Model& m, const Tokenizer* tok,
                                                  const std::filesystem::path& data_dir, const CalibConfig& cfg) {
  const int len = m.cfg.max_seq_len > 0 ? std::min(cfg.seqlen, m.cfg.max_seq_len) : cfg.seqlen;
  if (!tok) {
    // Synthetic models have no tokenizer: seeded random ids exercise the same code paths.
    std::mt19937_64 rng(cfg.seed);
    std::uniform_int_distribution<int> id(0, m.cfg.vocab_size - 1);
    std::vector<std::vector<int>> out(cfg.samples, std::vector<int>(len));
    for (auto& w : out)
      for (int& t : w) t = id(rng);
    return out;
  }
  std::vector<int> tokens = tok->encode(load_corpus(cfg.dataset, data_dir), /*add_bos=*/true);
  if (long(tokens.size()) <= len)
    throw std::runtime_error(fmt::format("calibration corpus '{}' has {} tokens, fewer than one window of {}",
                                         cfg.dataset, tokens.size(), len));
  return sample_windows(tokens, cfg.samples, len, cfg.seed);
}

int site_key(const SiteId& id) { return id.layer * 16 + static_cast<int>(id.role); }

namespace {

// Accumulates one site's statistics window by window.
struct Accumulator {
  Vec ch_min, ch_max;
  std::vector<Eigen::RowVectorXf> rows;
  Eigen::MatrixXd xtx;
  long tokens = 0;

  void add(const Mat& x, long stride, int max_rows, bool hessian) {
    if (ch_min.size() == 0) {
      ch_min = Vec::Constant(x.cols(), 0.f);
      ch_max = Vec::Constant(x.cols(), 0.f);
      if (hessian) xtx = Eigen::MatrixXd::Zero(x.cols(), x.cols());
    }
    ch_min = ch_min.cwiseMin(x.colwise().minCoeff().transpose());
    ch_max = ch_max.cwiseMax(x.colwise().maxCoeff().transpose());
    for (long t = 0; t < x.rows(); ++t)
      if ((tokens + t) % stride == 0 && int(rows.size()) < max_rows) rows.push_back(x.row(t));
    if (hessian) {
      Eigen::MatrixXd xd = x.cast<double>();
      xtx.selfadjointView<Eigen::Lower>().rankUpdate(xd.transpose());
    }
    tokens += x.rows();
  }

  SiteStats finish(bool hessian) {
    SiteStats st;
    st.tokens = tokens;
    st.ch_min = ch_min;
    st.ch_max = ch_max;
    st.absmax = ch_max.cwiseMax(-ch_min);
    st.lo = ch_min.size() ? ch_min.minCoeff() : 0.f;
    st.hi = ch_max.size() ? ch_max.maxCoeff() : 0.f;
    st.rows.resize(long(rows.size()), ch_min.size());
    for (size_t i = 0; i < rows.size(); ++i) st.rows.row(long(i)) = rows[i];
    if (hessian) st.xtx = xtx.selfadjointView<Eigen::Lower>();
    return st;
  }
};

}  // namespace

void forward_with_site_hook(Model& m, const std::vector<std::vector<int>>& windows, SiteHook hook,
                            Progress* progress, const char* label) {
  struct Restore {  // puts the previous hook back however the loop ends
    Model& m;
    SiteHook saved;
    ~Restore() { m.site_hook = std::move(saved); }
  } restore{m, std::exchange(m.site_hook, std::move(hook))};
  if (progress) progress->begin(label, long(windows.size()));
  for (size_t i = 0; i < windows.size(); ++i) {
    m.forward(windows[i]);
    if (progress) progress->step(long(i + 1));
  }
  if (progress) progress->end();
}

SiteStatsMap collect_site_stats(Model& m, const std::vector<std::vector<int>>& windows, const CollectOptions& opt,
                                Progress* progress) {
  long total = 0;
  for (const auto& w : windows) total += long(w.size());
  const long stride = opt.max_rows > 0 ? std::max(1L, (total + opt.max_rows - 1) / opt.max_rows) : total + 1;
  std::map<int, Accumulator> acc;
  std::map<int, SiteId> ids;

  forward_with_site_hook(
      m, windows,
      [&](const SiteId& id, const Mat& x) {
        if (opt.want && !opt.want(id)) return;
        int key = site_key(id);
        ids[key] = id;
        if (opt.rows_of)
          acc[key].add(opt.rows_of(id, x), stride, opt.max_rows, opt.hessian);
        else
          acc[key].add(x, stride, opt.max_rows, opt.hessian);
      },
      progress);

  SiteStatsMap out;
  for (auto& [key, a] : acc) out[key] = a.finish(opt.hessian);
  return out;
}

void rescale_stats(SiteStats& st, const Vec& s) {
  const Vec inv = s.cwiseInverse();
  st.absmax = st.absmax.cwiseProduct(inv);
  st.ch_min = st.ch_min.cwiseProduct(inv);  // s > 0 keeps min and max in place
  st.ch_max = st.ch_max.cwiseProduct(inv);
  if (st.rows.size()) st.rows = st.rows * inv.asDiagonal();
  if (st.xtx.size()) {
    Eigen::VectorXd d = inv.cast<double>();
    st.xtx = d.asDiagonal() * st.xtx * d.asDiagonal();
  }
  st.lo = st.ch_min.size() ? st.ch_min.minCoeff() : 0.f;
  st.hi = st.ch_max.size() ? st.ch_max.maxCoeff() : 0.f;
}

}  // namespace fb
