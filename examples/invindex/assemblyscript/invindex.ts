// Inverted index: `terms` turns each `DOCID<TAB>TEXT` line into `(term, DOCID)` records, and
// `postings` gathers each term's documents, sorted and deduplicated (examples/README.md has the
// exact rules).
//
// Build it with `weft udf build examples/invindex/assemblyscript`; it exports
// `weft_flat_map_terms` and `weft_group_reduce_postings`.

import { Bytes, Emitter, Values, fail, flatMap, groupReduce } from "weft-guest";

/** Whether `byte` is an ASCII letter or digit. */
// @ts-ignore: decorator
@inline
function isAlphanumeric(byte: u32): bool {
  return byte - 0x30 < 10 || (byte | 0x20) - 0x61 < 26;
}

/** Emits `(term, DOCID)` for every term of the line's text, duplicates included: a term is a
 *  maximal run of ASCII letters and digits, lower-cased. A line without a TAB is an error. */
function terms(key: Bytes, line: Bytes, out: Emitter): void {
  const tab = line.indexOf(0x09);
  if (tab < 0) {
    fail("the line " + line.quoted() + " has no TAB between a document id and its text");
    return;
  }
  const doc = line.ptr, docLength = <usize>tab;
  const end = line.ptr + <usize>line.length;
  const keys = out.keyData(), values = out.valueData();
  let at = line.ptr + <usize>tab + 1;
  while (true) {
    while (at < end && !isAlphanumeric(load<u8>(at))) at++;
    if (at == end) return;
    const term = at;
    while (at < end && isAlphanumeric(load<u8>(at))) at++;
    // The term lower-cased into the key, the document id as the value.
    const to = keys.reserve(at - term);
    for (let i: usize = 0; i < at - term; i++) {
      const byte = load<u8>(term + i);
      store<u8>(to + i, byte - 0x41 < 26 ? byte | 0x20 : byte);
    }
    keys.length += at - term;
    values.writeRaw(doc, docLength);
    out.endRecord();
  }
}

function byBytes(a: Bytes, b: Bytes): i32 {
  return a.compare(b);
}

/** One record per term: its document ids, deduplicated, sorted bytewise and joined with `,`. */
function postings(term: Bytes, docs: Values, out: Emitter): void {
  const sorted = docs.toArray().sort(byBytes);
  const joined = out.valueData();
  for (let i = 0; i < sorted.length; i++) {
    const doc = unchecked(sorted[i]);
    if (i > 0) {
      if (doc.equalsBytes(unchecked(sorted[i - 1]))) continue;
      joined.writeByte(0x2C);
    }
    joined.writeBytes(doc);
  }
  out.keyData().writeBytes(term);
  out.endRecord();
}

export function weft_flat_map_terms(frame: usize): i32 {
  return flatMap(frame, terms);
}

export function weft_group_reduce_postings(frame: usize): i32 {
  return groupReduce(frame, postings);
}
