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


def plot(data: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    for name, by_seed in data["curves"].items():
        curves = [c for c in by_seed.values() if c]
        steps = [x for x, _ in curves[0]]
        values = [[y for _, y in c] for c in curves if len(c) == len(steps)]
        mean = [sum(col) / len(col) for col in zip(*values)]
        ax.plot(steps, mean, label=name)
        ax.fill_between(steps, [min(col) for col in zip(*values)], [max(col) for col in zip(*values)], alpha=0.2)
    ax.set(xlabel="step", ylabel="train loss" if data["mode"] == "scalar" else "val bpb",
           title=f"ablation {data['name']}: mean over seeds, min-max band")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
