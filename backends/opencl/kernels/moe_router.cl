// The MoE router (docs/moe-router.md, token choice): exactly the reference's semantics, scores in
// double rounded once to f32, so the chosen experts match it bit for bit. Two kernels:
// router_tokens (one work-item per token: score, group limit, top-K, weights) and router_tables
// (one work-group: capacity in assignment order, per-expert counts, offsets, perm, inv).

#ifdef PORTA_HAS_FP64

#define SCORE_SOFTMAX 0
#define SCORE_SIGMOID 1
#define SCORE_SQRT_SOFTPLUS 2
#define SCORE_IDENTITY 3

// (value, index) ranks after (previous, previous_index) in the order value desc, index asc.
inline bool ranks_after(float value, long index, float previous, long previous_index) {
  return value < previous || (value == previous && index > previous_index);
}

inline float rank_value(float c) { return isnan(c) ? -INFINITY : c; }

// The value group `grp` is ranked by: its best member, or the sum of its two best.
inline float group_value(global const float* ranked, long grp, long per_group, int top2) {
  float first = -INFINITY, second = -INFINITY;
  for (long m = 0; m < per_group; ++m) {
    const float v = ranked[grp * per_group + m];
    if (v > first) {
      second = first;
      first = v;
    } else if (v > second) {
      second = v;
    }
  }
  return rank_value(top2 ? first + second : first);
}

kernel void router_tokens(global const uchar* logits, ulong logits_offset, int logits_dtype,
                          global const uchar* bias, ulong bias_offset, int has_bias,
                          global const uchar* valid, ulong valid_offset, int valid_dtype,
                          int has_valid, global float* scores, global float* ranked_all, global int* raw_ids,
                          global uchar* weights, ulong weights_offset, global uchar* nonfinite,
                          ulong nonfinite_offset, long tokens, long experts, long top_k,
                          int score, int select_logit, long groups, long topk_groups, int top2,
                          int renormalize, double renorm_eps, double scale) {
  const long t = get_global_id(0);
  if (t >= tokens) return;
  global const uchar* x = AT(logits, logits_offset);
  const long row = t * experts;
  global float* s = scores + row;
  global float* ranked = ranked_all + row;
  if (has_valid) {
    global const uchar* flags = AT(valid, valid_offset);
    const long flag = valid_dtype == DT_I8 ? (long)((global const char*)flags)[t]
                                           : load_index(flags, valid_dtype, t);
    if (flag == 0) {  // step 5: a padding row gets no experts and adds nothing to the scores
      for (long e = 0; e < experts; ++e) s[e] = 0.0f;
      for (long k = 0; k < top_k; ++k) {
        raw_ids[t * top_k + k] = -1;
        ((global float*)AT(weights, weights_offset))[t * top_k + k] = 0.0f;
      }
      ((global int*)AT(nonfinite, nonfinite_offset))[t] = 0;
      return;
    }
  }

  // Step 1: scores, in double, rounded once.
  if (score == SCORE_SOFTMAX) {
    float row_max = -INFINITY;
    bool has_nan = false;
    for (long e = 0; e < experts; ++e) {
      const float v = load_f(x, logits_dtype, row + e);
      has_nan = has_nan || isnan(v);
      row_max = row_max < v ? v : row_max;
    }
    double sum = 0.0;
    for (long e = 0; e < experts; ++e)
      sum += exp((double)load_f(x, logits_dtype, row + e) - (double)row_max);
    for (long e = 0; e < experts; ++e)
      s[e] = has_nan ? NAN
                     : (float)(exp((double)load_f(x, logits_dtype, row + e) - (double)row_max) /
                               sum);
  } else {
    for (long e = 0; e < experts; ++e) {
      const double v = load_f(x, logits_dtype, row + e);
      if (score == SCORE_SIGMOID)
        s[e] = (float)(1.0 / (1.0 + exp(-v)));
      else if (score == SCORE_SQRT_SOFTPLUS)
        s[e] = (float)sqrt(fmax(v, 0.0) + log1p(exp(-fabs(v))));
      else
        s[e] = (float)v;
    }
  }
  int any_nan = 0;
  for (long e = 0; e < experts; ++e) {
    float c = select_logit ? load_f(x, logits_dtype, row + e) : s[e];
    if (has_bias) c += ((global const float*)AT(bias, bias_offset))[e];
    if (isnan(c)) any_nan = 1;
    ranked[e] = rank_value(c);
  }
  ((global int*)AT(nonfinite, nonfinite_offset))[t] = any_nan;

  // Step 2: keep the topk_groups best groups; every other expert ranks -inf.
  if (groups > 1) {
    const long per_group = experts / groups;
    ulong kept = 0;
    float previous = 0.0f;
    long previous_group = -1;
    for (long pick = 0; pick < topk_groups; ++pick) {
      long best_group = -1;
      float best = 0.0f;
      for (long grp = 0; grp < groups; ++grp) {
        const float v = group_value(ranked, grp, per_group, top2);
        if (previous_group >= 0 && !ranks_after(v, grp, previous, previous_group)) continue;
        if (best_group < 0 || v > best) {
          best = v;
          best_group = grp;
        }
      }
      kept |= 1ul << best_group;
      previous = best;
      previous_group = best_group;
    }
    for (long e = 0; e < experts; ++e)
      if (((kept >> (e / per_group)) & 1ul) == 0) ranked[e] = -INFINITY;
  }

  // Steps 3 and 4: the K best experts and their weights from the unbiased scores.
  double total = 0.0;
  float previous = 0.0f;
  long previous_id = -1;
  for (long k = 0; k < top_k; ++k) {
    long best_id = -1;
    float best = 0.0f;
    for (long e = 0; e < experts; ++e) {
      const float v = ranked[e];
      if (previous_id >= 0 && !ranks_after(v, e, previous, previous_id)) continue;
      if (best_id < 0 || v > best) {
        best = v;
        best_id = e;
      }
    }
    raw_ids[t * top_k + k] = (int)best_id;
    total += select_logit ? 1.0 / (1.0 + exp(-(double)load_f(x, logits_dtype, row + best_id)))
                          : (double)s[best_id];
    previous = best;
    previous_id = best_id;
  }
  global float* w = (global float*)AT(weights, weights_offset);
  for (long k = 0; k < top_k; ++k) {
    const long id = raw_ids[t * top_k + k];
    double value = select_logit ? 1.0 / (1.0 + exp(-(double)load_f(x, logits_dtype, row + id)))
                                : (double)s[id];
    if (renormalize) value /= total + renorm_eps;
    value *= scale;
    w[t * top_k + k] = (float)value;
  }
}

// One work-group. Assignment a = t * K + k is kept if fewer than `capacity` earlier assignments
// chose its expert; each expert's kept assignments fill its block of perm in order.
kernel void router_tables(global const int* raw_ids, global const float* scores,
                          global uchar* ids_out, ulong ids_offset, global uchar* weights_out,
                          ulong weights_offset, global uchar* counts_out, ulong counts_offset,
                          global uchar* offsets_out, ulong offsets_offset, global uchar* perm_out,
                          ulong perm_offset, global uchar* inv_out, ulong inv_offset,
                          global uchar* dropped_out, ulong dropped_offset,
                          global uchar* mean_out, ulong mean_offset, long tokens, long experts,
                          long top_k, float capacity_factor, long block, long perm_rows) {
  const int lid = (int)get_local_id(0), size = (int)get_local_size(0);
  global int* ids = (global int*)AT(ids_out, ids_offset);
  global float* weights = (global float*)AT(weights_out, weights_offset);
  global int* counts = (global int*)AT(counts_out, counts_offset);
  global int* offsets = (global int*)AT(offsets_out, offsets_offset);
  global int* perm = (global int*)AT(perm_out, perm_offset);
  global int* inv = (global int*)AT(inv_out, inv_offset);
  global int* dropped = (global int*)AT(dropped_out, dropped_offset);
  global float* mean = (global float*)AT(mean_out, mean_offset);
  const long assignments = tokens * top_k;

  // The capacity counts valid rows only (a valid row's K assignments are all >= 0), in f32 as the
  // reference: C = ceil(factor * rows * K / E), at most rows * K; a factor of 0 means no limit.
  long valid_rows = 0;
  for (long t = 0; t < tokens; ++t) valid_rows += raw_ids[t * top_k] >= 0;
  long capacity = assignments;
  if (capacity_factor > 0.0f) {
    const long limit = valid_rows * top_k;
    const float slots = ceil(capacity_factor * (float)limit / (float)experts);
    capacity = !(slots < (float)limit) ? limit : max((long)slots, 0L);
  }
  for (long r = lid; r < perm_rows; r += size) perm[r] = (int)assignments;  // padding sentinel
  for (long a = lid; a < assignments; a += size) {
    inv[a] = -1;
    if (raw_ids[a] < 0) ids[a] = -1;
  }
  for (long e = lid; e < experts; e += size) {
    long chosen = 0;
    for (long a = 0; a < assignments; ++a) chosen += raw_ids[a] == e;
    const long kept = min(chosen, capacity);
    counts[e] = (int)kept;
    dropped[e] = (int)(chosen - kept);
    double sum = 0.0;
    for (long t = 0; t < tokens; ++t) sum += scores[t * experts + e];
    mean[e] = valid_rows > 0 ? (float)(sum / (double)valid_rows) : 0.0f;
  }
  barrier(CLK_GLOBAL_MEM_FENCE);
  if (lid == 0) {
    long cursor = 0;
    for (long e = 0; e < experts; ++e) {
      offsets[e] = (int)cursor;
      cursor += counts[e];
      cursor += (block - cursor % block) % block;
    }
    offsets[experts] = (int)cursor;
  }
  barrier(CLK_GLOBAL_MEM_FENCE);
  for (long e = lid; e < experts; e += size) {
    const long base = offsets[e];
    long rank = 0;
    for (long a = 0; a < assignments; ++a) {
      if (raw_ids[a] != e) continue;
      if (rank < capacity) {
        perm[base + rank] = (int)a;
        inv[a] = (int)(base + rank);
        ids[a] = (int)e;
      } else {
        inv[a] = -1;
        ids[a] = -1;
        weights[a] = 0.0f;
      }
      ++rank;
    }
  }
}

#endif
