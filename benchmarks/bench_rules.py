"""Wiring rules: rate throughput for batches of θ, synapse-draw throughput, registry lookups.

Figures are measured in one process on a toy pair table with realistic features
(:func:`wiring.testing.make_pair_table`); ratios compare two ways of doing the same work in
the same run. ``--quick`` uses a smaller table.
"""

from __future__ import annotations

import time

import numpy as np

from benchmarks._figure import Figure

__all__ = ["run"]


def _best(fn: object, repeat: int = 3) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()  # type: ignore[operator]
        times.append(time.perf_counter() - t0)
    return min(times)


def run(quick: bool) -> list[Figure]:
    from wiring.pairs import pair_rate
    from wiring.rules.draw import draw_synapse_counts
    from wiring.rules.registry import get_rule, list_rules, refresh_rules
    from wiring.testing import make_pair_table

    n_pairs = 20_000 if quick else 100_000
    batch = 100
    table = make_pair_table(n_pairs, max_shared=20, seed=0)
    figures: list[Figure] = []
    theta = np.random.default_rng(0).uniform(0, 2, size=(batch, 3))
    for name in ("dso", "peters_synapse"):
        rule = get_rule(name)
        th = theta if name == "dso" else theta[:, :1] / 2
        t = _best(lambda r=rule, x=th: pair_rate(r, table, x))
        figures.append(
            Figure(
                f"{name}: pair_rate, {batch} θ × {table.n_rows} rows",
                table.n_rows * batch / t / 1e6,
                "M row·θ/s",
            )
        )
    dso = get_rule("dso")
    t_rng = _best(lambda: draw_synapse_counts(dso, table, [1, 1, 1], rng=0))
    t_key = _best(lambda: draw_synapse_counts(dso, table, [1, 1, 1], key=0))
    figures.append(Figure("dso draws, one Generator", n_pairs / t_rng / 1e6, "M pairs/s"))
    figures.append(Figure("dso draws, keyed (pre, post)", n_pairs / t_key / 1e6, "M pairs/s"))
    figures.append(Figure("keyed / Generator draw time", t_key / t_rng, "ratio"))
    ps = get_rule("peters_synapse")
    t_bin = _best(lambda: draw_synapse_counts(ps, table, [0.3], key=0))
    figures.append(Figure("peters_synapse keyed draws", table.n_rows / t_bin / 1e6, "M rows/s"))

    def cold() -> None:
        refresh_rules()
        list_rules()

    figures.append(Figure("registry: discover + load all rules", _best(cold) * 1e3, "ms"))
    return figures
