// Largest daily volume per stock symbol, from CSV quotes with a header naming the columns `symbol`
// and `volume` (and any others): `parse` reads each row's two fields by name into
// `(symbol, volume)` records, and `max` keeps the largest volume of each symbol. Weft parses the
// CSV (quoting, any delimiter); the UDF only reads fields (ABI.md, "Values of CSV input").
//
// Build it with `weft udf build examples/stocks/assemblyscript`; it exports `weft_flat_map_parse`,
// `weft_reduce_max` and `weft_combine_max`.

import { Bytes, DECIMAL, Emitter, Reducer, flatMap, row } from "weft-guest";

/** Emits `(symbol, volume)` for a quote row, the volume normalised (`0042` becomes `42`); the key
 *  is ignored. A missing column or header, or a volume that is not a decimal u64, fails the call
 *  with a message naming the column (Weft adds the file and line). */
function parse(key: Bytes, value: Bytes, out: Emitter): void {
  const quote = row(value);
  const symbol = quote.require("symbol");
  const volume = quote.decimal("volume");
  out.emitDecimal(symbol, volume);
}

/** Keeps the larger of two volumes. */
function larger(a: u64, b: u64): u64 {
  return a > b ? a : b;
}

const max = new Reducer<u64>(DECIMAL, larger);

export function weft_flat_map_parse(frame: usize): i32 {
  return flatMap(frame, parse);
}

export function weft_reduce_max(frame: usize): i32 {
  return max.reduce(frame);
}

export function weft_combine_max(frame: usize, op: i32): i32 {
  return max.combine(frame, op);
}
