/* Word count in C with weft.h: `split_words` turns lines into (word, "1") records, `long_words`
 * keeps the words of 5 bytes or more, and `sum` adds decimal counts (with a combiner, so map
 * tasks count inside the guest). The rules are examples/README.md's; the same module exists in
 * Rust, Zig and AssemblyScript beside this directory. Build: `weft udf build examples/wordcount/c`. */
#include "weft.h"

/* The six ASCII whitespace bytes of C's isspace in the C locale. */
static inline int is_space(uint8_t b) { return b == ' ' || (b >= '\t' && b <= '\r'); }

static int split_words(weft_bytes key, weft_bytes line) {
  (void)key;
  static const uint8_t one[] = {'1'};
  uint32_t i = 0;
  while (i < line.len) {
    while (i < line.len && is_space(line.ptr[i])) i++;
    uint32_t start = i;
    while (i < line.len && !is_space(line.ptr[i])) i++;
    if (i > start && weft_emit((weft_bytes){line.ptr + start, i - start}, (weft_bytes){one, 1}) != WEFT_OK)
      return WEFT_ERROR;
  }
  return WEFT_OK;
}

static int long_words(weft_bytes word, weft_bytes count) {
  (void)count;
  return word.len >= 5;
}

static int sum(uint64_t a, uint64_t b, uint64_t *out) {
  if (a > UINT64_MAX - b) {
    weft_fail("the sum of the counts ");
    weft_error_u64(a);
    weft_error_str(" and ");
    weft_error_u64(b);
    return weft_error_str(" overflows a u64");
  }
  *out = a + b;
  return WEFT_OK;
}

WEFT_FLAT_MAP_NO_KEY(split_words, split_words)
WEFT_FILTER(long_words, long_words)
WEFT_REDUCE_U64(sum, sum)
