/* Inverted index in C with weft.h: `terms` turns `DOCID<TAB>TEXT` lines into (term, DOCID)
 * records, a term being a run of ASCII letters and digits, lower-cased; `postings` gathers each
 * term's documents, sorted bytewise, deduplicated and joined with commas. The rules are
 * examples/README.md's. Build: `weft udf build examples/invindex/c`. */
#include "weft.h"

static inline int is_alnum(uint8_t b) {
  return (b >= '0' && b <= '9') || (b >= 'a' && b <= 'z') || (b >= 'A' && b <= 'Z');
}

static weft_buf term;

static int terms(weft_bytes key, weft_bytes line) {
  (void)key;
  uint32_t tab = 0;
  while (tab < line.len && line.ptr[tab] != '\t') tab++;
  if (tab == line.len)
    return weft_fail_with("the line has no TAB between a document id and its text:", line);
  weft_bytes doc = {line.ptr, tab};
  uint32_t i = tab + 1;
  while (i < line.len) {
    while (i < line.len && !is_alnum(line.ptr[i])) i++;
    term.len = 0;
    while (i < line.len && is_alnum(line.ptr[i])) {
      uint8_t b = line.ptr[i++];
      if (b >= 'A' && b <= 'Z') b += 'a' - 'A';
      if (weft_buf_append(&term, &b, 1) != WEFT_OK) return WEFT_ERROR;
    }
    if (term.len && weft_emit((weft_bytes){term.data, term.len}, doc) != WEFT_OK) return WEFT_ERROR;
  }
  return WEFT_OK;
}

static weft_bytes *docs;
static uint32_t docs_cap;
static weft_buf joined;

static int postings(weft_bytes key, weft_values *values) {
  uint32_t n = weft_values_left(values);
  if (n > docs_cap) {
    weft_bytes *grown = (weft_bytes *)weft_realloc(docs, (size_t)n * sizeof(weft_bytes));
    if (!grown) return weft_fail("out of memory");
    docs = grown;
    docs_cap = n;
  }
  uint32_t count = 0;
  weft_bytes v;
  while (weft_next(values, &v)) docs[count++] = v;
  weft_sort(docs, count);
  joined.len = 0;
  for (uint32_t i = 0; i < count; i++) {
    if (i > 0 && weft_cmp(docs[i - 1], docs[i]) == 0) continue;
    if (i > 0 && weft_buf_append(&joined, ",", 1) != WEFT_OK) return WEFT_ERROR;
    if (weft_buf_append(&joined, docs[i].ptr, docs[i].len) != WEFT_OK) return WEFT_ERROR;
  }
  return weft_emit(key, (weft_bytes){joined.data, joined.len});
}

WEFT_FLAT_MAP_NO_KEY(terms, terms)
WEFT_GROUP_REDUCE(postings, postings)
