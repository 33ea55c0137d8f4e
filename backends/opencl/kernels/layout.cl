// Layout kernels: one strided copy serves permute, slice and concat (and any byte-exact move).

// shape: [rank, dims[rank], src_strides[rank], dst_strides[rank]] in elements of `size` bytes.
kernel void strided_copy(global const uchar* src, ulong src_offset, global uchar* dst,
                         ulong dst_offset, int size, global const long* shape, long count) {
  const long i = get_global_id(0);
  if (i >= count) return;
  const int rank = (int)shape[0];
  long rest = i, from = 0, to = 0;
  for (int d = rank - 1; d >= 0; --d) {
    const long dim = shape[1 + d];
    const long c = rest % dim;
    rest /= dim;
    from += c * shape[1 + rank + d];
    to += c * shape[1 + 2 * rank + d];
  }
  copy_element(AT(src, src_offset), from, AT(dst, dst_offset), to, size);
}
