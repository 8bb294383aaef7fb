"""The seeds' claims about the norms, each checked against a grid's results: (claim, verdict, evidence).

Every report lists the same claims in the same order. What a claim needs to know about the
task (its quality metric, which norm it is said to need, the test the GroupNorm paper used)
comes from the task object, passed in: this module imports no task and no model.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from stylenorm.ablation.presets import steps_for
from stylenorm.ablation.records import Grid, Table, difference_interval
from stylenorm.norms import default_groups, make_norm, norm_kind, parse_spec

if TYPE_CHECKING:  # only for the annotations: the tasks import this module
    from stylenorm.ablation.tasks import AblationTask

Claim = tuple[str, str, str]

LABELS = {"test_error": "test error", "heldout_loss": "held-out loss", "fid": "Fréchet distance (MNIST features)",
          "heldout_content": "held-out content loss", "heldout_style": "held-out style loss",
          "images_per_s": "training images/s", "memory_mb": "training memory (MB)"}
CLEAR_MARGIN = 0.05  # differences under 5% are called ties
FLAT_MARGIN = 0.005  # classification: a rise of the test error under half a percentage point is "flat"
PLATEAU_MARGIN = 0.05  # a training loss that fell by more than 5 % over a run's last quarter is still learning


def _fmt(value: float | None, digits: int = 4) -> str:
    return "—" if value is None else f"{value:.{digits}g}"


def fmt_difference(key: str, value: float) -> str:
    """A difference of a metric, signed; of test errors in percentage points."""
    return f"{value:+.2%}" if key == "test_error" else f"{value:+.4g}"


def fmt_interval(key: str, interval: tuple[float, float, float]) -> str:
    """A difference and its 95 % interval, as difference_interval returns them: "+d (a … b)"."""
    d, a, b = interval
    return f"{fmt_difference(key, d)} ({fmt_difference(key, a)} … {fmt_difference(key, b)})"


def fmt_metric(key: str, value: float | None) -> str:
    """A metric as the tables print it: the test error in percent (as the GroupNorm paper does)."""
    return "—" if value is None else f"{value:.2%}" if key == "test_error" else _fmt(value)


def batch_statistics_specs(grid: Grid) -> list[str]:
    return [n for n in grid.norms if norm_kind(n).batch_statistics]


def group_norm_family(grid: Grid) -> list[str]:
    """The specs that are GroupNorms (gn, and ln and in as G = 1 and G = C): the norms the claims call
    batch-independent, after the GroupNorm paper."""
    return [n for n in grid.norms if norm_kind(n).groups is not None]


@dataclass(frozen=True)
class Convergence:
    """Whether a grid's budget has converged, by the task's test; `evidence` states the test and its numbers."""

    converged: bool
    evidence: str


def last_quarter_change(curve: Sequence[Sequence[float]]) -> float | None:
    """The relative change of a run's training loss from the third quarter of its curve to the last
    (the mean over each); None for a curve too short to have quarters."""
    values = [v for _, v in curve if math.isfinite(v)]
    quarter = len(values) // 4
    if quarter < 1:
        return None
    before, last = statistics.fmean(values[-2 * quarter:-quarter]), statistics.fmean(values[-quarter:])
    return last / before - 1 if before > 0 else None


def loss_plateau(grid: Grid, table: Table) -> Convergence:
    """Converged when no (norm, batch size)'s training loss, averaged over its seeds, still fell by more
    than PLATEAU_MARGIN over the last quarter of its runs (for a budget without a decaying learning rate)."""
    changes = {}
    for norm in grid.norms:
        for bs in grid.batch_sizes:
            seen = [c for r in table.ok if r["norm"] == norm and r["batch_size"] == bs
                    and (c := last_quarter_change(r.get("loss_curve") or [])) is not None]
            if seen:
                changes[(norm, bs)] = statistics.fmean(seen)
    if not changes:
        return Convergence(False, "no run recorded a loss curve long enough to tell")
    falling = sorted((k for k, v in changes.items() if v < -PLATEAU_MARGIN), key=changes.get)
    evidence = (f"the training loss of the last quarter of each run against the quarter before, mean over seeds: "
                f"{_fmt_change(min(changes.values()))} … {_fmt_change(max(changes.values()))} (still learning: fell by "
                f"more than {PLATEAU_MARGIN:.0%})")
    if falling:
        evidence += (f"; still learning in {len(falling)} of {len(changes)} (norm, batch size) cells, e.g. "
                     + ", ".join(f"{n} at batch {b} {_fmt_change(changes[(n, b)])}" for n, b in falling[:3]))
    return Convergence(not falling, evidence)


def _fmt_change(change: float) -> str:
    """A relative change as a percentage, or as a factor where a run blew up."""
    return f"{change:+.0%}" if abs(change) < 10 else f"×{change + 1:.3g}"


def without_verdict(claim: Claim, convergence: Convergence) -> Claim:
    """A claim on the quality of runs that have not converged: its numbers, but no verdict."""
    name, verdict, evidence = claim
    if verdict.startswith("not measured"):
        return claim
    return name, "no verdict (not converged)", f"What the runs show: {evidence}"


def by_every_metric(make: Callable[[str], Claim], metrics: Sequence[str]) -> Claim:
    """One claim judged on each metric in turn: their common verdict, or inconclusive where they disagree."""
    judged = [(m, make(m)) for m in metrics]
    measured = [(m, c) for m, c in judged if not c[1].startswith("not measured")] or judged[:1]
    if len(measured) == 1:
        return measured[0][1]
    verdicts = {c[1] for _, c in measured}
    evidence = " ".join(f"By {LABELS[m]}: {c[1]}. {c[2]}" for m, c in measured)
    if len(verdicts) == 1:
        return measured[0][1][0], verdicts.pop(), evidence
    return measured[0][1][0], "inconclusive", evidence + " The metrics disagree."


def check_claims(grid: Grid, task: AblationTask, tasks: list[AblationTask], table: Table,
                 convergence: Convergence) -> list[Claim]:
    """Every claim, in the report's order; `tasks` are all tasks, for the claims of the other tasks. On runs
    that have not converged, the claims on their quality keep their numbers but make no verdict."""
    def on_quality(claim: Claim) -> Claim:
        return claim if convergence.converged else without_verdict(claim, convergence)

    own = [by_every_metric(lambda m: right_norm_claim(grid, task, other, table, m), task.judged_metrics)
           if other is task else right_norm_claim(grid, task, other, table) for other in tasks if other.right_norm]
    return [
        on_quality(task.batch_size_claim(grid, table)),
        on_quality(bn_modes_claim(grid, task, table)),
        continuum_claim(grid, task),
        *map(on_quality, own),
        on_quality(rms_claim(grid, task, table)),
    ]


def peer_gap_claim(grid: Grid, task: AblationTask, table: Table, metric: str | None = None) -> Claim:
    """BN against its peers at the same batch size (same steps, same images), so the budget's step
    count cancels out: the GroupNorm paper's Figure 1 comparison; on `metric` (the task's quality by default)."""
    claim = "BatchNorm degrades at small batch sizes; GroupNorm, LayerNorm and InstanceNorm do not"
    q, lo, hi = metric or task.quality, min(grid.batch_sizes), max(grid.batch_sizes)
    indep, bns = group_norm_family(grid), batch_statistics_specs(grid)
    if not bns or not indep or lo == hi:
        return claim, "not measured", "needs bn, a batch-independent norm and two batch sizes in the grid"

    def gap(bs: int) -> float | None:
        peers = [table.mean(n, bs, q) for n in indep if table.mean(n, bs, q) is not None]
        mine = table.mean(bns[0], bs, q)
        return None if mine is None or not peers or min(peers) <= 0 else mine / min(peers)
    gaps = {bs: gap(bs) for bs in grid.batch_sizes if gap(bs) is not None}
    if lo not in gaps or hi not in gaps:
        return claim, "not measured", "the runs it needs failed"
    evidence = (f"{LABELS[q]} of bn relative to the best batch-independent norm ({', '.join(indep)}) at the same "
                "batch size: " + "; ".join(f"batch {bs} ×{_fmt(g, 3)}" for bs, g in gaps.items()) + ".")
    # the means alone cannot tell a gap from seed noise: bn's must also be shown at the smallest batch
    peer = min((n for n in indep if table.mean(n, lo, q) is not None), key=lambda n: table.mean(n, lo, q))
    shown = difference_interval(table.values(bns[0], lo, q), table.values(peer, lo, q))
    evidence += (f" Test: at batch {lo} bn more than {CLEAR_MARGIN:.0%} behind its best peer and {CLEAR_MARGIN:.0%} "
                 f"further behind than at batch {hi}, and the 95 % interval (Welch) of bn − {peer} at batch {lo} above 0: "
                 + (f"{fmt_interval(q, shown)}." if shown else "needs 2 seeds."))
    if gaps[lo] > 1 + CLEAR_MARGIN and gaps[lo] > gaps[hi] * (1 + CLEAR_MARGIN):
        verdict = "supported" if shown and shown[1] > 0 else "inconclusive"
    elif gaps[lo] <= 1 + CLEAR_MARGIN or gaps[lo] <= gaps[hi]:
        verdict = "not supported"
        evidence += f" BatchNorm is not further behind at batch {lo} than at batch {hi}."
    else:
        verdict = "partly supported"
    return claim, verdict, evidence


def figure1_claim(grid: Grid, table: Table) -> Claim:
    """The GroupNorm paper's Figure 1, tested: BN's test error rises from the largest batch to the
    smallest (the 95 % interval of the difference lies above 0) and each GN's does not rise by more
    than FLAT_MARGIN (its interval lies below it). A GN interval across FLAT_MARGIN is no evidence
    either way, so it makes the verdict inconclusive, not "not supported"."""
    claim = ("BatchNorm's error rises as the batch shrinks while GroupNorm's stays flat "
             "(Wu & He 2018, Figure 1: BN 23.6 % → 34.7 %, GN 24.1 % → 24.1 % from 32 to 2 images per batch)")
    lo, hi = min(grid.batch_sizes), max(grid.batch_sizes)
    bns = batch_statistics_specs(grid)
    gns = [n for n in group_norm_family(grid) if norm_kind(n).name == "gn"]  # GroupNorm proper, not ln or in
    if not bns or not gns or lo == hi:
        return claim, "not measured", "needs bn, a gn spec and two batch sizes in the grid"

    def rise(norm: str) -> tuple[float, float, float] | None:
        return difference_interval(table.values(norm, lo, "test_error"), table.values(norm, hi, "test_error"))

    rises = {n: rise(n) for n in bns[:1] + gns}
    if any(r is None for r in rises.values()):
        return claim, "not measured", "needs at least two seeds of bn and gn at the smallest and largest batch"
    parts = [f"{n}: {table.mean(n, hi, 'test_error'):.2%} at batch {hi} → {table.mean(n, lo, 'test_error'):.2%} at batch {lo}, "
             f"rise {d:+.2%} (95 % interval {a:+.2%} … {b:+.2%})" for n, (d, a, b) in rises.items()]
    bn_rises = rises[bns[0]][1] > 0
    flat = {n: rises[n][2] < FLAT_MARGIN for n in gns}
    risen = {n: rises[n][1] > FLAT_MARGIN for n in gns}  # the whole interval above the bound: shown to rise
    test = (f"Test: the 95 % interval (Welch) of the test-error difference between batch {lo} and batch {hi}; bn must lie "
            f"above 0, gn below +{FLAT_MARGIN:.1%} (percentage points); a gn interval that reaches across "
            f"+{FLAT_MARGIN:.1%} shows neither.")
    if not bn_rises:
        verdict = "not supported"
        test += " BatchNorm's rise is not distinguishable from 0."
    elif all(flat.values()):
        verdict = "supported"
    else:
        verdict = ("not supported" if all(risen.values()) else
                   "partly supported" if any(flat.values()) and any(risen.values()) else
                   "inconclusive")  # an interval across the bound: more seeds would tell
        test += " " + ", ".join(f"{n} {'flat' if flat[n] else 'rises' if risen[n] else 'neither shown flat nor shown to rise'}"
                                for n in gns) + "."
    return claim, verdict, "; ".join(parts) + ". " + test


def bn_modes_claim(grid: Grid, task: AblationTask, table: Table) -> Claim:
    claim = "BatchNorm behaves differently in training (batch statistics) and inference (running averages)"
    preset = task.preset(grid.preset)
    gaps = []
    for n in batch_statistics_specs(grid)[:1]:
        for bs in grid.batch_sizes:
            tr, ev = table.mean(n, bs, f"bn_train_mode_{task.bn_measure}"), table.mean(n, bs, f"bn_eval_mode_{task.bn_measure}")
            if tr is not None and ev is not None and tr > 0:
                gaps.append((bs, tr, ev, ev / tr - 1))
    if not gaps:
        return claim, "not measured", "needs bn in the grid"
    evidence = f"{LABELS[task.quality]}, train mode → eval mode: " + "; ".join(
        f"batch {bs} ({steps_for(preset, bs)} steps): {tr:.4g} → {ev:.4g} "
        f"({f'{gap:+.0%}' if abs(gap) < 10 else f'×{gap + 1:.3g}'})" for bs, tr, ev, gap in gaps)
    if any(gap > CLEAR_MARGIN for *_, gap in gaps):  # the usual explanation, only where eval mode is the worse
        evidence += (". Eval mode uses running averages updated once per step (momentum 0.1), so after few steps "
                     "they still remember their initial values")
    elif all(gap < -CLEAR_MARGIN for *_, gap in gaps):
        evidence += ". Here eval mode is the better of the two at every batch size"
    largest = max(abs(g[3]) for g in gaps)
    if largest <= CLEAR_MARGIN:
        return claim, "not supported", evidence + f". Every gap is under {CLEAR_MARGIN:.0%}."
    # a gap in the means must also be shown by the seeds: the interval of eval − train excludes 0
    n, key = batch_statistics_specs(grid)[0], task.bn_measure
    shown = {bs: iv for bs, _, _, gap in gaps if abs(gap) > CLEAR_MARGIN
             and (iv := difference_interval(table.values(n, bs, f"bn_eval_mode_{key}"),
                                            table.values(n, bs, f"bn_train_mode_{key}"))) is not None}
    intervals = "; ".join(f"batch {bs} {fmt_interval(task.quality, iv)}" for bs, iv in shown.items())
    evidence += (f". Test: a gap over {CLEAR_MARGIN:.0%} at some batch size whose 95 % interval (Welch) of eval − train "
                 f"mode excludes 0: {intervals or 'needs 2 seeds'}.")
    verdict = "supported" if any(a > 0 or b < 0 for _, a, b in shown.values()) else "inconclusive"
    return claim, verdict, evidence


def continuum_claim(grid: Grid, task: AblationTask) -> Claim:
    """GN with G=1 is LN, with G=C is IN: checked on the layers this backend builds, at the model's widths."""
    claim = "GroupNorm with G=1 reproduces LayerNorm and with G=C reproduces InstanceNorm"
    widths = tuple(sorted(task.widths(task.preset(grid.preset))))
    torch.manual_seed(0)
    worst_ln = worst_in = 0.0
    for c in widths:
        x = torch.randn(4, c, 8, 8, dtype=torch.float64) * 3 + 1
        worst_ln = max(worst_ln, (make_norm("gn1", c).double()(x) - make_norm("ln", c).double()(x)).abs().max().item())
        worst_in = max(worst_in, (make_norm(f"gn{c}", c).double()(x) - make_norm("in", c).double()(x)).abs().max().item())
    verdict = "supported" if max(worst_ln, worst_in) < 1e-9 else "not supported"
    evidence = (f"largest difference at the model's widths {', '.join(map(str, widths))} in float64: "
                f"gn1 vs ln {worst_ln:.1e}, gnC vs in {worst_in:.1e}")
    if task.plain_gn_note and "gn" in grid.norms and "in" in grid.norms:
        evidence += ("; note that plain `gn` (32 groups, or the largest divisor of C up to 32) is InstanceNorm at widths "
                     "up to 32")
    return claim, verdict, evidence


def _verdict_over_batches(states: Sequence[str]) -> str:
    """A claim judged at each batch size ("holds", "fails" or "unclear") as one verdict."""
    if all(s == "holds" for s in states):
        return "supported"
    if all(s == "fails" for s in states):
        return "not supported"
    return "inconclusive" if "unclear" in states else "partly supported"


def _shown_behind(table: Table, norm: str, rival: str, bs: int, q: str) -> tuple[str, str]:
    """Whether `norm` is behind `rival` on metric `q` (lower is better) at batch `bs`: "behind" when its mean
    is more than CLEAR_MARGIN worse and the seeds show it (the 95 % interval of norm − rival above 0),
    "unclear" when only the means do, else "level"; and the interval, formatted."""
    mine, theirs = table.mean(norm, bs, q), table.mean(rival, bs, q)
    interval = difference_interval(table.values(norm, bs, q), table.values(rival, bs, q))
    shown = fmt_interval(q, interval) if interval else "needs 2 seeds"
    if mine <= theirs + abs(theirs) * CLEAR_MARGIN:
        return "level", shown
    return ("behind" if interval and interval[1] > 0 else "unclear"), shown


def right_norm_claim(grid: Grid, task: AblationTask, claimant: AblationTask, table: Table,
                     metric: str | None = None) -> Claim:
    """`claimant`'s claim that its norm is the right one, measured only in claimant's own grid, on `metric`
    (the task's quality by default): at every batch size, no other norm is shown to beat it."""
    wanted, claim = claimant.right_norm
    if claimant is not task:
        return claim, "not measured here", f"see the {claimant.name} ablation"
    q, norms = metric or task.quality, list(grid.norms)
    per_bs, states = [], []
    for bs in grid.batch_sizes:
        means = {n: table.mean(n, bs, q) for n in norms if table.mean(n, bs, q) is not None}
        ours = [n for n in means if norm_kind(n).name in wanted]
        rivals = [n for n in means if n not in ours]
        if not ours or not rivals:
            continue
        mine, rival = min(ours, key=means.get), min(rivals, key=means.get)
        state, shown = _shown_behind(table, mine, rival, bs, q)
        states.append("fails" if state == "behind" else "unclear" if state == "unclear" else "holds")
        per_bs.append(f"batch {bs}: {mine} {_fmt(means[mine])}, best other {rival} {_fmt(means[rival])}, "
                      f"{mine} − {rival} {shown}")
    if not per_bs:
        return claim, "not measured", f"needs {'/'.join(wanted)} and another norm in the grid"
    evidence = (f"{LABELS[q]} (lower is better): " + "; ".join(per_bs) + f". Test: at every batch size no other norm "
                f"is shown to beat {'/'.join(wanted)}; shown means more than {CLEAR_MARGIN:.0%} better on average and "
                "the 95 % interval (Welch) of the difference excluding 0 (better on average only: inconclusive)")
    widths = task.widths(task.preset(grid.preset))
    if "gn" in wanted and "gn" in norms and all(default_groups(w) == w for w in widths):
        evidence += (f". Caution: at this preset's widths ({', '.join(map(str, sorted(widths)))}) plain `gn` has one "
                     "channel per group in every layer, so `gn` here is InstanceNorm under another name")
    return claim, _verdict_over_batches(states), evidence + "."


FASTER_MARGIN = 0.02  # "faster" means more than 2 % more images/s


def rms_claim(grid: Grid, task: AblationTask, table: Table) -> Claim:
    """At every batch size rms is shown faster than ln (more than FASTER_MARGIN more images/s, the interval
    of the difference above 0) and not shown worse (as _shown_behind tests it)."""
    claim = "RMSNorm is cheaper than LayerNorm at equal quality"
    q = task.quality
    if "rms" not in grid.norms or "ln" not in grid.norms:
        return claim, "not measured", "needs rms and ln in the grid"
    parts, states = [], []
    for bs in grid.batch_sizes:
        s_r, s_l = table.mean("rms", bs, "images_per_s"), table.mean("ln", bs, "images_per_s")
        q_r, q_l = table.mean("rms", bs, q), table.mean("ln", bs, q)
        if None in (s_r, s_l, q_r, q_l):
            continue
        speed = difference_interval(table.values("rms", bs, "images_per_s"), table.values("ln", bs, "images_per_s"))
        faster = ("no" if s_r <= s_l * (1 + FASTER_MARGIN) else "yes" if speed and speed[1] > 0 else "unclear")
        quality, shown = _shown_behind(table, "rms", "ln", bs, q)
        states.append("fails" if faster == "no" or quality == "behind" else
                      "holds" if faster == "yes" and quality == "level" else "unclear")
        parts.append(f"batch {bs}: speed rms/ln ×{s_r / s_l:.2f}, rms − ln "
                     f"{fmt_interval('images_per_s', speed) if speed else 'needs 2 seeds'} images/s; "
                     f"{LABELS[q]} rms {_fmt(q_r)} vs ln {_fmt(q_l)}, rms − ln {shown}")
    if not parts:
        return claim, "not measured", "the runs it needs failed"
    test = (f"Test: at every batch size rms more than {FASTER_MARGIN:.0%} faster with the 95 % interval (Welch) of "
            f"rms − ln images/s above 0, and not shown worse (more than {CLEAR_MARGIN:.0%} worse on average with the "
            "interval of the difference above 0); a gap in the means that the seeds do not show is inconclusive.")
    return claim, _verdict_over_batches(states), "; ".join(parts) + ". " + test


# ---------------------------------------------------------------- the learning-rate axis
def lr_stability(grid: Grid, task: AblationTask, table: Table, bs: int) -> dict[str, dict[float, str]]:
    """Each norm's runs at each learning rate: "stable" (every seed finished with a finite loss and its
    quality below the task's threshold), "unstable" (a seed diverged or finished at or above it), or
    "unknown" (no seed is unstable, but one failed or has not run)."""
    states: dict[str, dict[float, str]] = {}
    for norm in grid.norms:
        states[norm] = {}
        for lr in grid.lrs:
            values = table.values(norm, bs, task.quality, lr)
            if table.diverged_seeds(norm, bs, lr) or any(not v < task.stable_below for v in values):
                states[norm][lr] = "unstable"
            else:
                states[norm][lr] = "stable" if len(values) == len(grid.seeds) else "unknown"
    return states


def stability_rule(grid: Grid, task: AblationTask) -> str:
    """What `lr_stability` calls stable, in the report's words."""
    threshold = f"{task.stable_below:.0%}" if task.quality == "test_error" else f"{task.stable_below:g}"
    return f"every seed ({len(grid.seeds)}) finished with a finite loss and {LABELS[task.quality]} below {threshold}"


def highest_stable_lr(states: dict[float, str]) -> float | None:
    """The highest rate up to which every rate of the sweep is stable; None: not even the lowest. A rate
    that is stable again above an unstable one does not count (a seed that happened to land well)."""
    highest = None
    for lr in sorted(states):
        if states[lr] != "stable":
            break
        highest = lr
    return highest


def _first_not_stable(states: dict[float, str]) -> str | None:
    return next((states[lr] for lr in sorted(states) if states[lr] != "stable"), None)


def lr_claim(grid: Grid, task: AblationTask, table: Table, bs: int) -> Claim:
    """BN's highest stable learning rate against every other norm's, at one batch size."""
    claim = ("BatchNorm allows a higher learning rate than the other norms "
             "(the seeds: \"BN enables significantly higher learning rates\")")
    bns = batch_statistics_specs(grid)
    if not bns or len(grid.norms) < 2 or len(grid.lrs) < 2:
        return claim, "not measured", "needs bn, another norm and two learning rates in the grid"
    bn, others = bns[0], [n for n in grid.norms if n != bns[0]]
    states = lr_stability(grid, task, table, bs)
    highest = {n: highest_stable_lr(states[n]) for n in grid.norms}
    top = max(grid.lrs)

    def shown(norm: str) -> str:
        lr, q = highest[norm], task.quality
        if lr is None:
            return f"{norm}: not stable even at {min(grid.lrs):g}"
        return f"{norm}: {lr:g} ({LABELS[q]} there {fmt_metric(q, table.mean(norm, bs, q, lr))})"
    evidence = (f"highest stable {task.lr_axis_label(task.preset(grid.preset))}, runs at batch {bs} (stable: "
                f"{stability_rule(grid, task)}, at that rate and every lower one): "
                + "; ".join(shown(n) for n in grid.norms) + ". "
                "Test: bn's must be strictly higher than every other norm's.")
    # a failed or missing run just above a norm's highest stable rate could raise it
    uncertain = [n for n in grid.norms if _first_not_stable(states[n]) == "unknown"]
    at_top = [n for n in others if highest[n] == top]
    again = [f"{n} at {', '.join(f'{lr:g}' for lr, s in states[n].items() if s == 'stable' and lr > (highest[n] or 0))}"
             for n in grid.norms if any(s == "stable" and lr > (highest[n] or 0) for lr, s in states[n].items())]
    if again:
        evidence += f" Stable again above its first unstable rate (not counted): {'; '.join(again)}."
    if uncertain:
        verdict = "inconclusive"
        evidence += f" Runs that failed or have not run could raise the limit of {', '.join(uncertain)}."
    elif highest[bn] == top and at_top:
        verdict = "inconclusive"
        evidence += (f" bn and {', '.join(at_top)} are all stable at the largest rate tried ({top:g}); the sweep "
                     "does not reach their limits.")
    elif highest[bn] is not None and all(highest[o] is None or highest[o] < highest[bn] for o in others):
        verdict = "supported"
    else:
        verdict = "not supported"
        rivals = [o for o in others if highest[o] is not None and (highest[bn] is None or highest[o] >= highest[bn])]
        evidence += f" {', '.join(rivals)} {'is' if len(rivals) == 1 else 'are'} stable at a rate as high or higher."
    if "none" in others and verdict != "inconclusive":  # the BatchNorm paper's own comparison
        ahead = highest[bn] is not None and (highest["none"] is None or highest["none"] < highest[bn])
        evidence += f" Against no normalization alone, bn's limit is {'higher' if ahead else 'not higher'}."
    return claim, verdict, evidence


# ---------------------------------------------------------------- the group count (GN paper, Table 3)
def group_counts(grid: Grid, widths: set[int]) -> dict[str, dict[int, int]] | None:
    """{norm: {width: G}} when the grid is a group-count ablation: every norm a GroupNorm with a fixed G
    (gnG; ln is G = 1, in is G = C) and at least two gnG specs; else None. Plain `gn`, whose G
    depends on the width, does not make one."""
    specs = {n: parse_spec(n) for n in grid.norms}
    if any(norm_kind(s).groups is None or (s.kind == "gn" and s.groups is None) for s in specs.values()):
        return None
    if sum(s.kind == "gn" for s in specs.values()) < 2:
        return None
    return {n: {w: norm_kind(s).groups(s, w) for w in sorted(widths)} for n, s in specs.items()}


def group_count_claim(grid: Grid, task: AblationTask, table: Table, bs: int, widths: set[int]) -> Claim:
    """The best intermediate G (1 < G < C in every layer) against G = 1 and G = C, by the 95 % interval
    of the difference of the quality metric."""
    claim = ("An intermediate group count beats both ends, G = 1 (LayerNorm) and G = C (InstanceNorm) "
             "(the seeds: GroupNorm is \"a sweet spot between the instance-level and layer-level approaches\")")
    groups = group_counts(grid, widths) or {}
    q = task.quality
    ends_one = [n for n, g in groups.items() if all(v == 1 for v in g.values())]
    ends_c = [n for n, g in groups.items() if all(v == w for w, v in g.items())]
    between = [n for n, g in groups.items() if all(1 < v < w for w, v in g.items())]
    middle = [n for n in between if table.values(n, bs, q)]
    if not ends_one or not ends_c or not middle:
        return claim, "not measured", "needs G = 1 (gn1 or ln), G = C (in) and a G between them in every layer"
    best = min(middle, key=lambda n: table.mean(n, bs, q))
    diffs = {end: difference_interval(table.values(best, bs, q), table.values(end, bs, q)) for end in ends_one + ends_c}
    if any(d is None for d in diffs.values()):
        return claim, "not measured", "needs at least two seeds of each"
    evidence = (f"{LABELS[q]} at batch {bs}, the best intermediate G ({best}, {fmt_metric(q, table.mean(best, bs, q))}) "
                "minus each end: " + "; ".join(
                    f"{best} − {end} ({fmt_metric(q, table.mean(end, bs, q))}) = {fmt_difference(q, d)} (95 % interval "
                    f"{fmt_difference(q, a)} … {fmt_difference(q, b)})" for end, (d, a, b) in diffs.items())
                + ". Test: every interval below 0 (the best intermediate G is picked after the fact, which favours it).")
    if all(b < 0 for _, _, b in diffs.values()):
        verdict = "supported"
    elif any(d >= 0 for d, _, _ in diffs.values()):
        verdict = "not supported"
        ahead = [end for end, (d, _, _) in diffs.items() if d >= 0]
        clearly = [end for end, (_, a, _) in diffs.items() if a > 0]
        evidence += (f" {', '.join(ahead)} {'is' if len(ahead) == 1 else 'are'} at least as good on average"
                     + (f"; {', '.join(clearly)} clearly better (interval above 0)." if clearly else "."))
    else:
        verdict = "inconclusive"
        evidence += " Better on average, but an interval includes 0."
    skipped = [n for n in groups if n not in between + ends_one + ends_c]
    if skipped:
        evidence += f" Not counted as intermediate: {', '.join(skipped)} (one channel per group in some layer)."
    return claim, verdict, evidence
