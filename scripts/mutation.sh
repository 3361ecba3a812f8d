#!/usr/bin/env bash
# Mutation testing of hybridnb's core (issue 17): plants small bugs (mutmut 3) in the modules that
# decide money and correctness and checks that the tests notice; report in bench/RESULTS.md.
#
#   bash scripts/mutation.sh                 # every group in turn
#   bash scripts/mutation.sh pure cache      # some groups
#   bash scripts/mutation.sh --summary       # only print the summary of the last runs
#   bash scripts/mutation.sh --recheck cache # run only the group's mutants not killed (or not run) last
#                                            # time: after adding tests, or to finish a stopped run
#
# Groups (one mutmut run each; sizes and times in bench/RESULTS.md):
#   pure    core/pricing.py, core/clock.py, core/template.py, core/constraints.py
#   cache   store/cache.py (key, answers, leases)
#   budget  core/budget.py + the dispatcher's budget gate, warning and dedup (serve_cached, _serve_hits)
#   ledger  store/ledger.py (write, read, scope queries, daily spend)
#   server  notebook/server/_handlers.py (auth, scopes, the JSON the panel reads)
#   quality corpus/_quality.py (F1, Spearman, top-2, noise recovery)
# Env: PYTHON (default .venv/bin/python, else python3), JOBS (parallel mutants, default 2).
# The configuration ([tool.mutmut] in pyproject.toml) names the tests; results stay in mutants/.
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ -z "${PYTHON:-}" ]]; then
    if [[ -x .venv/bin/python ]]; then PYTHON=.venv/bin/python; else PYTHON=python3; fi
fi
JOBS=${JOBS:-2}
"$PYTHON" -c "import mutmut" 2>/dev/null || "$PYTHON" -m pip install -q "mutmut>=3.8,<4"

declare -A GROUP=(
    [pure]="hybridnb.core.pricing.* hybridnb.core.clock.* hybridnb.core.template.* hybridnb.core.constraints.*"
    [cache]="hybridnb.store.cache.*"
    [budget]="hybridnb.core.budget.* hybridnb.core.dispatcher.xǁDispatcherǁ_budget_gate* hybridnb.core.dispatcher.xǁDispatcherǁcheck_budget* hybridnb.core.dispatcher.xǁDispatcherǁ_maybe_warn* hybridnb.core.dispatcher.xǁDispatcherǁserve_cached* hybridnb.core.dispatcher.xǁDispatcherǁ_serve_hits*"
    [ledger]="hybridnb.store.ledger.*"
    [server]="hybridnb.notebook.server._handlers.*"
    [quality]="hybridnb.corpus._quality.*"
)
ORDER=(pure cache budget ledger server quality)

summary=0
recheck=0
groups=()
for a in "$@"; do
    if [[ "$a" == "--summary" ]]; then summary=1
    elif [[ "$a" == "--recheck" ]]; then recheck=1
    elif [[ -n "${GROUP[$a]:-}" ]]; then groups+=("$a")
    else echo "unknown group '$a' (groups: ${ORDER[*]})" >&2; exit 2; fi
done
[[ ${#groups[@]} -gt 0 ]] || groups=("${ORDER[@]}")

globs=()
for g in "${groups[@]}"; do
    read -r -a these <<< "${GROUP[$g]}"
    globs+=("${these[@]}")
    if [[ $summary == 0 ]]; then
        echo "== mutation group '$g' ($(date -u +%H:%M:%S) UTC)"
        start=$SECONDS
        if [[ $recheck == 1 ]]; then
            mapfile -t these < <("$PYTHON" -m mutmut results --all true 2>/dev/null \
                | "$PYTHON" scripts/mutation_summary.py --names "${these[@]}")
            echo "   re-running ${#these[@]} mutants not killed (or not run) last time"
            [[ ${#these[@]} -gt 0 ]] || continue
        fi
        echo "   load: $(cut -d' ' -f1-3 /proc/loadavg)"
        "$PYTHON" -m mutmut run --max-children "$JOBS" "${these[@]}" | tr '\r' '\n' | grep -av '^[⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏] ' || true
        echo "== group '$g' took $(( (SECONDS - start) / 60 )) min $(( (SECONDS - start) % 60 )) s" \
             "(load $(cut -d' ' -f1-3 /proc/loadavg))"
    fi
done
"$PYTHON" -m mutmut results --all true 2>/dev/null | "$PYTHON" scripts/mutation_summary.py --survivors "${globs[@]}"
