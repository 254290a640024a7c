"""tipkit against the authors' code: each method with an official implementation, run both ways on tipkit's own
cached features, and the two test accuracies and chosen hyperparameters side by side.

    python benchmarks/parity.py --tip-adapter CHECKOUT --gda CHECKOUT --ape CHECKOUT --lp-plus-plus CHECKOUT \\
        --tip-x CHECKOUT --clap CHECKOUT --dassl CHECKOUT [--shots 16 4] [--methods ape gda]

Each CHECKOUT is a local git checkout of the authors' repository (gaopengcuhk/Tip-Adapter, mrflogs/ICLR24,
yangyangyang127/APE, FereshteShakeri/FewShot-CLIP-Strong-Baseline, vishaal27/SuS-X, jusiro/CLAP with
KaiyangZhou/Dassl.pytorch); its commit is read from it and written beside each row. The official functions are
imported from the checkout at run time (:mod:`parity_official`, which lists every shim). tipkit runs under the
``paper`` protocol (the whole validation split, LP++ on its own K-per-class split, APE's per-dataset settings),
on the committed stand-in, Fashion-MNIST, seed 1. Rows replace those of the same method and shots in
``benchmarks/results/parity.csv`` (written atomically); CI has no checkouts and reads the committed file.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import logging
import platform
import subprocess
import sys
import time
import types
from pathlib import Path

import torch

import parity_official as official

from tipkit.config import make_config
from tipkit.core.cache import l2_normalize
from tipkit.core.metrics import accuracy
from tipkit.experiments import pipeline
from tipkit.io import write_text
from tipkit.methods import get_method
from tipkit.methods.lpplusplus import own_val
from tipkit.models.backbone import raw_class_embeddings
from tipkit.models.features import image_features

OUT = Path(__file__).resolve().parent / "results" / "parity.csv"
HEADER = ["method", "repository", "dataset", "backbone", "shots", "seed", "choices_on", "tipkit_test",
          "official_test", "difference", "tolerance", "tipkit_chosen", "official_chosen"]
REPOS = {  # method -> (flag, repository); CLAP also needs --dassl
    "tip_adapter": ("tip_adapter", "gaopengcuhk/Tip-Adapter"), "tip_adapter_f": ("tip_adapter", "gaopengcuhk/Tip-Adapter"),
    "gda": ("gda", "mrflogs/ICLR24"), "ape": ("ape", "yangyangyang127/APE"), "ape_t": ("ape", "yangyangyang127/APE"),
    "lp_plus_plus": ("lp_plus_plus", "FereshteShakeri/FewShot-CLIP-Strong-Baseline"),
    "tip_x": ("tip_x", "vishaal27/SuS-X"), "clap": ("clap", "jusiro/CLAP"),
}
CHOICES = {  # what each side chooses its hyperparameters on, in this comparison
    "tip_adapter": "alpha/beta on val (whole split)",
    "tip_adapter_f": "epoch on test; alpha/beta on val (whole split)",
    "gda": "alpha on val (whole split)",
    "ape": "alpha/beta/gamma on val (whole split)",
    "ape_t": "epoch and alpha/beta on val (whole split)",
    "lp_plus_plus": "epoch on val, K images per class (LP++'s own split)",
    "tip_x": "alpha/beta/gamma on val (whole split)",
    "clap": "nothing (last epoch; no validation); both sides on tipkit's batches",
}
DETERMINISTIC = 0.05  # points: the same arithmetic in another order (CLAP too, once both sides draw the same batches)
CLAP_SEEDS = (1, 2, 3)  # the official code's own shuffles: how far reshuffling alone moves it (shown, not a tolerance)
log = logging.getLogger("parity")


def commit(root: str) -> str:
    return subprocess.run(["git", "-C", root, "rev-parse", "--short=7", "HEAD"], check=True, capture_output=True,
                          text=True).stdout.strip()


def features(shots: int, seed: int):
    """tipkit's cached features for one cell, as the runners read them, and the fitted run."""
    cfg = make_config(shots=shots, seed=seed, protocol="paper", methods=["zero_shot"])
    fitted = pipeline.fit(cfg)
    d, ds = fitted.data, fitted.dataset
    test = ds.split("test")
    ft = l2_normalize(image_features(fitted.backbone, ds.name, test, batch_size=cfg.batch_size))
    d.raw_class_embeddings = raw_class_embeddings(fitted.backbone, ds.classnames, ds.templates)  # CLAP's base
    vi = own_val(d, "shots")
    f = types.SimpleNamespace(views=d.views, labels=d.labels, keys=d.keys, W=d.class_embeddings,
                              raw_W=d.raw_class_embeddings, val=d.val, yv=d.val_labels, val_lpp=d.val[vi],
                              yv_lpp=d.val_labels[vi], test=ft, yt=torch.from_numpy(test.labels), seed=seed,
                              shots=shots, logit_scale=d.logit_scale)
    return cfg, fitted, f


def tipkit_side(name: str, cfg, fitted, f) -> tuple[float, dict, dict]:
    """(test accuracy, chosen hyperparameters, the settings the official code is given)."""
    if name == "tip_adapter_f":
        acc, extra = pipeline.paper_tip_f(fitted, f.test, f.yt)
        chosen = {k: extra[k] for k in ("beta", "alpha", "best_epoch")}
        return acc, chosen, {"search_scale": list(cfg.search_scale), "search_step": list(cfg.search_step),
                             "init_alpha": cfg.init_alpha, "init_beta": cfg.init_beta, "lr": cfg.lr,
                             "epochs": cfg.epochs, "batch_size": cfg.batch_size}
    m = get_method(name, **pipeline.method_overrides(cfg, name)).fit(fitted.data)
    acc = accuracy(m.predict(f.test), f.yt)
    s = dict(m.params)
    if name == "tip_adapter":
        s.update(init_alpha=cfg.init_alpha, init_beta=cfg.init_beta)
    if name in ("ape", "ape_t"):
        s["feat_num"] = int(m.hyper["feat_num"])  # the count tipkit kept, given to the code as its config's count
    keep = {"tip_adapter": ("beta", "alpha"), "gda": ("alpha",), "ape": ("alpha", "beta", "gamma"),
            "ape_t": ("alpha", "beta", "best_epoch"), "lp_plus_plus": ("best_epoch",),
            "tip_x": ("alpha", "beta", "gamma"), "clap": ("logit_scale",)}[name]
    return acc, {k: m.hyper[k] for k in keep}, s


def official_side(name: str, roots: dict, f, s: dict) -> tuple[float, dict, float]:
    """(official test accuracy, its chosen hyperparameters, the tolerance of the comparison)."""
    flag = REPOS[name][0]
    if name == "clap":  # compared on tipkit's batches (SHIM shuffle); the code's own shuffles show SGD's spread
        acc, chosen = official.clap((roots["clap"], roots["dassl"]), f, s, shuffles="tipkit")
        own = [official.clap((roots["clap"], roots["dassl"]), types.SimpleNamespace(**{**vars(f), "seed": seed}), s,
                             shuffles="own")[0] for seed in CLAP_SEEDS]
        chosen["own_shuffles"] = {str(k): round(a, 2) for k, a in zip(CLAP_SEEDS, own)}
        return acc, chosen, DETERMINISTIC
    acc, chosen = getattr(official, name)(roots[flag], f, s)
    return acc, chosen, DETERMINISTIC


def _fmt(d: dict) -> str:
    return json.dumps({k: (round(v, 4) if isinstance(v, float) else v) for k, v in d.items()}, sort_keys=True)


def merge(rows: list[list], path: Path) -> None:
    """Replace the rows of the same (method, shots) in ``path`` by ``rows``; keep the others; write atomically."""
    old = list(csv.DictReader(path.open())) if path.exists() else []
    new_keys = {(r[0], str(r[4])) for r in rows}
    kept = [[o[h] for h in HEADER] for o in old if (o["method"], o["shots"]) not in new_keys]
    order = list(REPOS)
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(HEADER)
    w.writerows(sorted(kept + rows, key=lambda r: (order.index(r[0]), -int(r[4]))))
    write_text(path, buf.getvalue())
    pending = path.parent / "parity_pending.csv"  # cells listed as not yet measured: drop the ones just measured
    if pending.exists():
        left = [p for p in csv.DictReader(pending.open()) if (p["method"], p["shots"]) not in new_keys]
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(["method", "shots", "why"])
        w.writerows([p["method"], p["shots"], p["why"]] for p in left)
        write_text(pending, buf.getvalue())


def main(argv: "list[str] | None" = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    for flag in ("tip_adapter", "gda", "ape", "lp_plus_plus", "tip_x", "clap", "dassl"):
        ap.add_argument("--" + flag.replace("_", "-"), dest=flag, metavar="CHECKOUT")
    ap.add_argument("--methods", nargs="+", choices=list(REPOS), help="(default: every method whose checkout is given)")
    ap.add_argument("--shots", nargs="+", type=int, default=[16, 4])
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    roots = {k: getattr(args, k) for k in ("tip_adapter", "gda", "ape", "lp_plus_plus", "tip_x", "clap", "dassl")}
    methods = args.methods or [m for m, (flag, _) in REPOS.items() if roots[flag] and (m != "clap" or roots["dassl"])]
    for m in methods:
        if not roots[REPOS[m][0]] or (m == "clap" and not roots["dassl"]):
            ap.error(f"{m} needs --{REPOS[m][0].replace('_', '-')}" + (" and --dassl" if m == "clap" else ""))
    for shots in args.shots:
        cfg, fitted, f = features(shots, args.seed)
        for name in methods:
            t0 = time.perf_counter()
            mine, mine_chosen, settings = tipkit_side(name, cfg, fitted, f)
            t1 = time.perf_counter()
            theirs, their_chosen, tol = official_side(name, roots, f, settings)
            flag, repo = REPOS[name]
            at = commit(roots[flag]) + (f" (Dassl.pytorch@{commit(roots['dassl'])})" if name == "clap" else "")
            rows = [[name, f"{repo}@{at}", cfg.dataset, cfg.backbone, shots, args.seed, CHOICES[name],
                         f"{mine:.2f}", f"{theirs:.2f}", f"{mine - theirs:+.2f}", f"{tol:.2f}", _fmt(mine_chosen),
                         _fmt(their_chosen)]]
            merge(rows, args.out)  # row by row: a later failure keeps what is done
            log.info("%s %d shots: tipkit %.2f, official %.2f (%s vs %s) [%.0fs + %.0fs]", name, shots, mine, theirs,
                     _fmt(mine_chosen), _fmt(their_chosen), t1 - t0, time.perf_counter() - t1)
    log.info("wrote %s (%s, torch %s)", args.out, platform.machine(), torch.__version__)
    return 0


if __name__ == "__main__":
    sys.exit(main())
