"""What a person reads of a depth ladder: a table per baseline (one row per rung: the bpb difference at the end and
at the best point, its p-value, the compute multiplier) and a plot of val bpb against FLOPs per rung."""

from __future__ import annotations

import math
from pathlib import Path


def _fmt(x, spec: str = ".4f") -> str:
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else format(x, spec)


def _cm(m: dict, bold: bool = False) -> str:
    if m["geomean"] is None:
        return "undefined"
    mark = {"at the baseline's final bpb": "*"}
    seeds = ", ".join(s["text"] + mark.get(s.get("kind"), "") if s else "-" for s in m["by_seed"].values())
    value = f"{m['geomean']:.3g}" if m["geomean"] < 1e4 else f"{m['geomean']:.1e}"
    return f"{'**' if bold else ''}{value}{'**' if bold else ''}{'?' if m['extrapolated'] else ''} ({seeds})"


def report(data: dict, png_name: str) -> str:
    ours = data["ours"]
    seeds = ", ".join(map(str, data["seeds"]))
    minutes = data["wall_seconds"] / 60
    lines = [f"# Depth ladder `{data['preset']}`: `{ours}` against {', '.join(f'`{b}`' for b in data['baselines'])}",
             "",
             f"Depths {data['depths']} x {data['steps']} steps, seeds {seeds}, every recipe on the same data, "
             f"tokenizer and seeds ({minutes:.0f} min of runs in all). Lower bpb is better. **CM nanochat** "
             "(compute multiplier, nanochat's measure): the FLOPs the baseline needs to reach our final val bpb, "
             "read off its curve of the same seed in log-log, over the FLOPs we spent; > 1 is a win; geometric "
             "mean over the seeds, then each seed; `?` = extrapolated past the baseline's curve. When ours ends "
             "below anything the baseline reached, that extrapolation follows the baseline's last, flattening "
             "segment (its LR decays there) and can give absurd values, so the **CM** column (the headline) takes, "
             "per seed, nanochat's value where it is read inside the baseline's curve, else the CM anchored at the "
             "baseline's final bpb (marked `*`): the baseline's FLOPs over the FLOPs our curve needed to reach "
             "its final bpb, read inside our curve. That one is conservative (our intermediate points are read "
             "before our LR decayed). **CM best**: nanochat's CM of our best point against the baseline's "
             "best-so-far curve (defined when a curve rises again on repeated data). p: paired t-test over the "
             f"seeds; a difference counts with p < {data['accept_p']}.", ""]
    if data.get("pending"):
        lines += [f"**Not run yet** (the ladder is run in parts; these rungs have unfinished runs and are left out "
                  f"of every table and range below): {', '.join(data['pending'])}.", ""]
    if data.get("partial"):
        lines += ["**Partly run**: " + "; ".join(f"{rung} against {', '.join(f'`{b}`' for b in missing)}"
                                                 for rung, missing in data["partial"].items())
                  + " (those baselines' runs are unfinished: the rung is left out of their tables only).", ""]
    if data.get("training_tokens"):
        lines += [f"The corpus has {data['training_tokens']:,} training tokens; `epochs` = tokens seen / that.", ""]
    for base in data["baselines"]:
        s = data["summary"][base]
        target = data["cm_targets"].get(base)
        lines += [f"## `{ours}` vs `{base}`", "",
                  f"Headline CM over the rungs: {_fmt(s['cm_min'], '.3g')} to {_fmt(s['cm_max'], '.3g')}"
                  + (f" (extrapolated at {', '.join(s['extrapolated'])})" if s["extrapolated"] else "")
                  + (f"; target >= {target}: reached at {s['rungs_at_target']} of {s['rungs']} rungs" if target
                     else "")
                  + ("; significantly worse at the end: " + ", ".join(s["significantly_worse"])
                     if s["significantly_worse"] else "; significantly worse at the end at no rung") + ".", "",
                  "| rung | epochs | ours final | theirs final | diff | p | ours best (step) | theirs best | "
                  "diff | p | CM | CM nanochat | CM best |",
                  "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---|---|"]
        for r in (r for r in data["rungs"] if base in r["versus"]):
            a, b, v = r["recipes"][ours], r["recipes"][base], r["versus"][base]
            steps = sorted(set(a["best_step_by_seed"].values()))
            lines.append(
                f"| d{r['depth']} x {r['steps']} | {_fmt(r['epochs'], '.2g')} | {_fmt(a['final']['mean'])} | "
                f"{_fmt(b['final']['mean'])} | {_fmt(v['final']['difference'], '+.4f')} | "
                f"{_fmt(v['final']['p_value'], '.2g')} | {_fmt(a['best']['mean'])} "
                f"({', '.join(map(str, steps))}) | {_fmt(b['best']['mean'])} | "
                f"{_fmt(v['best']['difference'], '+.4f')} | {_fmt(v['best']['p_value'], '.2g')} | "
                f"{_cm(v['cm_headline'], bold=True)} | {_cm(v['cm'])} | {_cm(v['cm_best_so_far'])} |")
        lines.append("")
    lines += [f"![val bpb against FLOPs per rung]({png_name})"]
    return "\n".join(lines)


def plot(data: dict, path: Path) -> None:
    """One panel per rung: every recipe's val bpb against FLOPs (mean over seeds; FLOPs on a log axis, bpb linear:
    a rung's bpb range is narrow, and log ticks over it are unreadable); the last panel: the headline CM against
    each baseline per rung, against the rung's compute, with the targets."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import NullFormatter

    rungs = data["rungs"]
    cols = len(data["steps"])
    rows = math.ceil((len(rungs) + 1) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(5 * cols, 3.4 * rows), squeeze=False)
    for ax, r in zip(axes.flat, rungs):
        for name, rec in r["recipes"].items():
            curves = list(rec["curves"].values())
            per_step = rec["flops_per_token"] * r["tokens"] / r["steps"]
            steps = [s for s, _ in curves[0] if s > 0]
            mean = [sum(dict(c)[s] for c in curves) / len(curves) for s in steps]
            ax.semilogx([s * per_step for s in steps], mean, "o-", ms=3, label=name)
        ax.set(title=f"depth {r['depth']}, {r['steps']} steps" + (f" ({r['epochs']:.2g} epochs)" if r["epochs"]
                                                                  else ""), xlabel="FLOPs", ylabel="val bpb")
        ax.xaxis.set_minor_formatter(NullFormatter())  # label the powers of ten only: minor labels overlap
        ax.grid(True, which="both", alpha=0.3)
    ax = axes.flat[len(rungs)]
    for i, base in enumerate(data["baselines"]):
        points = [(r["recipes"][data["ours"]]["flops_per_token"] * r["tokens"],
                   r["versus"][base]["cm_headline"]["geomean"], r) for r in rungs if base in r["versus"]]
        points = [pt for pt in points if pt[1]]
        ax.semilogx([x for x, _, _ in points], [y for _, y, _ in points], "s", color=f"C{i + 1}",
                  label=f"vs {base}")
        for x, y, r in points:
            ax.annotate(f"d{r['depth']}x{r['steps']}", (x, y), fontsize=7, xytext=(3, 3), textcoords="offset points")
        if data["cm_targets"].get(base):
            ax.axhline(data["cm_targets"][base], color=f"C{i + 1}", lw=0.8, ls="--")
    ax.axhline(1, color="gray", lw=0.8)
    ax.set_ylim(bottom=0)
    ax.set(title=f"compute multiplier of {data['ours']} (dashed: targets)", xlabel="FLOPs of the rung",
           ylabel="CM (> 1: ours needs less)")
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    for ax in list(axes.flat)[len(rungs) + 1:]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
