"""``wiring train``: train a neural posterior estimator on a simulation store.

``wiring train --store STORE --out POSTERIOR_DIR [--estimator nsf] [--seed S] [--overwrite]
[--max-epochs N] [--batch-size auto|N] [--hidden-features N] [--num-transforms N]
[--learning-rate LR] [--lr-schedule plateau|constant] [--lr-patience N] [--min-learning-rate LR]
[--threads N] [--device cpu|cuda|auto] [--allow-incomplete]``

Writes the posterior directory (``weights.pt`` + ``manifest.json``, see
:mod:`wiring.inference`). The output is checked before training starts.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Any

from pipelines.commands._argtypes import (
    add_progress_option,
    non_negative_int,
    positive_float,
    positive_int,
    show_progress,
)
from pipelines.commands._locking import holding_output_lock

__all__ = ["register"]

log = logging.getLogger(__name__)


def _batch_size(text: str) -> int | str:
    return "auto" if text == "auto" else positive_int(text)


def register(sub: Any) -> None:
    """Add ``wiring train`` to the top-level sub-parsers."""
    from wiring.inference import ESTIMATORS
    from wiring.inference._training import LR_SCHEDULES
    from wiring.inference.npe import (
        DEFAULT_LEARNING_RATE,
        DEFAULT_LR_PATIENCE,
        DEFAULT_MIN_LEARNING_RATE,
        DEFAULT_STOP_AFTER_EPOCHS,
    )

    p = sub.add_parser(
        "train",
        help="train a neural posterior (NPE) on a simulation store",
        description="Train an amortized neural posterior estimator with sbi on the simulations "
        "of a store and save it as a pickle-free posterior directory.",
    )
    p.add_argument("--store", type=Path, required=True, help="simulation store (wiring simulate)")
    p.add_argument("--out", type=Path, required=True, help="posterior directory to write")
    p.add_argument("--estimator", default="nsf", choices=ESTIMATORS,
                   help="density estimator (default nsf, a neural spline flow)")
    p.add_argument("--seed", type=non_negative_int, default=0, help="training seed (default 0)")
    p.add_argument("--max-epochs", type=positive_int, default=1000)
    p.add_argument("--stop-after-epochs", type=positive_int, default=DEFAULT_STOP_AFTER_EPOCHS,
                   help="early-stopping patience in epochs (default "
                   f"{DEFAULT_STOP_AFTER_EPOCHS})")
    p.add_argument("--batch-size", type=_batch_size, default="auto",
                   help="training batch size (default auto: 1000 from 9000 training rows, else 200-900)")
    p.add_argument("--learning-rate", type=positive_float, default=DEFAULT_LEARNING_RATE,
                   help=f"initial Adam step size (default {DEFAULT_LEARNING_RATE:g})")
    p.add_argument("--lr-schedule", choices=LR_SCHEDULES, default="plateau",
                   help="plateau (default): halve the step size after --lr-patience epochs "
                   "without improvement and stop below --min-learning-rate; constant: sbi's "
                   "fixed step size")
    p.add_argument("--lr-patience", type=positive_int, default=DEFAULT_LR_PATIENCE,
                   help=f"epochs without improvement before a decay (default "
                   f"{DEFAULT_LR_PATIENCE})")
    p.add_argument("--min-learning-rate", type=float, default=DEFAULT_MIN_LEARNING_RATE,
                   help=f"stop once the step size decays below this (default "
                   f"{DEFAULT_MIN_LEARNING_RATE:g})")
    p.add_argument("--device", default="cpu",
                   help="cpu (default), cuda, cuda:N, or auto (a GPU where torch sees one)")
    p.add_argument("--hidden-features", type=positive_int, default=50)
    p.add_argument("--num-transforms", type=positive_int, default=5)
    p.add_argument("--threads", type=positive_int, default=1,
                   help="torch threads while training (default 1: as fast as 2 for these "
                   "small networks on an idle machine, far faster on a shared one)")
    p.add_argument("--allow-incomplete", action="store_true",
                   help="train on the finished part of an interrupted store")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    add_progress_option(p, what="the training progress bar")
    p.set_defaults(handler=holding_output_lock(_run, what="posterior directory"))


def _rule_metadata(rule_info: dict[str, Any]) -> dict[str, Any]:
    """The rule's parameter specs for the manifest, if the rule is installed here."""
    from wiring.errors import WiringError
    from wiring.rules.registry import get_rule

    try:
        rule = get_rule(str(rule_info.get("name")))
    except WiringError as err:
        log.info("parameter specs not recorded: %s", err)
        return {}
    return {"param_specs": [p.to_dict() for p in rule.params]}


def _run(args: argparse.Namespace) -> int:
    from wiring.errors import OutputExistsError
    from wiring.inference import is_posterior_dir, save_posterior, train_from_store
    from wiring.simulation.store import SimulationStore

    out: Path = args.out
    if out.exists() and not args.overwrite:
        raise OutputExistsError(f"{out} already exists; choose another --out or pass --overwrite")
    if (out.exists() or out.is_symlink()) and not is_posterior_dir(out):
        from anatomy.storeguard import refuse_foreign

        raise refuse_foreign(out, "a posterior directory", OutputExistsError)
    if not out.parent.is_dir():
        raise FileNotFoundError(f"output folder {out.parent} does not exist; create it first")
    store = SimulationStore.open(args.store)
    if not store.is_complete and not args.allow_incomplete:
        from wiring.simulation.store import StoreFormatError

        raise StoreFormatError(
            f"simulation store {str(args.store)!r} is incomplete ({store.n_done} of {store.n} "
            f"simulations); resume it with `wiring simulate` (same arguments) or pass "
            f"--allow-incomplete"
        )
    posterior = train_from_store(
        store, metadata=_rule_metadata(store.rule_info), estimator=args.estimator,
        seed=args.seed, max_epochs=args.max_epochs,
        stop_after_epochs=args.stop_after_epochs, batch_size=args.batch_size,
        learning_rate=args.learning_rate, hidden_features=args.hidden_features,
        num_transforms=args.num_transforms, num_threads=args.threads,
        lr_schedule=args.lr_schedule, lr_patience=args.lr_patience,
        min_learning_rate=args.min_learning_rate, device=args.device,
        progress=show_progress(args),
    )
    save_posterior(posterior, out, overwrite=args.overwrite)
    tr = posterior.manifest["training"]
    nuisance = ((posterior.manifest.get("protocol") or {}).get("nuisance") or {}).get("names")
    if nuisance:
        log.info("the store's simulations draw the anatomy nuisance parameters %s: the "
                 "posterior marginalises them (`wiring analyze --store %s` reports how the "
                 "verdict depends on them)", ", ".join(nuisance), args.store)
    sys.stdout.write(
        f"{out}: {args.estimator} posterior of rule {posterior.manifest['rule'].get('name')!r} "
        f"trained on {tr['n_train']} simulations ({tr['n_dropped_invalid']} invalid dropped), "
        f"{tr['epochs']} epochs, best validation loss {tr['best_validation_loss']:.4f} at "
        f"epoch {tr['best_epoch']}; stopped: {tr['stop_message']}\n"
    )
    return 0
