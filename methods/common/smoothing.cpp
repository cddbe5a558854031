#include "methods/common/smoothing.h"

#include <fmt/format.h>

#include <cmath>
#include <stdexcept>

namespace fb {

std::vector<SmoothGroup> smoothable_groups(const Model& m) {
  std::vector<SmoothGroup> out;
  const bool llama = m.cfg.arch == Arch::llama;
  for (int l = 0; l < int(m.blocks.size()); ++l) {
    out.push_back({l, {Role::q, Role::k, Role::v}});
    out.push_back({l, llama ? std::vector<Role>{Role::gate, Role::up} : std::vector<Role>{Role::fc1}});
  }
  return out;
}

Vec smoothing_scales(const Vec& act_absmax, const std::vector<const Mat*>& weights, float alpha) {
  const long K = act_absmax.size();
  Vec w_absmax = Vec::Zero(K);
  for (const Mat* W : weights) {
    if (W->cols() != K)
      throw std::invalid_argument(fmt::format("smoothing_scales: weight has {} input columns, statistics have {}",
                                              W->cols(), K));
    w_absmax = w_absmax.cwiseMax(W->cwiseAbs().colwise().maxCoeff().transpose());
  }
  Vec s(K);
  for (long k = 0; k < K; ++k) {
    float w = std::max(w_absmax[k], 1e-5f);
    s[k] = std::max(std::pow(act_absmax[k], alpha) / std::pow(w, 1.f - alpha), 1e-5f);
  }
  return s;
}

void fold_smoothing(Norm& norm, const std::vector<LinearSite*>& sites, const Vec& s) {
  if (norm.gamma.size() != s.size())
    throw std::invalid_argument(fmt::format("fold_smoothing: norm has {} channels, scales {}", norm.gamma.size(), s.size()));
  norm.gamma = norm.gamma.cwiseQuotient(s);
  if (norm.beta.size()) norm.beta = norm.beta.cwiseQuotient(s);
  for (LinearSite* site : sites) {
    if (site->op)
      throw std::logic_error(fmt::format("fold_smoothing: layer {} {} already has an operator; smooth before quantizing",
                                         site->id.layer, role_name(site->id.role)));
    site->W = site->W * s.asDiagonal();
  }
}

std::vector<LinearSite*> group_sites(Model& m, const SmoothGroup& g) {
  std::vector<LinearSite*> sites;
  for (Role r : g.roles) sites.push_back(&m.site({g.layer, r}));
  return sites;
}

std::vector<const Mat*> weights_of(const std::vector<LinearSite*>& sites) {
  std::vector<const Mat*> weights;
  for (const LinearSite* s : sites) weights.push_back(&s->W);
  return weights;
}

std::vector<SmoothResult> smooth_model(Model& m, SiteStatsMap& stats, float alpha) {
  std::vector<SmoothResult> out;
  for (const SmoothGroup& g : smoothable_groups(m)) {
    const std::vector<LinearSite*> sites = group_sites(m, g);
    auto it = stats.find(site_key(sites.front()->id));
    if (it == stats.end())
      throw std::runtime_error(fmt::format("smoothing: no calibration statistics for layer {} {}", g.layer,
                                           role_name(g.roles.front())));
    Vec s = smoothing_scales(it->second.absmax, weights_of(sites), alpha);
    fold_smoothing(*m.norm_before(sites.front()->id), sites, s);
    for (LinearSite* site : sites) {
      auto st = stats.find(site_key(site->id));
      if (st != stats.end()) rescale_stats(st->second, s);
    }
    out.push_back({g, s});
  }
  return out;
}

}  // namespace fb
