// A straightforward re-implementation of the Hugging Face modelling code of DeepSeek-V2/V3,
// Mixtral, Qwen2-MoE and Qwen3-MoE, in plain loops and double precision, written from the
// modelling files' equations and independent of porta's kernels: MLA in its expanded form (k and
// v rebuilt from the latent by kv_b_proj, DeepSeek's de-interleaving rope with YaRN tables), the
// routers as each family's MoE gate computes them (masked groups filled with 0.0, as the HF code
// does), experts looped one by one. FP8 weights are dequantised here from weight_scale_inv.
#pragma once

#include <algorithm>
#include <cmath>
#include <map>
#include <numeric>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <porta/dtype.hpp>
#include <porta/tensor.hpp>

namespace porta::test {

using Mat = std::vector<double>;  // row-major

class HfReference {
 public:
  HfReference(const std::string& config_json,
              const std::vector<std::pair<std::string, Tensor>>& tensors)
      : j_(nlohmann::json::parse(config_json)) {
    std::map<std::string, Tensor> by_name(tensors.begin(), tensors.end());
    for (const auto& [name, t] : by_name) {
      if (name.ends_with("_scale_inv")) continue;
      std::vector<float> v = t.to_f32();
      if (t.dtype() == DType::F8E4M3) {
        const Tensor& s = by_name.at(name + "_scale_inv");
        const auto bn = j_["quantization_config"]["weight_block_size"][0].get<std::int64_t>();
        const auto bk = j_["quantization_config"]["weight_block_size"][1].get<std::int64_t>();
        const auto k = t.shape()[1];
        const auto sk = s.shape()[1];
        for (std::int64_t r = 0; r < t.shape()[0]; ++r)
          for (std::int64_t c = 0; c < k; ++c)
            v[r * k + c] = v[r * k + c] * s.at_f32((r / bn) * sk + c / bk);
      }
      w_[name] = Mat(v.begin(), v.end());
    }
    type_ = j_["model_type"].get<std::string>();
    deepseek_ = type_.starts_with("deepseek");
    h_ = j_["hidden_size"].get<int>();
    heads_ = j_["num_attention_heads"].get<int>();
    kv_heads_ = j_.value("num_key_value_heads", heads_);
    layers_ = j_["num_hidden_layers"].get<int>();
    vocab_ = j_["vocab_size"].get<int>();
    eps_ = j_.value("rms_norm_eps", 1e-6);
    theta_ = j_.value("rope_theta", 10000.0);
    head_dim_ = j_.contains("head_dim") ? j_["head_dim"].get<int>() : h_ / heads_;
  }

  // Logits [T, V] of ids at positions 0..T-1; `attn` and `mlp` receive each layer's block outputs.
  Mat forward(const std::vector<int>& ids, std::vector<Mat>* attn = nullptr,
              std::vector<Mat>* mlp = nullptr) const {
    const int t = static_cast<int>(ids.size());
    Mat x(static_cast<std::size_t>(t * h_));
    const Mat& emb = w_.at("model.embed_tokens.weight");
    for (int i = 0; i < t; ++i) std::copy_n(emb.begin() + ids[i] * h_, h_, x.begin() + i * h_);
    for (int l = 0; l < layers_; ++l) {
      const std::string p = fmt::format("model.layers.{}.", l);
      Mat a = deepseek_ ? mla(p, rms_norm(x, p + "input_layernorm.weight", t), t)
                        : gqa(p, rms_norm(x, p + "input_layernorm.weight", t), t);
      for (std::size_t i = 0; i < x.size(); ++i) x[i] += a[i];
      const Mat hn = rms_norm(x, p + "post_attention_layernorm.weight", t);
      Mat m = is_moe(l) ? moe(p, hn, t) : dense(p + "mlp.", hn, t);
      for (std::size_t i = 0; i < x.size(); ++i) x[i] += m[i];
      if (attn) attn->push_back(a);
      if (mlp) mlp->push_back(m);
    }
    x = rms_norm(x, "model.norm.weight", t);
    const std::string head =
        w_.count("lm_head.weight") ? "lm_head.weight" : "model.embed_tokens.weight";
    return linear(x, t, head, h_, vocab_);
  }

 private:
  bool is_moe(int l) const {
    if (deepseek_) {
      if (j_.value("n_routed_experts", 0) == 0) return false;
      return l >= j_.value("first_k_dense_replace", 0) && l % j_.value("moe_layer_freq", 1) == 0;
    }
    if (j_.contains("mlp_only_layers"))
      for (const auto& v : j_["mlp_only_layers"])
        if (v.get<int>() == l) return false;
    return (l + 1) % j_.value("decoder_sparse_step", 1) == 0;
  }

  Mat rms_norm(const Mat& x, const std::string& weight, int rows) const {
    const Mat& g = w_.at(weight);
    const int n = static_cast<int>(g.size());
    Mat out(x.size());
    for (int r = 0; r < rows * static_cast<int>(x.size() / (rows * n)); ++r) {
      double ss = 0;
      for (int i = 0; i < n; ++i) ss += x[r * n + i] * x[r * n + i];
      const double inv = 1.0 / std::sqrt(ss / n + eps_);
      for (int i = 0; i < n; ++i) out[r * n + i] = x[r * n + i] * inv * g[i];
    }
    return out;
  }

  // y[rows, out] = x[rows, in] · W[out, in]ᵀ (+ bias)
  Mat linear(const Mat& x, int rows, const std::string& weight, int in, int out) const {
    const Mat& w = w_.at(weight);
    Mat y(static_cast<std::size_t>(rows * out));
    for (int r = 0; r < rows; ++r)
      for (int o = 0; o < out; ++o) {
        double s = 0;
        for (int i = 0; i < in; ++i) s += x[r * in + i] * w[o * in + i];
        y[r * out + o] = s;
      }
    const std::string bias = weight.substr(0, weight.size() - 6) + "bias";
    if (weight.ends_with(".weight") && w_.count(bias))
      for (int r = 0; r < rows; ++r)
        for (int o = 0; o < out; ++o) y[r * out + o] += w_.at(bias)[o];
    return y;
  }

  static double silu(double v) { return v / (1.0 + std::exp(-v)); }

  Mat dense(const std::string& p, const Mat& x, int t, int inter = 0) const {
    if (inter == 0) inter = static_cast<int>(w_.at(p + "gate_proj.weight").size() / h_);
    return swiglu_mlp(x, t, p + "gate_proj.weight", p + "up_proj.weight", p + "down_proj.weight",
                      inter);
  }

  Mat swiglu_mlp(const Mat& x, int t, const std::string& gate, const std::string& up,
                 const std::string& down, int inter) const {
    Mat g = linear(x, t, gate, h_, inter);
    const Mat u = linear(x, t, up, h_, inter);
    for (std::size_t i = 0; i < g.size(); ++i) g[i] = silu(g[i]) * u[i];
    return linear(g, t, down, inter, h_);
  }

  static double yarn_get_mscale(double scale, double mscale) {
    return scale <= 1 ? 1.0 : 0.1 * mscale * std::log(scale) + 1.0;
  }

  // cos/sin tables [T, dim] as HF builds them (freqs concatenated twice), with YaRN if configured.
  void rope_tables(int t, int dim, Mat& cos, Mat& sin) const {
    std::vector<double> inv_freq(static_cast<std::size_t>(dim / 2));
    double m = 1.0;
    const bool yarn = j_.contains("rope_scaling") && !j_["rope_scaling"].is_null() &&
                      j_["rope_scaling"].value("type", "") == "yarn";
    for (int i = 0; i < dim / 2; ++i) inv_freq[i] = 1.0 / std::pow(theta_, 2.0 * i / dim);
    if (yarn) {
      const auto& s = j_["rope_scaling"];
      const double factor = s["factor"].get<double>();
      const double orig = s["original_max_position_embeddings"].get<double>();
      const double beta_fast = s.value("beta_fast", 32.0);
      const double beta_slow = s.value("beta_slow", 1.0);
      auto correction_dim = [&](double rotations) {
        return (dim * std::log(orig / (rotations * 2 * M_PI))) / (2 * std::log(theta_));
      };
      const double low = std::max(std::floor(correction_dim(beta_fast)), 0.0);
      double high = std::min(std::ceil(correction_dim(beta_slow)), dim - 1.0);
      if (low == high) high += 0.001;
      for (int i = 0; i < dim / 2; ++i) {
        const double ramp = std::clamp((i - low) / (high - low), 0.0, 1.0);
        const double extra_mask = 1.0 - ramp;
        const double extra = inv_freq[i];
        const double inter = inv_freq[i] / factor;
        inv_freq[i] = inter * (1 - extra_mask) + extra * extra_mask;
      }
      m = yarn_get_mscale(factor, s.value("mscale", 1.0)) /
          yarn_get_mscale(factor, s.value("mscale_all_dim", 0.0));
    }
    cos.assign(static_cast<std::size_t>(t * dim), 0);
    sin.assign(static_cast<std::size_t>(t * dim), 0);
    for (int p = 0; p < t; ++p)
      for (int i = 0; i < dim; ++i) {
        const double f = p * inv_freq[i % (dim / 2)];
        cos[p * dim + i] = std::cos(f) * m;
        sin[p * dim + i] = std::sin(f) * m;
      }
  }

  // x [T, H, dim] in place: rotate_half rope; DeepSeek first de-interleaves each head
  // (view(d/2, 2).transpose), exactly as its apply_rotary_pos_emb does.
  void apply_rope(Mat& x, int t, int heads, int dim, bool deinterleave) const {
    Mat cos, sin;
    rope_tables(t, dim, cos, sin);
    std::vector<double> v(static_cast<std::size_t>(dim));
    for (int p = 0; p < t; ++p)
      for (int hh = 0; hh < heads; ++hh) {
        double* row = &x[(p * heads + hh) * dim];
        for (int i = 0; i < dim; ++i)
          v[i] = deinterleave ? row[i < dim / 2 ? 2 * i : 2 * (i - dim / 2) + 1] : row[i];
        for (int i = 0; i < dim; ++i) {
          const double rotated = i < dim / 2 ? -v[i + dim / 2] : v[i - dim / 2];
          row[i] = v[i] * cos[p * dim + i] + rotated * sin[p * dim + i];
        }
      }
  }

  // Causal softmax attention: q [T, Hq, dk], k [T, Hkv, dk], v [T, Hkv, dv] -> [T, Hq·dv].
  static Mat sdpa(const Mat& q, const Mat& k, const Mat& v, int t, int hq, int hkv, int dk, int dv,
                  double scale) {
    Mat out(static_cast<std::size_t>(t * hq * dv), 0);
    std::vector<double> s(static_cast<std::size_t>(t));
    for (int hh = 0; hh < hq; ++hh) {
      const int kh = hh / (hq / hkv);
      for (int i = 0; i < t; ++i) {
        double mx = -1e300;
        for (int j = 0; j <= i; ++j) {
          double d = 0;
          for (int c = 0; c < dk; ++c) d += q[(i * hq + hh) * dk + c] * k[(j * hkv + kh) * dk + c];
          s[j] = d * scale;
          mx = std::max(mx, s[j]);
        }
        double sum = 0;
        for (int j = 0; j <= i; ++j) sum += (s[j] = std::exp(s[j] - mx));
        for (int j = 0; j <= i; ++j)
          for (int c = 0; c < dv; ++c)
            out[(i * hq + hh) * dv + c] += s[j] / sum * v[(j * hkv + kh) * dv + c];
      }
    }
    return out;
  }

  Mat mla(const std::string& p, const Mat& x, int t) const {
    const std::string a = p + "self_attn.";
    const int nope = j_["qk_nope_head_dim"].get<int>();
    const int rope = j_["qk_rope_head_dim"].get<int>();
    const int vd = j_["v_head_dim"].get<int>();
    const int r = j_["kv_lora_rank"].get<int>();
    const int qd = nope + rope;
    const bool q_lora = j_.contains("q_lora_rank") && !j_["q_lora_rank"].is_null();
    Mat q;
    if (q_lora) {
      const int qr = j_["q_lora_rank"].get<int>();
      q = linear(
          rms_norm(linear(x, t, a + "q_a_proj.weight", h_, qr), a + "q_a_layernorm.weight", t), t,
          a + "q_b_proj.weight", qr, heads_ * qd);
    } else {
      q = linear(x, t, a + "q_proj.weight", h_, heads_ * qd);
    }
    const Mat ckv = linear(x, t, a + "kv_a_proj_with_mqa.weight", h_, r + rope);
    Mat c(static_cast<std::size_t>(t * r));
    Mat k_pe(static_cast<std::size_t>(t * rope));
    for (int i = 0; i < t; ++i) {
      std::copy_n(ckv.begin() + i * (r + rope), r, c.begin() + i * r);
      std::copy_n(ckv.begin() + i * (r + rope) + r, rope, k_pe.begin() + i * rope);
    }
    const Mat kv = linear(rms_norm(c, a + "kv_a_layernorm.weight", t), t, a + "kv_b_proj.weight", r,
                          heads_ * (nope + vd));
    // Split q into nope and pe, rope the pe parts, rebuild full q and k per head.
    Mat q_pe(static_cast<std::size_t>(t * heads_ * rope));
    for (int i = 0; i < t * heads_; ++i)
      std::copy_n(q.begin() + i * qd + nope, rope, q_pe.begin() + i * rope);
    apply_rope(q_pe, t, heads_, rope, true);
    apply_rope(k_pe, t, 1, rope, true);
    Mat qf(static_cast<std::size_t>(t * heads_ * qd)), kf(qf.size());
    Mat vf(static_cast<std::size_t>(t * heads_ * vd));
    for (int i = 0; i < t; ++i)
      for (int hh = 0; hh < heads_; ++hh) {
        const int row = i * heads_ + hh;
        for (int c2 = 0; c2 < nope; ++c2) {
          qf[row * qd + c2] = q[row * qd + c2];
          kf[row * qd + c2] = kv[row * (nope + vd) + c2];
        }
        for (int c2 = 0; c2 < rope; ++c2) {
          qf[row * qd + nope + c2] = q_pe[row * rope + c2];
          kf[row * qd + nope + c2] = k_pe[i * rope + c2];
        }
        for (int c2 = 0; c2 < vd; ++c2) vf[row * vd + c2] = kv[row * (nope + vd) + nope + c2];
      }
    double scale = 1.0 / std::sqrt(static_cast<double>(qd));
    if (j_.contains("rope_scaling") && !j_["rope_scaling"].is_null()) {
      const auto& s = j_["rope_scaling"];
      const double mad = s.value("mscale_all_dim", 0.0);
      if (mad != 0) {
        const double m = yarn_get_mscale(s["factor"].get<double>(), mad);
        scale *= m * m;
      }
    }
    const Mat o = sdpa(qf, kf, vf, t, heads_, heads_, qd, vd, scale);
    return linear(o, t, a + "o_proj.weight", heads_ * vd, h_);
  }

  Mat gqa(const std::string& p, const Mat& x, int t) const {
    const std::string a = p + "self_attn.";
    const int d = head_dim_;
    Mat q = linear(x, t, a + "q_proj.weight", h_, heads_ * d);
    Mat k = linear(x, t, a + "k_proj.weight", h_, kv_heads_ * d);
    const Mat v = linear(x, t, a + "v_proj.weight", h_, kv_heads_ * d);
    if (w_.count(a + "q_norm.weight")) {
      q = rms_norm(q, a + "q_norm.weight", t);
      k = rms_norm(k, a + "k_norm.weight", t);
    }
    apply_rope(q, t, heads_, d, false);
    apply_rope(k, t, kv_heads_, d, false);
    const Mat o =
        sdpa(q, k, v, t, heads_, kv_heads_, d, d, 1.0 / std::sqrt(static_cast<double>(d)));
    return linear(o, t, a + "o_proj.weight", heads_ * d, h_);
  }

  // The chosen experts and their weights for one token, as each family's gate computes them.
  void route(const std::vector<double>& logits, std::vector<int>& ids, std::vector<double>& weights,
             const std::string& p) const {
    const int e = static_cast<int>(logits.size());
    const int k = j_["num_experts_per_tok"].get<int>();
    std::vector<double> scores(logits.size());
    const std::string scoring =
        j_.value("scoring_func", deepseek_ && type_ == "deepseek_v3" ? "sigmoid" : "softmax");
    if (scoring == "sigmoid") {
      for (int i = 0; i < e; ++i) scores[i] = 1.0 / (1.0 + std::exp(-logits[i]));
    } else {
      const double mx = *std::max_element(logits.begin(), logits.end());
      double sum = 0;
      for (int i = 0; i < e; ++i) sum += (scores[i] = std::exp(logits[i] - mx));
      for (auto& s : scores) s /= sum;
    }
    std::vector<double> choice = scores;
    const std::string method = j_.value("topk_method", "greedy");
    if (method == "noaux_tc") {
      const Mat& bias = w_.at(p + "gate.e_score_correction_bias");
      for (int i = 0; i < e; ++i) choice[i] += bias[i];
    }
    if (method == "noaux_tc" || method == "group_limited_greedy") {
      const int groups = j_["n_group"].get<int>();
      const int keep = j_["topk_group"].get<int>();
      const int per = e / groups;
      std::vector<double> group_score(static_cast<std::size_t>(groups));
      for (int g = 0; g < groups; ++g) {
        std::vector<double> in(choice.begin() + g * per, choice.begin() + (g + 1) * per);
        std::sort(in.rbegin(), in.rend());
        group_score[g] = method == "noaux_tc" ? in[0] + in[1] : in[0];
      }
      std::vector<int> order(static_cast<std::size_t>(groups));
      std::iota(order.begin(), order.end(), 0);
      std::stable_sort(order.begin(), order.end(),
                       [&](int x, int y) { return group_score[x] > group_score[y]; });
      for (int g = keep; g < groups; ++g)
        for (int i = 0; i < per; ++i) choice[order[g] * per + i] = 0.0;  // masked_fill(0.0)
    }
    std::vector<int> order(static_cast<std::size_t>(e));
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(),
                     [&](int x, int y) { return choice[x] > choice[y]; });
    ids.assign(order.begin(), order.begin() + k);
    weights.clear();
    for (int id : ids) weights.push_back(scores[id]);
    const bool norm = j_.value("norm_topk_prob", type_ == "mixtral" || type_ == "qwen3_moe");
    const double rsf = j_.value("routed_scaling_factor", 1.0);
    const bool renorm = (type_ == "mixtral") || (norm && (k > 1 || !deepseek_));
    if (renorm) {
      double sum = 0;
      for (double v : weights) sum += v;
      for (double& v : weights) v /= deepseek_ ? sum + 1e-20 : sum;
    }
    if (type_ == "deepseek_v3" || (type_ == "deepseek_v2" && !renorm))
      for (double& v : weights) v *= rsf;
  }

  Mat moe(const std::string& p, const Mat& x, int t) const {
    const bool mixtral = type_ == "mixtral";
    const std::string m = p + (mixtral ? "block_sparse_moe." : "mlp.");
    const int e = static_cast<int>(w_.at(m + "gate.weight").size() / h_);
    const Mat logits = linear(x, t, m + "gate.weight", h_, e);
    const int inter = static_cast<int>(
        w_.at(m + (mixtral ? "experts.0.w1.weight" : "experts.0.gate_proj.weight")).size() / h_);
    Mat out(x.size(), 0);
    for (int i = 0; i < t; ++i) {
      std::vector<int> ids;
      std::vector<double> wts;
      route(std::vector<double>(logits.begin() + i * e, logits.begin() + (i + 1) * e), ids, wts, m);
      const Mat row(x.begin() + i * h_, x.begin() + (i + 1) * h_);
      for (std::size_t k = 0; k < ids.size(); ++k) {
        const std::string ex = fmt::format("{}experts.{}.", m, ids[k]);
        const Mat y = mixtral ? swiglu_mlp(row, 1, ex + "w1.weight", ex + "w3.weight",
                                           ex + "w2.weight", inter)
                              : swiglu_mlp(row, 1, ex + "gate_proj.weight", ex + "up_proj.weight",
                                           ex + "down_proj.weight", inter);
        for (int c = 0; c < h_; ++c) out[i * h_ + c] += wts[k] * y[c];
      }
      const std::string shared = m + (type_ == "qwen2_moe" ? "shared_expert." : "shared_experts.");
      if (w_.count(shared + "gate_proj.weight")) {
        const int is = static_cast<int>(w_.at(shared + "gate_proj.weight").size() / h_);
        Mat y = swiglu_mlp(row, 1, shared + "gate_proj.weight", shared + "up_proj.weight",
                           shared + "down_proj.weight", is);
        if (w_.count(m + "shared_expert_gate.weight")) {
          const double g = linear(row, 1, m + "shared_expert_gate.weight", h_, 1)[0];
          for (double& v : y) v *= 1.0 / (1.0 + std::exp(-g));
        }
        for (int c = 0; c < h_; ++c) out[i * h_ + c] += y[c];
      }
    }
    return out;
  }

  nlohmann::json j_;
  std::map<std::string, Mat> w_;
  std::string type_;
  bool deepseek_ = false;
  int h_ = 0, heads_ = 0, kv_heads_ = 0, layers_ = 0, vocab_ = 0, head_dim_ = 0;
  double eps_ = 1e-6, theta_ = 10000;
};

}  // namespace porta::test
