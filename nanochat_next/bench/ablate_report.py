"""What a person reads of an ablation: the report (seed noise first, then each variant against the baseline)
and the plot (the metric over training, per variant: the mean over seeds with its min-max band)."""

from __future__ import annotations

from pathlib import Path


def _fmt(x, spec: str = ".4f") -> str:
    return "-" if x is None or x != x else format(x, spec)  # x != x: nan


def report(data: dict, png_name: str) -> str:
    seeds = ", ".join(map(str, data["seeds"]))
    noise = data["seed_noise"]
    lines = [f"# Ablation `{data['name']}` ({data['mode']})", "",
             f"Every variant trained with seeds {seeds}; the metric is the {data['metric']} at the end (lower is "
             f"better). Baseline: `{data['baseline']}`. A change counts as an improvement only with p < "
             f"{data['accept_p']} (paired t-test over the same seeds; modded-nanogpt's rule).", "",
             "## Seed noise first", "",
             f"The baseline alone lands {_fmt(noise['range'])} apart across its seeds (std {_fmt(noise['std'])}): "
             "a difference smaller than this is not evidence.", "",
             "## Variants", "",
             "| variant | mean | std | 95% CI | difference | p (paired) | p (Welch) | verdict | tok/s | time to "
             "target (s) |", "|---|---:|---:|---|---:|---:|---:|---|---:|---:|"]
    for name, row in data["variants"].items():
        m = row["metric"]
        paired, welch = row.get("paired", {}), row.get("welch", {})
        ttt = row["time_to_target_s"]
        lines.append(f"| `{name}` | {_fmt(m['mean'])} | {_fmt(m['std'])} | {_fmt(m['ci95'][0])} - "
                     f"{_fmt(m['ci95'][1])} | {_fmt(paired.get('difference'), '+.4f')} | "
                     f"{_fmt(paired.get('p_value'), '.3g')} | {_fmt(welch.get('p_value'), '.3g')} | "
                     f"{row.get('verdict', 'baseline')} | {_fmt(row['speed']['mean'], ',.0f')} | "
                     f"{_fmt(ttt['mean'] if ttt else None, '.1f')} |")
    lines += ["", f"![{data['metric']} per variant]({png_name})"]
    return "\n".join(lines)


def effects(data: dict) -> dict[str, dict]:
    """Each variant's paired difference to the baseline (same seeds): mean and 95% CI, from the per-seed values."""
    from nanochat_next.bench.stats import describe

    base = data["variants"][data["baseline"]]["by_seed"]
    out = {}
    for name, row in data["variants"].items():
        if name != data["baseline"]:
            out[name] = describe([row["by_seed"][s] - base[s] for s in base if s in row["by_seed"]])
    return out


def draw_curves(data: dict, ax) -> None:
    """The metric over training per variant: mean over seeds, min-max band; the baseline in thick black (the
    variants' curves often lie on top of each other: the effects panel tells them apart)."""
    for name, by_seed in data["curves"].items():
        curves = [c for c in by_seed.values() if c]
        steps = [x for x, _ in curves[0]]
        values = [[y for _, y in c] for c in curves if len(c) == len(steps)]
        mean = [sum(col) / len(col) for col in zip(*values)]
        style = dict(color="black", lw=2.2, zorder=3) if name == "baseline" else dict(lw=1)
        ax.plot(steps, mean, label=name, **style)
        ax.fill_between(steps, [min(col) for col in zip(*values)], [max(col) for col in zip(*values)], alpha=0.2)
    ax.set(xlabel="step", ylabel="train loss" if data["mode"] == "scalar" else "val bpb",
           title="mean over seeds, min-max band")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)


def draw_effects(data: dict, ax) -> None:
    """Final metric minus the baseline's, per variant (paired by seed): mean and 95% CI; green = accepted
    improvement (p < accept_p), red = significant regression, gray = no significant difference."""
    rows = effects(data)
    colors = {"improvement": "tab:green", "regression": "tab:red"}
    for y, (name, e) in enumerate(rows.items()):
        color = colors.get(data["variants"][name].get("verdict"), "gray")
        low, high = e["ci95"]
        ax.errorbar(e["mean"], y, xerr=[[e["mean"] - low], [high - e["mean"]]] if high == high else None,
                    fmt="o", color=color, capsize=3)
    ax.axvline(0, color="black", lw=0.8)
    from matplotlib.ticker import MaxNLocator

    ax.set_yticks(range(len(rows)), list(rows), fontsize=7)
    ax.invert_yaxis()
    ax.xaxis.set_major_locator(MaxNLocator(4))  # few x ticks: long decimals would run together
    ax.set(xlabel=f"{data['metric']} - baseline's (lower is better)",
           title="effect, 95% CI (paired by seed)\ngreen: improvement, red: regression (p < "
                 f"{data.get('accept_p', 0.01)}), gray: no significant difference")
    ax.title.set_fontsize(9)
    ax.grid(alpha=0.3, axis="x")


def figure_height(data: dict) -> float:
    """Inches for a curves + effects figure: room for one readable label per variant."""
    return max(4.5, 0.35 * len(data["variants"]) + 1.5)


def plot(data: dict, path: Path) -> None:
    from matplotlib.figure import Figure  # no pyplot: a notebook's backend stays as it is

    fig = Figure(figsize=(12, figure_height(data)))
    left, right = fig.subplots(1, 2, width_ratios=[3, 2])
    draw_curves(data, left)
    draw_effects(data, right)
    fig.suptitle(f"ablation {data['name']}: {len(data['seeds'])} seeds per variant")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
