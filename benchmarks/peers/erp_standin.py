#!/usr/bin/env python3
"""The stand-in ERP step of the `loop` and `writeback` benchmarks (benchmarks/README.md):
reads the stage's NDJSON output on stdin and answers every line with its outcome on stdout:
`successful`, exportedAt, externalId JE-<sequence>, externalUrl (what the Python peer's
--write-back sends). Plain string edits of the stage's fixed line layout, no JSON parsing, so
that the step costs next to nothing next to the stage (~0.1 s per 100 k lines); a line of
another layout stops it."""
import sys

TAIL = '"exportedAt":null,"externalId":null,"externalUrl":null'


def main():
    out = sys.stdout
    buf = []
    for n, line in enumerate(sys.stdin, 1):
        a = line.find('"status":"')
        b = line.find('"', a + 10)
        s = line.find('"sequence":', b)
        e = line.find(',', s)
        t = line.find(TAIL, e)
        if min(a, b, s, e, t) < 0:
            sys.exit(f"erp_standin: line {n} is not a stage output line: {line[:120]!r}")
        seq = line[s + 11:e]
        buf.append(f'{line[:a + 10]}successful{line[b:t]}"exportedAt":"2026-11-30T12:00:00Z",'
                   f'"externalId":"JE-{seq}","externalUrl":"https://erp.example/je/{seq}"'
                   f'{line[t + len(TAIL):]}')
        if len(buf) == 4096:
            out.write("".join(buf))
            buf.clear()
    out.write("".join(buf))


if __name__ == "__main__":
    main()
