"""``wiring run``: the whole pipeline in one command, resumable, from a laptop to a cluster."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from pipelines.commands._argtypes import non_negative_int

__all__ = ["format_summary", "register"]


def register(sub: Any) -> None:
    """Add ``wiring run``."""
    p = sub.add_parser(
        "run",
        help="run the whole pipeline (default: the column model and the VPM measurements)",
        description="Build or reuse the anatomy, extract population features, simulate the "
        "training set, train NPE, condition on the measurements and write the analysis report. "
        "Running the same configuration again resumes (or does nothing if finished).",
    )
    p.add_argument("--config", metavar="FILE", help="run config (TOML file or built-in name)")
    p.add_argument("--out", metavar="DIR", help="run directory (default: derived from config)")
    p.add_argument(
        "--cluster",
        metavar="KIND",
        help="local | threads | slurm | pbs | sge | lsf | a scheduler address",
    )
    p.add_argument("--workers", type=non_negative_int, metavar="N", help="local dask workers")
    p.add_argument("--seed", type=non_negative_int, help="run seed (overrides the config)")
    p.add_argument("--stop-after", metavar="STAGE", help="stop after this stage")
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")
    p.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    from pipelines.config import load_config
    from pipelines.stages import run_pipeline

    config = load_config(args.config)
    cluster: dict[str, Any] = {}
    if args.cluster:
        cluster["kind"] = args.cluster
    if args.workers is not None:
        cluster["workers"] = args.workers
    if cluster:
        config = config.replace(cluster=cluster)
    if args.seed is not None:
        config = config.replace(run={"seed": args.seed})
    progress = not args.no_progress and args.quiet == 0
    result = run_pipeline(config, out=args.out, progress=progress, stop_after=args.stop_after)
    if args.quiet < 2:
        sys.stdout.write(format_summary(result.summary, result.run_dir))
    return 0


def format_summary(summary: dict[str, Any], run_dir: Any) -> str:
    """The short human summary printed at the end of ``wiring run`` (from ``summary.json``).

    Only what exists is named: a run stopped early (``--stop-after``) lists the outputs it
    wrote and the stages still to do, never a report that was not written.
    """
    sections = summary.get("sections", {})
    root = Path(run_dir)
    lines = [f"run directory: {run_dir}"]
    report = root / "report" / "index.html"
    if not report.exists():
        outputs = [("simulations", root / "simulations.zarr"), ("posterior", root / "posterior")]
        for what, path in outputs:
            if path.exists():
                lines.append(f"{what}: {path}")
        lines.append("no report yet (the analyze stage has not run); run the same command "
                     "without --stop-after to finish")
        return "\n".join(lines) + "\n"
    post = sections.get("posterior", {})
    params = post.get("parameters", [])
    if params:
        level = round(100 * float(post.get("level", 0.95)))
        lines.append(f"posterior mean and {level} % interval:")
        width = max(len(p["parameter"]) for p in params)
        for p in params:
            lines.append(
                f"  {p['parameter']:<{width}}  {p['mean']:7.3f}   "
                f"[{p['ci_low']:.3f}, {p['ci_high']:.3f}]"
            )
    if post.get("reference") is not None and "reference_in_hpd" in post:
        ref = ", ".join(f"{v:g}" for v in post["reference"])
        verdict = "plausible" if post["reference_in_hpd"] else "NOT plausible"
        hpd = 100 * float(post.get("reference_hpd_level", float("nan")))
        lines.append(
            f"a-priori rule ({ref}): {verdict} (the smallest highest-density region that "
            f"contains it holds {hpd:.0f} % of the posterior; plausible means <= 95 %)"
        )
    pairs = post.get("correlations_given_the_others") or []
    if pairs:
        lines.append("correlations given the other parameters (conditional: sbi "
                     "conditional_corrcoeff; partial: sample precision matrix):")
        lines += [f"  {line}" for line in pairs]
    ppc_section = sections.get("posterior_predictive_check", {})
    ppc = ppc_section.get("measurements", [])
    if ppc:
        calibrated = bool(ppc_section.get("p_value_calibrated_method"))
        lines.append("predictive fit (measured | predictive mean [95 %] | "
                     + ("p calibrated after Hjort et al. 2006):" if calibrated
                        else "posterior predictive p):"))
        width = max(len(m["measurement"]) for m in ppc)
        for m in ppc:
            p_cal = m.get("p_value_calibrated", m.get("p_value", float("nan")))
            lines.append(
                f"  {m['measurement']:<{width}}  {m['measured']:.2f} | "
                f"{m['predictive_mean']:.2f} [{m['ci_low']:.2f}, {m['ci_high']:.2f}] | "
                f"p = {p_cal:.2f}"
            )
    sens = sections.get("anatomy_sensitivity", {}).get("conditions", {})
    if sens:
        lines.append("how the verdict on the a-priori rule depends on the anatomy "
                     "(HPD level containing it):")
        for cond in sens.values():
            plausible = cond.get("a_priori_rule_plausible")
            verdict = {True: "plausible", False: "NOT plausible"}.get(plausible, "n/a")
            level = cond.get("reference_hpd_level")
            shown = f" ({100 * float(level):.0f} %)" if level is not None else ""
            lines.append(f"  {cond.get('label', '?'):<30}  {verdict}{shown}")
    cal = sections.get("calibration")
    if cal:
        verdict = cal.get("verdict") or ("passed" if cal.get("passed") else "FAILED")
        lines.append(f"calibration (SBC, coverage): {verdict}")
    cmp_ = sections.get("rule_comparison", {}).get("rules")
    if cmp_:
        out = [r["rule"] for r in cmp_ if r.get("ruled_out")]
        lines.append(f"rules ruled out by the data: {', '.join(out) if out else 'none'}")
    lines.append(f"report: {report}")
    return "\n".join(lines) + "\n"
