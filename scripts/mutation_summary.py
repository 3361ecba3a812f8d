"""Per-module summary of ``mutmut results --all true`` (read on stdin).

    mutmut results --all true | python scripts/mutation_summary.py [--survivors] [GLOB ...]
    mutmut results --all true | python scripts/mutation_summary.py --names GLOB ...

``--names`` prints only the names of the mutants not killed or not run yet (one a
line: what ``mutmut run`` takes to re-check them or to finish an interrupted run).

Only mutants whose names match one of the globs are counted (all when none is
given).  Killed % counts a timeout as killed (the tests hung on the mutant)
and a mutant no test reaches as a survivor.  ``--survivors`` lists those.
"""

from __future__ import annotations

import fnmatch
import re
import sys
from collections import Counter, defaultdict

_LINE = re.compile(r"^\s*(?P<name>[\w.ǁ]+__mutmut_\d+):\s*(?P<status>.+?)\s*$")
_COLS = ("killed", "timeout", "survived", "no tests", "not checked", "other")


def parse(lines, globs=()):
    """{module: Counter(status)} and [(name, status)] for survivors and untested mutants."""
    by_module: dict[str, Counter] = defaultdict(Counter)
    alive = []
    for line in lines:
        m = _LINE.match(line)
        if not m:
            continue
        name, status = m["name"], m["status"]
        if globs and not any(fnmatch.fnmatch(name, g) for g in globs):
            continue
        module = re.split(r"\.x_|\.xǁ", name, maxsplit=1)[0]
        by_module[module][status if status in _COLS else "other"] += 1
        if status in ("survived", "no tests", "not checked"):
            alive.append((name, status))
    return by_module, alive


def killed_pct(c: Counter) -> float | None:
    tried = c["killed"] + c["timeout"] + c["survived"] + c["no tests"] + c["other"]
    return None if not tried else 100.0 * (c["killed"] + c["timeout"]) / tried


def table(by_module) -> str:
    out = [f"{'module':40s} " + " ".join(f"{c:>11s}" for c in _COLS) + "    killed %"]
    total = Counter()
    for mod in sorted(by_module):
        c = by_module[mod]
        total += c
        pct = killed_pct(c)
        out.append(f"{mod:40s} " + " ".join(f"{c[k]:11d}" for k in _COLS)
                   + ("        n/a" if pct is None else f"    {pct:6.1f} %"))
    pct = killed_pct(total)
    out.append(f"{'all':40s} " + " ".join(f"{total[k]:11d}" for k in _COLS)
               + ("        n/a" if pct is None else f"    {pct:6.1f} %"))
    return "\n".join(out)


def main(argv: list[str]) -> int:
    show = "--survivors" in argv
    globs = [a for a in argv if a not in ("--survivors", "--names")]
    by_module, alive = parse(sys.stdin, globs)
    if "--names" in argv:
        print("\n".join(name for name, _ in alive))
        return 0
    print(table(by_module))
    alive = [(n, s) for n, s in alive if s != "not checked"]
    if show and alive:
        print("\nnot killed (inspect one with: mutmut show NAME):")
        for name, status in alive:
            print(f"  {status:9s} {name}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
