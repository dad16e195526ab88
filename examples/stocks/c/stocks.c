/* Stocks in C with weft.h: `parse` reads a CSV row by column name and emits (symbol, volume),
 * the volume normalised; `max` keeps the larger volume (with a combiner). The rules are
 * examples/README.md's. Build: `weft udf build examples/stocks/c`. */
#include "weft.h"

static int parse(weft_bytes key, weft_bytes row) {
  (void)key;
  weft_bytes symbol, volume;
  uint64_t v;
  if (weft_row_require(row, "symbol", &symbol) != WEFT_OK) return WEFT_ERROR;
  if (weft_row_require(row, "volume", &volume) != WEFT_OK) return WEFT_ERROR;
  if (!weft_parse_u64(volume, &v))
    return weft_fail_with("the row field \"volume\" is not a decimal u64:", volume);
  return weft_emit_u64(symbol, v);
}

static int max(uint64_t a, uint64_t b, uint64_t *out) {
  *out = a > b ? a : b;
  return WEFT_OK;
}

WEFT_FLAT_MAP_NO_KEY(parse, parse)
WEFT_REDUCE_U64(max, max)
