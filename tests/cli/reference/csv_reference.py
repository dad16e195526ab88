#!/usr/bin/env python3
"""The CSV tests' independent reference: Python's csv module writes the input, computes the
answer, and reads Weft's CSV output back.

  csv_reference.py generate FILE DELIMITER SEED ROWS LINETERMINATOR
  csv_reference.py expect FILE DELIMITER      -> {"symbol": max volume, ...} as JSON
  csv_reference.py read-output DIR            -> {"key": "value", ...} of DIR/part-* as JSON
"""

import csv
import glob
import json
import random
import sys

# Symbols that trip a naive reader: quotes, delimiters, newlines, CRs, spaces, non-ASCII.
SYMBOLS = ['ACME', 'AC"ME', 'NEW\nLINE', 'semi;colon', 'tab\tbed', 'comma,co', 'cr\rlf\r\nx',
           ' padded ', 'éclair', '""', 'plain']


def generate(path, delimiter, seed, rows, terminator):
    rng = random.Random(int(seed))
    with open(path, 'w', newline='', encoding='utf-8') as f:
        out = csv.writer(f, delimiter=delimiter, lineterminator=terminator)
        out.writerow(['note', 'symbol', 'date', 'volume'])
        # A first note of many lines: whatever the split size, boundaries fall inside it.
        out.writerow(['\n'.join('line %d of a "long" note' % i for i in range(40)), 'ACME',
                      '2024-01-01', 5])
        for i in range(int(rows)):
            note = rng.choice(['', 'plain', 'two\nlines', 'quote "q"', 'd%se%sl' % (delimiter, delimiter),
                               'x' * rng.randint(0, 80), '\r\n\r\n'])
            out.writerow([note, rng.choice(SYMBOLS), '2024-01-%02d' % (i % 28 + 1),
                          rng.randint(0, 10**9)])


def expect(path, delimiter):
    best = {}
    with open(path, newline='', encoding='utf-8') as f:
        for row in csv.DictReader(f, delimiter=delimiter):
            volume = int(row['volume'])
            best[row['symbol']] = max(best.get(row['symbol'], 0), volume)
    print(json.dumps(best))


def read_output(directory):
    got = {}
    for part in sorted(glob.glob(directory + '/part-*')):
        with open(part, newline='', encoding='utf-8') as f:
            for key, value in csv.reader(f):
                if key in got:
                    raise SystemExit('key %r twice' % key)
                got[key] = value
    print(json.dumps(got))


if __name__ == '__main__':
    command, args = sys.argv[1], sys.argv[2:]
    if command == 'generate':
        generate(*args)
    elif command == 'expect':
        expect(*args)
    elif command == 'read-output':
        read_output(*args)
    else:
        raise SystemExit('unknown command ' + command)
