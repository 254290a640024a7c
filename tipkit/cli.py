"""``python -m tipkit``: run, predict, sweep (papermill grids), report, data check, cache, standin, bench (scale
benchmark)."""

from __future__ import annotations

import argparse
import logging
import sys

from tipkit.config import FIELDS, RunConfig, load_yaml, make_config
from tipkit.errors import TipkitError

log = logging.getLogger("tipkit")


def _add_run_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", help="YAML file of run settings (flags override it)")
    d = RunConfig()
    for name in ("dataset", "backbone", "pretrained", "device", "precision", "data_root", "out"):
        p.add_argument(f"--{name.replace('_', '-')}", dest=name, help=f"(default: {getattr(d, name)})")
    for name in ("shots", "seed", "augment_views", "epochs", "batch_size", "workers"):
        p.add_argument(f"--{name.replace('_', '-')}", dest=name, type=int, help=f"(default: {getattr(d, name)})")
    for name in ("init_alpha", "init_beta", "lr"):
        p.add_argument(f"--{name.replace('_', '-')}", dest=name, type=float, help=f"(default: {getattr(d, name)})")
    for name in ("search_scale", "search_step"):
        p.add_argument(f"--{name.replace('_', '-')}", dest=name, nargs=2, type=float if name == "search_scale" else int,
                       metavar=("BETA", "ALPHA"), help=f"(default: {getattr(d, name)})")
    p.add_argument("--prompts", dest="prompts", metavar="FILE",
                   help="per-class prompt file in CuPL's JSON format ({class: [sentences]}); builds the text classifier")
    p.add_argument("--methods", nargs="+", help=f"methods to run (default: {' '.join(d.methods)})")
    p.add_argument("--protocol", choices=["clean", "paper"], help="(default: clean)")
    p.add_argument("--sampler", choices=["tipkit", "official"], help="few-shot draw (default: tipkit)")
    p.add_argument("--download", action="store_true", default=None, help="fetch missing images where torchvision can")
    p.add_argument("--skip-corrupt", action="store_true", default=None,
                   help="skip unreadable images (counted in the record) instead of stopping")


def config_from_args(args: argparse.Namespace) -> RunConfig:
    values = load_yaml(args.config) if args.config else {}
    values.update({k: getattr(args, k) for k in FIELDS if getattr(args, k, None) is not None})
    return make_config(**values)


def cmd_run(args: argparse.Namespace) -> int:
    from tipkit.experiments.pipeline import run, validate
    from tipkit.experiments.report import write_record
    from tipkit.labels import METHOD_LABELS

    cfg = config_from_args(args)
    validate(cfg)
    record = run(cfg, save_adapter=args.save_adapter, adapter_method=args.adapter_method)
    path = write_record(record)
    print(f"{'method':<16}{'val top-1':>10}{'test top-1':>11}")
    for m, acc in record["metrics"]["test"].items():
        print(f"{METHOD_LABELS[m]:<16}{record['metrics']['val'][m]:>10.2f}{acc:>11.2f}")
    print(f"record: {path}")
    if "adapter" in record:
        print(f"adapter: {record['adapter']['path']} ({METHOD_LABELS[record['adapter']['method']]})")
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    from tipkit.experiments.predict import main_predict

    return main_predict(args.adapter, args.images, top_k=args.top_k, fmt=args.format, pretrained=args.pretrained,
                        device=args.device, batch_size=args.batch_size, skip_corrupt=args.skip_corrupt)


def _parse_set(text: str) -> tuple[str, object]:
    """``KEY=VALUE`` with VALUE read as YAML (numbers, lists, null)."""
    import yaml

    if "=" not in text:
        raise TipkitError(f"--set expects KEY=VALUE, got {text!r}")
    key, value = text.split("=", 1)
    return key.strip(), yaml.safe_load(value)


def cmd_sweep(args: argparse.Namespace) -> int:
    from tipkit.experiments.sweep import load_sweep, run_sweep

    opts = {"kind": args.executor, "jobs": args.jobs, "partition": args.partition, "gpus": args.gpus,
            "time_min": args.time_min, "cpus": args.cpus, "mem_gb": args.mem_gb}
    sweep = load_sweep(args.config, opts, set_params=dict(_parse_set(v) for v in args.set or []))
    if args.plan:
        from tipkit.experiments.plan import sweep_plan

        print(sweep_plan(sweep, force=args.force))
        return 0
    failed = run_sweep(sweep, force=args.force, dry_run=args.dry_run)
    if failed:
        print(f"{len(failed)} of {len(sweep.cells)} cells failed:", file=sys.stderr)
        for c in failed:
            print(f"  {c.name}: {c.error}\n    executed notebook: {c.executed}", file=sys.stderr)
        return 1
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from tipkit.experiments.report import aggregate

    for p in aggregate(args.records, args.out):
        print(p)
    return 0


def cmd_cache(args: argparse.Namespace) -> int:
    from tipkit.models.cache_admin import command

    lines, rc = command(args.action, older_than=args.older_than, data_root=args.data_root, apply=args.apply)
    print("\n".join(lines))
    return rc


def cmd_data(args: argparse.Namespace) -> int:
    from tipkit.data.check import main_check

    return main_check(args.dataset, args.data_root, images=not args.no_images)


def cmd_standin(args: argparse.Namespace) -> int:
    from tipkit.experiments import standin_card as card
    from tipkit.models.standin import train

    if args.action == "train":
        recipe = train.Recipe(**({"steps": args.steps} if args.steps else {}))
        summary = train.train(recipe, out=args.out)
        card.save_training(summary)
        print(f"wrote {args.out}")
    else:
        print(card.write_card())
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    from tipkit.experiments.scale import run_bench

    path = run_bench(args.shapes, args.methods, args.protocols, device=args.device, precision=args.precision,
                     timeout=args.timeout, quick=args.quick, folder=args.out, budget=args.budget)
    from tipkit.experiments.scale import read_results

    df = read_results(path)
    print(df.groupby("status").size().to_string())
    print(f"results: {path}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    from tipkit import paths

    ap = argparse.ArgumentParser(prog="python -m tipkit", description=__doc__)
    ap.add_argument("-v", "--verbose", action="store_true")
    sub = ap.add_subparsers(dest="command", required=True)
    p = sub.add_parser("run", help="one run: zero-shot, Tip-Adapter, Tip-Adapter-F; writes a JSON record")
    _add_run_flags(p)
    p.add_argument("--save-adapter", metavar="FILE", help="also write the fitted adapter to FILE (one portable file)")
    p.add_argument("--adapter-method", help="method to save (default: tip_adapter_f, else tip_adapter, else zero_shot)")
    p.set_defaults(func=cmd_run)
    p = sub.add_parser("predict", help="classify images with a saved adapter (tipkit run --save-adapter FILE)")
    p.add_argument("--adapter", required=True, metavar="FILE", help="an adapter file written by --save-adapter")
    p.add_argument("images", nargs="+", metavar="IMAGE_OR_FOLDER",
                   help="image files or folders (a folder of <class>/<image> also gets an accuracy line)")
    p.add_argument("--top-k", type=int, default=3, help="classes shown per image (default: 3)")
    fmt = p.add_mutually_exclusive_group()
    fmt.add_argument("--json", dest="format", action="store_const", const="json", help="print JSON")
    fmt.add_argument("--csv", dest="format", action="store_const", const="csv", help="print CSV")
    p.set_defaults(format="table")
    p.add_argument("--pretrained", help="where the adapter's backbone weights are (default: as saved; sha256-checked)")
    p.add_argument("--device", default="cpu", help="torch device (default: cpu)")
    p.add_argument("--batch-size", type=int, help="images per batch (default: the run's)")
    p.add_argument("--skip-corrupt", action="store_true", help="leave unreadable images out instead of stopping")
    p.set_defaults(func=cmd_predict)
    p = sub.add_parser("sweep", help="run a grid of notebook executions described in a YAML file")
    p.add_argument("config", help="sweep YAML (see configs/demo.yaml)")
    p.add_argument("--executor", choices=["local", "slurm", "submitit-local"], help="(default: the file's, else local)")
    p.add_argument("--jobs", type=int, help="cells at once (local processes or Slurm array parallelism)")
    p.add_argument("--partition", help="Slurm partition")
    p.add_argument("--gpus", type=int, help="GPUs per Slurm job (default 1)")
    p.add_argument("--time-min", type=int, help="Slurm time limit per cell, minutes (default 60)")
    p.add_argument("--cpus", type=int, help="CPUs per Slurm job (default 8)")
    p.add_argument("--mem-gb", type=int, help="memory per Slurm job, GB (default 32)")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a fixed parameter of every cell")
    p.add_argument("--force", action="store_true", help="re-run cells that are done")
    p.add_argument("--dry-run", action="store_true", help="list what would run, run nothing")
    p.add_argument("--plan", action="store_true",
                   help="print the cells, the images to encode, the feature store's size and the estimated time")
    p.set_defaults(func=cmd_sweep)
    p = sub.add_parser("report", help="aggregate run records into the book's CSV tables")
    p.add_argument("--records", default=None, help="records folder (default: <results>/records)")
    p.add_argument("--out", default=str(paths.BOOK_DATA))
    p.set_defaults(func=cmd_report)
    p = sub.add_parser("cache", help="the feature cache: info, verify (exit 1 if damaged), compact, prune")
    p.add_argument("action", choices=["info", "verify", "compact", "prune"])
    p.add_argument("--older-than", metavar="DATE", help="prune: also stores last written before DATE (2025-01-31)")
    p.add_argument("--data-root", help="prune: the folder holding the datasets, to check their images")
    p.add_argument("--apply", action="store_true", help="prune: remove (default: only list what would go)")
    p.set_defaults(func=cmd_cache)
    p = sub.add_parser("data", help="check a dataset on disk against the expected split sizes")
    d = p.add_subparsers(dest="action", required=True).add_parser("check", help="count images, find bad files")
    d.add_argument("--dataset", required=True, help="a paper dataset, or folder:PATH (your own image folder)")
    d.add_argument("--root", dest="data_root", help="the folder holding the datasets (CoOp's layout)")
    d.add_argument("--no-images", action="store_true", help="count files only; do not open every image")
    d.set_defaults(func=cmd_data)
    p = sub.add_parser("standin", help="train the stand-in mini-CLIP or write its model card")
    p.add_argument("action", choices=["train", "card"])
    p.add_argument("--steps", type=int, default=None)
    p.add_argument("--out", default=str(paths.STANDIN_CHECKPOINT))
    p.set_defaults(func=cmd_standin)
    p = sub.add_parser("bench", help="the scale benchmark: every method at the paper's shapes, on synthetic features")
    p.add_argument("--quick", action="store_true", help="small shapes only, no encoder rows (seconds; for tests)")
    p.add_argument("--shapes", nargs="+", help="shape names (default: every paper dataset's; --quick: tiny small)")
    p.add_argument("--methods", nargs="+", help="registry methods and 'encode' (default: all but CoOp, + encode)")
    p.add_argument("--protocols", nargs="+", default=["clean", "paper"], help="(default: clean paper)")
    p.add_argument("--device", default="cpu", help="torch device (default: cpu)")
    p.add_argument("--precision", default="fp32", help="fp32, or fp16/bf16 autocast on CUDA (default: fp32)")
    p.add_argument("--timeout", type=float, default=600.0, help="seconds per method and shape (default: 600)")
    p.add_argument("--budget", type=float, help="seconds for the whole run: no task starts after it (default: none)")
    p.add_argument("--out", help="results folder (default: benchmarks/results)")
    p.set_defaults(func=cmd_bench)
    return ap


def setup_logging(verbose: bool = False) -> None:
    """tipkit's own messages at INFO (DEBUG with -v); third-party chatter (open_clip logs to root) at WARNING."""
    logging.basicConfig(level=logging.DEBUG if verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("tipkit").setLevel(logging.DEBUG if verbose else logging.INFO)


def _close_bars() -> None:
    """Close the progress bars an error left open, so that the error starts a line of its own."""
    from tqdm.auto import tqdm

    for bar in list(getattr(tqdm, "_instances", ())):
        bar.close()


def main(argv: "list[str] | None" = None) -> int:
    args = build_parser().parse_args(argv)
    setup_logging(args.verbose)
    try:
        return args.func(args)
    except TipkitError as e:
        _close_bars()
        print(f"tipkit: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("tipkit: interrupted", file=sys.stderr)
        return 130
