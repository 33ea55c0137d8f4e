// Scaled-dot-product attention, written for decode (few queries, many keys): one work-group per
// (query token, query head). The work-items split the keys for the scores and the softmax, then
// the value channels for the weighted sum. Causal masking aligns the queries with the last key
// positions; with a KV cache the keys are cache[0:cache_len] followed by the new ones, and
// cache_len is read on the device, so decoding needs no host round trip.

inline global const uchar* kv_row(global const uchar* fresh, global const uchar* cache, long j,
                                  long cached, long kv_heads, long g, long dim, int element) {
  if (j < cached) return cache + ((j * kv_heads + g) * dim) * element;
  return fresh + (((j - cached) * kv_heads + g) * dim) * element;
}

kernel void attention_decode(global const uchar* q, ulong q_offset, global const uchar* k,
                             ulong k_offset, global const uchar* v, ulong v_offset,
                             global const uchar* k_cache, ulong k_cache_offset,
                             global const uchar* v_cache, ulong v_cache_offset,
                             global const uchar* cache_len, ulong cache_len_offset,
                             int cache_len_dtype, int has_cache, int dtype,
                             global float* scores, global uchar* out, ulong out_offset,
                             long q_tokens, long q_heads, long kv_tokens, long kv_heads,
                             long key_dim, long value_dim, long capacity, long max_keys,
                             int causal, float scale, local float* scratch) {
  const long item = get_group_id(0);
  const long i = item / q_heads, h = item % q_heads;
  const int lid = (int)get_local_id(0), size = (int)get_local_size(0);
  const int element = dtype == DT_F32 ? 4 : 2;
  long cached = 0;
  if (has_cache) {
    cached = load_index(AT(cache_len, cache_len_offset), cache_len_dtype, 0);
    cached = clamp(cached, 0L, capacity);
  }
  const long keys = cached + kv_tokens;
  const long visible = causal ? clamp(keys - q_tokens + i + 1, 0L, keys) : keys;
  const long g = h / (q_heads / kv_heads);
  global uchar* y = AT(out, out_offset);
  const long out_base = (i * q_heads + h) * value_dim;
  if (visible == 0) {
    for (long c = lid; c < value_dim; c += size) store_f(y, dtype, out_base + c, 0.0f);
    return;
  }
  global const uchar* query = AT(q, q_offset) + ((i * q_heads + h) * key_dim) * element;
  global const uchar* fresh_k = AT(k, k_offset);
  global const uchar* cache_k = AT(k_cache, k_cache_offset);
  global float* s = scores + item * max_keys;
  float best = -INFINITY;
  for (long j = lid; j < visible; j += size) {
    global const uchar* key = kv_row(fresh_k, cache_k, j, cached, kv_heads, g, key_dim, element);
    float dot = 0.0f;
    for (long c = 0; c < key_dim; ++c) dot += load_f(query, dtype, c) * load_f(key, dtype, c);
    const float score = dot * scale;
    s[j] = score;
    best = fmax(best, score);
  }
  best = group_max(best, scratch);
  float sum = 0.0f;
  for (long j = lid; j < visible; j += size) {
    const float e = exp(s[j] - best);
    s[j] = e;
    sum += e;
  }
  sum = group_sum(sum, scratch);
  barrier(CLK_GLOBAL_MEM_FENCE);  // every work-item's weights are visible to all
  global const uchar* fresh_v = AT(v, v_offset);
  global const uchar* cache_v = AT(v_cache, v_cache_offset);
  for (long c = lid; c < value_dim; c += size) {
    float acc = 0.0f;
    for (long j = 0; j < visible; ++j) {
      global const uchar* value =
          kv_row(fresh_v, cache_v, j, cached, kv_heads, g, value_dim, element);
      acc += s[j] * load_f(value, dtype, c);
    }
    store_f(y, dtype, out_base + c, acc / sum);
  }
}
