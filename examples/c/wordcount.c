/*
 * Word count for Weft, written in C against guest-sdk/ABI.md (ABI version 1) alone.
 *
 * UDFs:
 *   weft_flat_map_split_words  one record per word occurrence: key = the word, value = "1"
 *   weft_reduce_sum            sums decimal counts: one decimal value per group
 *
 * Build (Debian bookworm: clang-14, lld-14, wasi-libc; wasi-libc's sysroot is /usr, its headers
 * are in /usr/include/wasm32-wasi and its libraries in /usr/lib/wasm32-wasi):
 *
 *   clang-14 --target=wasm32-wasi --sysroot=/usr -O2 -mexec-model=reactor \
 *       -o wordcount.wasm wordcount.c
 *
 * That command links clang's compiler-rt builtins for wasm32, which Debian ships separately
 * (package libclang-rt-14-dev-wasm32). Without that package the link fails with
 * "cannot open .../lib/wasi/libclang_rt.builtins-wasm32.a"; this file needs none of those
 * builtins, so the same build then works with the default libraries replaced by libc alone:
 *
 *   clang-14 --target=wasm32-wasi --sysroot=/usr -O2 -mexec-model=reactor \
 *       -nodefaultlibs -lc -o wordcount.wasm wordcount.c
 *
 * The result is a WASI reactor (it exports _initialize, which the host calls once). It imports
 * nothing today: only malloc/realloc/free/memcpy/memset of wasi-libc are used, and those need no
 * WASI call. Any import it ever gained would come from wasi_snapshot_preview1.
 *
 * Memory: weft_alloc/weft_free are malloc/free. Every output buffer is static and reused from
 * call to call; it grows geometrically (realloc to at least twice its capacity) only when a batch
 * needs more, so steady-state calls do not allocate. The values of split_words are all "1": their
 * bytes ('1' repeated) and offsets (0, 1, 2, ...) are written once when their buffers grow and are
 * then reused untouched.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define EXPORT(name) __attribute__((export_name(name)))

/* The call frame (ABI.md §4): fourteen little-endian u32 fields, 4-aligned. */
typedef struct {
  uint32_t in_count, in_keys_offsets, in_keys_data, in_values_offsets, in_values_data, in_groups;
  uint32_t out_count, out_keys_offsets, out_keys_data, out_values_offsets, out_values_data, out_keep;
  uint32_t error_ptr, error_len;
} weft_frame;

/* ABI.md does not state the alignment of the host's input arrays; read them without assuming
 * any (wasm loads of any alignment are valid and just as fast). */
typedef uint32_t u32_unaligned __attribute__((aligned(1)));

#define PTR(T, addr) ((T *)(uintptr_t)(addr))
#define ADDR(p) ((uint32_t)(uintptr_t)(p))

/* ---------------------------------------------------------------- required exports */

EXPORT("weft_abi_version") int32_t weft_abi_version(void) { return 1; }

EXPORT("weft_alloc") void *weft_alloc(uint32_t size, uint32_t align) {
  if (size == 0) size = 1; /* a real, non-zero pointer even for 0 bytes */
  /* malloc's blocks are aligned for max_align_t (16 bytes on wasm32); the ABI asks for <= 8. */
  if (align <= 16) return malloc(size);
  return aligned_alloc(align, (size + align - 1) & ~(align - 1)); /* 0 (NULL) when out of memory */
}

EXPORT("weft_free") void weft_free(void *ptr, uint32_t size, uint32_t align) {
  (void)size;
  (void)align;
  free(ptr);
}

/* ---------------------------------------------------------------- growable static buffers */

typedef struct {
  uint8_t *ptr;
  uint32_t cap; /* bytes */
} buf_t;

/* Makes b hold at least `need` bytes, keeping its contents. Grows to at least twice the old
 * capacity so that a batch costs amortised O(1) reallocations. Returns 0 when out of memory. */
static int reserve(buf_t *b, uint64_t need) {
  if (need <= b->cap) return 1;
  if (need > UINT32_MAX) return 0;
  uint64_t cap = (uint64_t)b->cap * 2;
  if (cap < need) cap = need;
  if (cap < 4096) cap = 4096;
  if (cap > UINT32_MAX) cap = need;
  void *p = realloc(b->ptr, (size_t)cap);
  if (p == NULL && cap > need) { /* doubling is too much: try exactly what is needed */
    cap = need;
    p = realloc(b->ptr, (size_t)cap);
  }
  if (p == NULL) return 0;
  b->ptr = p;
  b->cap = (uint32_t)cap;
  return 1;
}

/* split_words output */
static buf_t words_offsets;   /* u32 offsets into words_data */
static buf_t words_data;      /* the words, back to back */
static buf_t ones_data;       /* '1' repeated; the first ones_filled bytes are written */
static uint32_t ones_filled;
static buf_t ones_offsets;    /* u32 0, 1, 2, ...; the first ones_offsets_filled are written */
static uint32_t ones_offsets_filled;

/* sum output */
static buf_t sum_offsets;     /* u32 offsets into sum_data */
static buf_t sum_data;        /* decimal sums, back to back */

/* error message; guest-owned, stays put until the next call */
static char err_buf[512];
static uint32_t err_len;

/* ---------------------------------------------------------------- error messages */

static void err_reset(void) { err_len = 0; }

static void err_bytes(const char *s, uint32_t n) {
  if (n > sizeof err_buf - err_len) n = sizeof err_buf - err_len;
  memcpy(err_buf + err_len, s, n);
  err_len += n;
}

static void err_str(const char *s) { err_bytes(s, (uint32_t)strlen(s)); }

/* Length (1-4) of the well-formed UTF-8 sequence at p (p < end, *p >= 0x80), or 0 if it is not
 * one (Unicode Table 3-7: no overlongs, no surrogates, nothing above U+10FFFF). */
static uint32_t utf8_seq_len(const uint8_t *p, const uint8_t *end) {
  uint8_t b = p[0], lo = 0x80, hi = 0xBF;
  uint32_t n;
  if (b >= 0xC2 && b <= 0xDF) n = 2;
  else if (b >= 0xE0 && b <= 0xEF) {
    n = 3;
    if (b == 0xE0) lo = 0xA0;
    if (b == 0xED) hi = 0x9F;
  } else if (b >= 0xF0 && b <= 0xF4) {
    n = 4;
    if (b == 0xF0) lo = 0x90;
    if (b == 0xF4) hi = 0x8F;
  } else return 0;
  if ((uint32_t)(end - p) < n) return 0;
  if (p[1] < lo || p[1] > hi) return 0;
  for (uint32_t i = 2; i < n; i++)
    if (p[i] < 0x80 || p[i] > 0xBF) return 0;
  return n;
}

#define QUOTE_MAX 40 /* bytes of a key or value quoted in a message */

/* Appends "<at most QUOTE_MAX bytes of s>" to the message, followed by ... when cut. The result
 * is always valid UTF-8: well-formed UTF-8 is copied, `"` and `\` are escaped, and control bytes
 * and bytes that are not well-formed UTF-8 are written as \xNN. */
static void err_quote(const uint8_t *s, uint32_t len) {
  static const char hex[] = "0123456789abcdef";
  const uint8_t *p = s, *end = s + (len < QUOTE_MAX ? len : QUOTE_MAX);
  err_bytes("\"", 1);
  while (p < end) {
    uint8_t c = *p;
    if (c >= 0x80) {
      uint32_t n = utf8_seq_len(p, end);
      if (n) {
        err_bytes((const char *)p, n);
        p += n;
        continue;
      }
    } else if (c == '"' || c == '\\') {
      char esc[2] = {'\\', (char)c};
      err_bytes(esc, 2);
      p++;
      continue;
    } else if (c >= 0x20 && c < 0x7F) {
      err_bytes((const char *)p, 1);
      p++;
      continue;
    }
    char esc[4] = {'\\', 'x', hex[c >> 4], hex[c & 15]};
    err_bytes(esc, 4);
    p++;
  }
  err_bytes("\"", 1);
  if (len > (uint32_t)(p - s)) err_str("...");
}

static int32_t fail(weft_frame *f) {
  f->out_count = 0;
  f->error_ptr = ADDR(err_buf);
  f->error_len = err_len;
  return 1;
}

/* ---------------------------------------------------------------- flat_map split_words */

/* ASCII whitespace: space, \t, \n, \v, \f, \r. Every other byte (incl. any byte >= 0x80) is
 * part of a word. */
static inline int is_space(uint8_t c) { return c == ' ' || (uint8_t)(c - '\t') <= '\r' - '\t'; }

EXPORT("weft_flat_map_split_words") int32_t split_words(weft_frame *f) {
  uint32_t n = f->in_count;
  f->out_count = 0;
  if (n == 0) return 0;

  const u32_unaligned *voff = PTR(const u32_unaligned, f->in_values_offsets);
  const uint8_t *vdata = PTR(const uint8_t, f->in_values_data);

  uint32_t count = 0; /* words so far */
  uint32_t used = 0;  /* bytes of words_data so far */
  if (!reserve(&words_offsets, 4)) goto oom;
  ((uint32_t *)words_offsets.ptr)[0] = 0;

  for (uint32_t r = 0; r < n; r++) {
    uint32_t start = voff[r], stop = voff[r + 1];
    if (stop <= start) continue;
    uint32_t len = stop - start;
    /* A value of len bytes holds at most len word bytes and ceil(len / 2) words: make room for
     * the worst case once per record so the scan below needs no checks. */
    if (!reserve(&words_data, (uint64_t)used + len)) goto oom;
    if (!reserve(&words_offsets, ((uint64_t)count + 1 + len / 2 + (len & 1)) * 4)) goto oom;
    uint8_t *out = words_data.ptr + used;
    uint32_t *offs = (uint32_t *)words_offsets.ptr + count + 1;

    const uint8_t *p = vdata + start, *end = vdata + stop;
    for (;;) {
      while (p < end && is_space(*p)) p++;
      if (p == end) break;
      const uint8_t *word = p;
      while (p < end && !is_space(*p)) p++;
      uint32_t wlen = (uint32_t)(p - word);
      memcpy(out, word, wlen);
      out += wlen;
      *offs++ = ADDR(out) - ADDR(words_data.ptr);
    }
    used = ADDR(out) - ADDR(words_data.ptr);
    count = (uint32_t)(offs - (uint32_t *)words_offsets.ptr) - 1;
  }

  /* Values: count times "1". Both buffers only ever get written where they grew. */
  if (!reserve(&ones_data, count ? count : 1)) goto oom;
  if (ones_filled < ones_data.cap) {
    memset(ones_data.ptr + ones_filled, '1', ones_data.cap - ones_filled);
    ones_filled = ones_data.cap;
  }
  if (!reserve(&ones_offsets, ((uint64_t)count + 1) * 4)) goto oom;
  {
    uint32_t *o = (uint32_t *)ones_offsets.ptr, cap = ones_offsets.cap / 4;
    for (uint32_t i = ones_offsets_filled; i < cap; i++) o[i] = i;
    ones_offsets_filled = cap;
  }

  f->out_count = count;
  f->out_keys_offsets = ADDR(words_offsets.ptr);
  f->out_keys_data = ADDR(words_data.ptr);
  f->out_values_offsets = ADDR(ones_offsets.ptr);
  f->out_values_data = ADDR(ones_data.ptr);
  return 0;

oom:
  err_reset();
  err_str("split_words: out of memory while growing the output buffers");
  return fail(f);
}

/* ---------------------------------------------------------------- reduce sum */

EXPORT("weft_reduce_sum") int32_t reduce_sum(weft_frame *f) {
  uint32_t n = f->in_count;
  f->out_count = 0;
  if (n == 0) return 0;

  const u32_unaligned *groups = PTR(const u32_unaligned, f->in_groups);
  const u32_unaligned *koff = PTR(const u32_unaligned, f->in_keys_offsets);
  const uint8_t *kdata = PTR(const uint8_t, f->in_keys_data);
  const u32_unaligned *voff = PTR(const u32_unaligned, f->in_values_offsets);
  const uint8_t *vdata = PTR(const uint8_t, f->in_values_data);

  if (!reserve(&sum_offsets, ((uint64_t)n + 1) * 4)) goto oom;
  uint32_t *so = (uint32_t *)sum_offsets.ptr;
  uint32_t used = 0;
  so[0] = 0;

  for (uint32_t g = 0; g < n; g++) {
    uint64_t sum = 0;
    const uint8_t *val = NULL;
    uint32_t vlen = 0;
    for (uint32_t v = groups[g], vend = groups[g + 1]; v < vend; v++) {
      val = vdata + voff[v];
      vlen = voff[v + 1] - voff[v];
      if (vlen == 0) goto not_decimal;
      uint64_t x = 0;
      int too_big = 0;
      for (uint32_t i = 0; i < vlen; i++) {
        uint32_t d = (uint32_t)val[i] - '0';
        if (d > 9) goto not_decimal; /* checked before overflow: "99...9x" is not a decimal */
        /* x * 10 + d > UINT64_MAX = 18446744073709551615 */
        if (x > UINT64_MAX / 10 || (x == UINT64_MAX / 10 && d > UINT64_MAX % 10)) too_big = 1;
        x = x * 10 + d;
      }
      if (too_big) goto value_too_big;
      if (sum > UINT64_MAX - x) goto sum_overflow;
      sum += x;
    }

    /* decimal, no leading zeros */
    char tmp[20];
    uint32_t len = 0;
    do {
      tmp[sizeof tmp - 1 - len++] = (char)('0' + sum % 10);
      sum /= 10;
    } while (sum);
    if (!reserve(&sum_data, (uint64_t)used + len)) goto oom;
    memcpy(sum_data.ptr + used, tmp + sizeof tmp - len, len);
    used += len;
    so[g + 1] = used;
    continue;

  not_decimal:
    err_reset();
    err_str("sum: value ");
    err_quote(val, vlen);
    err_str(" for key ");
    err_quote(kdata + koff[g], koff[g + 1] - koff[g]);
    err_str(" is not a decimal count (expected ASCII digits only)");
    return fail(f);
  value_too_big:
    err_reset();
    err_str("sum: value ");
    err_quote(val, vlen);
    err_str(" for key ");
    err_quote(kdata + koff[g], koff[g + 1] - koff[g]);
    err_str(" does not fit in a u64 count");
    return fail(f);
  sum_overflow:
    err_reset();
    err_str("sum: total for key ");
    err_quote(kdata + koff[g], koff[g + 1] - koff[g]);
    err_str(" overflows u64 when adding value ");
    err_quote(val, vlen);
    return fail(f);
  }

  if (!reserve(&sum_data, 1)) goto oom; /* a valid pointer even if every sum were empty */
  f->out_count = n;
  f->out_values_offsets = ADDR(sum_offsets.ptr);
  f->out_values_data = ADDR(sum_data.ptr);
  return 0;

oom:
  err_reset();
  err_str("sum: out of memory while growing the output buffers");
  return fail(f);
}
