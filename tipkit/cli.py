"""``python -m tipkit``: run, predict, sweep (papermill grids), report, data check, cache, standin, bench (scale
benchmark)."""

from __future__ import annotations

import argparse
import logging
import sys

from tipkit.config import FIELDS, RunConfig, load_yaml, make_config
from tipkit.errors import TipkitError

log = logging.getLogger("tipkit")


# What each run option accepts (its default is appended); --methods lists tipkit.labels' names, which a test
# keeps equal to the method registry's, so that --help imports no torch.
RUN_HELP = {
    "dataset": "a registered dataset (fashion-mnist, synthetic, dtd, oxford_pets, imagenet, ...) or folder:PATH "
               "(your own images: PATH/<class>/<image>; folder:PATH?val=F&test=F&seed=N sets the split)",
    "backbone": "an open_clip model name (tipkit-standin-mini, RN50, ViT-B-16, ...)",
    "pretrained": "the backbone's weights: standin (the committed stand-in) | none (random, smoke tests) | PATH "
                  "(a checkpoint file) | tag (an open_clip tag, e.g. openai for RN50)",
    "device": "torch device: cpu | cuda | cuda:N | mps",
    "precision": "fp32 | fp16 | bf16 (autocast on CUDA; the CPU runs fp32)",
    "data_root": "the folder holding the datasets (CoOp's layout); also the base of a relative folder:PATH",
    "out": "the run record's path (default: <results>/records/<run name>.json)",
    "shots": "K: images per class in the cache",
    "seed": "seed of the few-shot draw, augmentation and Tip-Adapter-F's shuffling",
    "augment_views": "augmented views of each few-shot image averaged into the cache keys (paper: 10)",
    "epochs": "Tip-Adapter-F training epochs",
    "batch_size": "images per batch (feature extraction and Tip-Adapter-F)",
    "workers": "DataLoader worker processes for feature extraction (0: in this process)",
    "init_alpha": "alpha while Tip-Adapter-F trains (and before the search)",
    "init_beta": "beta while Tip-Adapter-F trains (and before the search)",
    "lr": "Tip-Adapter-F's AdamW learning rate",
    "search_scale": "BETA ALPHA: the largest beta and alpha of the hyperparameter grid",
    "search_step": "BETA ALPHA: the number of beta and alpha grid points",
}


def _add_run_flags(p: argparse.ArgumentParser) -> None:
    from tipkit.labels import METHOD_LABELS

    p.add_argument("--config", metavar="FILE", help="YAML file of run settings (keys as the flags, with _; "
                                                     "flags override it)")
    d = RunConfig()
    for name in ("dataset", "backbone", "pretrained", "device", "precision", "data_root", "out"):
        p.add_argument(f"--{name.replace('_', '-')}", dest=name, help=f"{RUN_HELP[name]} (default: {getattr(d, name)})")
    for name in ("shots", "seed", "augment_views", "epochs", "batch_size", "workers"):
        p.add_argument(f"--{name.replace('_', '-')}", dest=name, type=int,
                       help=f"{RUN_HELP[name]} (default: {getattr(d, name)})")
    for name in ("init_alpha", "init_beta", "lr"):
        p.add_argument(f"--{name.replace('_', '-')}", dest=name, type=float,
                       help=f"{RUN_HELP[name]} (default: {getattr(d, name)}, or the dataset's)")
    for name in ("search_scale", "search_step"):
        p.add_argument(f"--{name.replace('_', '-')}", dest=name, nargs=2, type=float if name == "search_scale" else int,
                       metavar=("BETA", "ALPHA"), help=f"{RUN_HELP[name]} (default: {getattr(d, name)}, or the dataset's)")
    p.add_argument("--methods", nargs="+", metavar="METHOD",
                   help=f"methods to run, any of: {', '.join(METHOD_LABELS)} (default: {' '.join(d.methods)})")
    p.add_argument("--protocol", choices=["clean", "paper"],
                   help="clean: every choice on min(K, 4) val images per class; paper: the official code's (full val "
                        "split, Tip-Adapter-F's epoch chosen on test) (default: clean)")
    p.add_argument("--extra-test", dest="extra_test", nargs="+", metavar="DATASET",
                   help="also score the fitted methods, unchanged, on these shifted test sets (same classes), "
                        "e.g. fashion-mnist-sketch fashion-mnist-v2, or imagenet_v2 imagenet_sketch")
    p.add_argument("--prompts", dest="prompts", metavar="FILE",
                   help="per-class prompt file in CuPL's JSON format ({class: [sentences]}): builds the text "
                        "classifier from it instead of the dataset's templates")
    p.add_argument("--sampler", choices=["tipkit", "official"],
                   help="few-shot draw: tipkit's per-class numpy draw or the official random.sample (default: tipkit)")
    p.add_argument("--download", action="store_true", default=None, help="fetch missing images where torchvision can")
    p.add_argument("--skip-corrupt", action="store_true", default=None,
                   help="leave unreadable images out (listed in the record) instead of stopping before any work")


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
    from tipkit.apply.predict import main_predict

    return main_predict(args.adapter, args.images, top_k=args.top_k, fmt=args.format, pretrained=args.pretrained,
                        device=args.device, batch_size=args.batch_size, skip_corrupt=args.skip_corrupt, out=args.out)


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
        from tipkit.bench.plan import sweep_plan

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

    return main_check(args.dataset, args.data_root, images=not args.no_images, shots=args.shots,
                      protocol=args.protocol, verbose=args.list_files or args.verbose)


def cmd_standin(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from tipkit.models.standin import card, checkpoint_path, size_name, train

    name = size_name(args.size)
    if args.action == "train":
        recipe = train.RECIPES[args.size]
        recipe = replace(recipe, steps=args.steps) if args.steps else recipe
        out = args.out or checkpoint_path(name)
        summary = train.train(recipe, out=out, size=args.size)
        if args.out is None:  # the committed checkpoint: its card records the training
            card.save_training(summary, name)
        print(f"wrote {out}")
    else:
        from tipkit.experiments.pipeline import run

        print(card.write_card(run=run, name=name))
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    from tipkit.bench.runner import run_bench

    path = run_bench(args.shapes, args.methods, args.protocols, device=args.device, precision=args.precision,
                     timeout=args.timeout, quick=args.quick, folder=args.out, budget=args.budget)
    from tipkit.bench.runner import read_results

    df = read_results(path)
    print(df.groupby("status").size().to_string())
    print(f"results: {path}")
    return 0


def cmd_classroom(args: argparse.Namespace) -> int:
    from tipkit.experiments.classroom import build_classroom

    written = build_classroom(args.out)
    for who, files in written.items():
        for f in files:
            print(f"{who}: {f}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    from tipkit import paths

    ap = argparse.ArgumentParser(prog="python -m tipkit", description=__doc__)
    ap.add_argument("-v", "--verbose", action="store_true", help="debug messages")
    sub = ap.add_subparsers(dest="command", required=True)
    p = sub.add_parser("run", help="one run: zero-shot, Tip-Adapter, Tip-Adapter-F; writes a JSON record")
    _add_run_flags(p)
    p.add_argument("--save-adapter", metavar="FILE", help="also write the fitted adapter to FILE (one portable file)")
    p.add_argument("--adapter-method", metavar="METHOD", help="method to save: tip_adapter_f | tip_adapter | zero_shot | "
                   "zero_shot_single (default: tip_adapter_f, else tip_adapter, else zero_shot)")
    p.set_defaults(func=cmd_run)
    p = sub.add_parser("predict", help="classify images with a saved adapter (tipkit run --save-adapter FILE)")
    p.add_argument("--adapter", required=True, metavar="FILE", help="an adapter file written by --save-adapter")
    p.add_argument("images", nargs="+", metavar="IMAGE_OR_FOLDER",
                   help="image files or folders (a folder of <class>/<image> also gets an accuracy line)")
    p.add_argument("--top-k", type=int, default=None, metavar="K",
                   help="classes shown per image, at most the adapter's (default: min(3, the adapter's classes))")
    fmt = p.add_mutually_exclusive_group()
    fmt.add_argument("--json", dest="format", action="store_const", const="json", help="print JSON")
    fmt.add_argument("--csv", dest="format", action="store_const", const="csv", help="print CSV")
    p.set_defaults(format=None)
    p.add_argument("--out", metavar="FILE", help="write the table/JSON/CSV to FILE (atomically; format from --json/"
                                                 "--csv, else FILE's extension .json/.csv, else a table)")
    p.add_argument("--pretrained", help="the adapter's backbone weights: PATH (a checkpoint) | tag | standin | none; "
                                        "must be the weights it was fitted with (default: as saved; sha256-checked)")
    p.add_argument("--device", default="cpu", help="torch device: cpu | cuda | cuda:N | mps (default: cpu)")
    p.add_argument("--batch-size", type=int, help="images per batch (default: the run's)")
    p.add_argument("--skip-corrupt", action="store_true", help="leave unreadable images out instead of stopping")
    p.set_defaults(func=cmd_predict)
    p = sub.add_parser("sweep", help="run a grid of notebook executions described in a YAML file")
    p.add_argument("config", help="sweep YAML (see configs/demo.yaml)")
    p.add_argument("--executor", choices=["local", "slurm", "submitit-local"],
                   help="where cells run: local processes, Slurm, or submitit's local executor (default: the file's, "
                        "else local)")
    p.add_argument("--jobs", type=int, help="cells at once (local processes or Slurm array parallelism)")
    p.add_argument("--partition", help="Slurm partition name")
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
    p.add_argument("--records", default=None, metavar="FOLDER", help="records folder (default: <results>/records)")
    p.add_argument("--out", default=str(paths.BOOK_DATA), metavar="FOLDER",
                   help="where the aggregated CSV tables go (default: %(default)s)")
    p.set_defaults(func=cmd_report)
    p = sub.add_parser("cache", help="the feature cache: info, verify (exit 1 if damaged), compact, prune")
    p.add_argument("action", choices=["info", "verify", "compact", "prune"],
                   help="info: where the cache and records are, and each store; verify: read every shard back; "
                        "compact: merge shards; prune: list (or --apply: remove) what can go")
    p.add_argument("--older-than", metavar="DATE", help="prune: also stores last written before DATE (2025-01-31)")
    p.add_argument("--data-root", help="prune: the folder holding the datasets, to check their images")
    p.add_argument("--apply", action="store_true", help="prune: remove (default: only list what would go)")
    p.set_defaults(func=cmd_cache)
    p = sub.add_parser("data", help="check a dataset on disk against the expected split sizes")
    d = p.add_subparsers(dest="action", required=True).add_parser("check", help="count images, find bad files")
    d.add_argument("--dataset", required=True, help="a paper dataset, or folder:PATH (your own image folder)")
    d.add_argument("--root", dest="data_root", help="the folder holding the datasets (CoOp's layout)")
    d.add_argument("--no-images", action="store_true", help="count files only; do not open every image")
    d.add_argument("--shots", type=int, metavar="K",
                   help="folder:PATH: also report classes with fewer than K training images (or, protocol clean, "
                        "fewer than min(K, 4) validation images) for a run with --shots K")
    d.add_argument("--protocol", choices=["clean", "paper"], default="clean",
                   help="folder:PATH with --shots: the protocol of that run (default: clean)")
    d.add_argument("-v", "--verbose", dest="list_files", action="store_true",
                   help="folder:PATH: list every ignored file (default: count them)")
    d.set_defaults(func=cmd_data)
    p = sub.add_parser("standin", help="train the stand-in mini-CLIP or write its model card")
    p.add_argument("action", choices=["train", "card"], help="train: retrain the stand-in; card: re-measure it and "
                                                              "rewrite its model card")
    p.add_argument("--size", choices=["tiny", "small", "base"], default="base",
                   help="which stand-in: base (tipkit-standin-mini, the default backbone), small or tiny")
    p.add_argument("--steps", type=int, default=None, help="optimizer steps (default: the size's recipe)")
    p.add_argument("--out", default=None, metavar="FILE",
                   help="where the weights go (default: the size's committed checkpoint)")
    p.set_defaults(func=cmd_standin)
    p = sub.add_parser("bench", help="the scale benchmark: every method at the paper's shapes, on synthetic features")
    p.add_argument("--quick", action="store_true", help="small shapes only, no encoder rows (seconds; for tests)")
    p.add_argument("--shapes", nargs="+", help="shape names (default: every paper dataset's; --quick: tiny small)")
    p.add_argument("--methods", nargs="+", help="registry methods and 'encode' (default: all but CoOp, + encode)")
    p.add_argument("--protocols", nargs="+", default=["clean", "paper"], help="clean and/or paper (default: clean paper)")
    p.add_argument("--device", default="cpu", help="torch device: cpu | cuda | cuda:N | mps (default: cpu)")
    p.add_argument("--precision", default="fp32", help="fp32, or fp16/bf16 autocast on CUDA (default: fp32)")
    p.add_argument("--timeout", type=float, default=600.0, help="seconds per method and shape (default: 600)")
    p.add_argument("--budget", type=float, help="seconds for the whole run: no task starts after it (default: none)")
    p.add_argument("--out", help="results folder (default: benchmarks/results)")
    p.set_defaults(func=cmd_bench)
    p = sub.add_parser("classroom", help="write the student (solutions removed) and teacher notebooks")
    p.add_argument("--out", default=str(paths.REPO / "_build" / "classroom"), metavar="FOLDER",
                   help="where the student/ and teacher/ notebooks go (default: _build/classroom)")
    p.set_defaults(func=cmd_classroom)
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
    """The command line: 0 on success, 2 with one ``tipkit: error:`` line for bad input, 130 on Ctrl-C (at any
    moment, the heavy imports of a subcommand included)."""
    try:
        args = build_parser().parse_args(argv)
        setup_logging(args.verbose)
        return args.func(args)
    except TipkitError as e:
        _close_bars()
        print(f"tipkit: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        try:
            _close_bars()
        except Exception:  # noqa: BLE001 (tqdm half-imported when Ctrl-C came during the imports)
            pass
        print("tipkit: interrupted", file=sys.stderr)
        return 130
