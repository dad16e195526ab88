#!/usr/bin/env python3
"""Sorts the samples of a `perf report` into the phases of a Weft job (BENCHMARKS.md's profile).

    perf report -i perf.data --no-children --sort dso,sym --stdio -g none | scripts/profile-phases.py

Guest functions are named when the module was registered with its name section (an unstripped
build) and `weft` ran with WEFT_PERFMAP=1; `--names FILE` maps `wasm[0]::function[N]` to names
for a stripped one (lines `N NAME`, e.g. from `wasm-objdump -x` of an unstripped build of it).
"""
import re
import sys

PHASES = [
    # (phase, predicate on (dso, symbol)); the first that matches takes the sample.
    ("guest: the flat_map UDF (split_words, its emits)", lambda d, s: "JIT" in d and re.search(r"split_words|weft_flat_map|emit|Emitter|codec..append", s)),
    ("guest: map-side combine (probe, fold, encode)", lambda d, s: "JIT" in d and re.search(r"ombine|fold|Decimal|hashbrown|foldhash|Results|Pending", s)),
    ("guest: other (allocator, glue, memory.copy)", lambda d, s: "JIT" in d),
    ("host: read the input (kernel copy from the page cache)", lambda d, s: "kernel" in d and re.search(r"copy_to_iter|copy_page_to_iter|filemap|_read|readahead|xas_", s)),
    ("host: guest memory faulted in and zeroed (kernel)", lambda d, s: "kernel" in d and re.search(r"fault|clear_page|folio|memcg|pte|page|mm_|lru|alloc|vma|mas_|zap|unmap|tlb|charge|rmap", s)),
    ("host: kernel, other (scheduling, locks, syscalls)", lambda d, s: "kernel" in d),
    ("host: line splitting (find line ends, batch)", lambda d, s: re.search(r"memchr|SplitReader|next_batch|LineReader", s)),
    ("host: record keys (PATH:OFFSET)", lambda d, s: re.search(r"push_key|ColumnBuilder", s)),
    ("host: copies into and out of guest memory", lambda d, s: re.search(r"memmove|memcpy|copy_in|read_records|read_binary|copy_nonoverlapping", s)),
    ("host: shuffle write (partition, encode, compress)", lambda d, s: re.search(r"partition_of|shuffle::|ipc::writer|lz4|zstd|compress|Shuffle", s) and not re.search(r"decompress|reader", s)),
    ("host: shuffle fetch + decode", lambda d, s: re.search(r"ipc::reader|decompress|fetch|prost|tonic|h2::|hyper|bytes::", s)),
    ("host: reduce (grouping)", lambda d, s: re.search(r"Grouper|group::|sort|merge", s)),
    ("host: output (text lines)", lambda d, s: re.search(r"output|write_line|BufWriter|part_", s)),
    ("host: wasmtime runtime (calls, traps, epochs)", lambda d, s: re.search(r"wasmtime|cranelift", s)),
    ("host: other", lambda d, s: True),
]


def main():
    names = {}
    if len(sys.argv) == 3 and sys.argv[1] == "--names":
        for line in open(sys.argv[2]):
            number, name = line.split(maxsplit=1)
            names[number] = name.strip()
    totals = {phase: 0.0 for phase, _ in PHASES}
    row = re.compile(r"^\s*([\d.]+)%\s+(\S+(?: tid \d+)?)\s+\[[.k]\]\s+(.*)$")
    for line in sys.stdin:
        m = row.match(line)
        if not m:
            continue
        share, dso, sym = float(m.group(1)), m.group(2), m.group(3).strip()
        sym = re.sub(r"wasm\[0\]::function\[(\d+)\]", lambda f: names.get(f.group(1), f.group(0)), sym)
        for phase, matches in PHASES:
            if matches(dso, sym):
                totals[phase] += share
                break
    print("| phase | share of CPU samples |")
    print("|---|---:|")
    for phase, _ in PHASES:
        if totals[phase] >= 0.05:
            print(f"| {phase} | {totals[phase]:.1f} % |")


if __name__ == "__main__":
    main()
