// Device-side checks of data-dependent index tables (embedding ids, moe perm / inv / offsets,
// attention's cache_len): the kernels that read such a table never read or write out of bounds
// whatever it holds, and this kernel records the first bad entry so that the backend can raise
// the reference's error after the run instead of returning a silently wrong answer.
//
// One work-group scans the table (each work-item a strided share, stopping at its first bad
// entry) and a local min-reduction finds the first bad position in table order, so the report is
// deterministic and names the entry the reference would name. Work-item 0 writes the record of
// four longs: the position (-1: the table is good), the value there, the value before it, and
// the reason (CHECK_OFFSETS: 0 offsets[0] negative, 1 decreasing, 2 past the rows).
#define CHECK_RANGE 0   // every entry in [lo, hi)
#define CHECK_OFFSETS 1 // offsets[0] >= 0, non-decreasing, offsets[count - 1] <= hi

inline bool index_is_bad(global const uchar* t, int dtype, long i, long count, int mode, long lo,
                         long hi) {
  const long v = load_index(t, dtype, i);
  if (mode == CHECK_RANGE) return v < lo || v >= hi;
  return (i == 0 && v < 0) || (i > 0 && v < load_index(t, dtype, i - 1)) ||
         (i == count - 1 && v > hi);
}

kernel void check_indices(global const uchar* table_buffer, ulong table_offset, int dtype,
                          long count, int mode, long lo, long hi, global uchar* record_buffer,
                          ulong record_offset, local long* first) {
  const int lid = (int)get_local_id(0);
  const int size = (int)get_local_size(0);
  global const uchar* t = AT(table_buffer, table_offset);
  long mine = LONG_MAX;
  for (long i = lid; i < count; i += size)
    if (index_is_bad(t, dtype, i, count, mode, lo, hi)) {
      mine = i;
      break;
    }
  first[lid] = mine;
  barrier(CLK_LOCAL_MEM_FENCE);
  for (int stride = size / 2; stride > 0; stride /= 2) {
    if (lid < stride) first[lid] = min(first[lid], first[lid + stride]);
    barrier(CLK_LOCAL_MEM_FENCE);
  }
  if (lid != 0) return;
  global long* record = (global long*)AT(record_buffer, record_offset);
  const long position = first[0];
  if (position == LONG_MAX) {
    record[0] = -1;
    record[1] = record[2] = record[3] = 0;
    return;
  }
  const long value = load_index(t, dtype, position);
  const long previous = position > 0 ? load_index(t, dtype, position - 1) : 0;
  record[0] = position;
  record[1] = value;
  record[2] = previous;
  record[3] = mode == CHECK_RANGE                 ? 0
              : (position == 0 && value < 0)      ? 0
              : (position > 0 && value < previous) ? 1
                                                   : 2;
}
