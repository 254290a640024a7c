"""The authors' own functions, imported from local checkouts at run time and fed tipkit's cached features.

Nothing of the authors' code is copied here: each runner puts one checkout on ``sys.path``, imports the module
that holds the method (``main.py``, ``tipx.py``, ``methods/linear_probe_p2.py``, ``trainers/adapters.py``) and
calls the function that the repository's own ``main`` calls, with the arguments ``main`` would pass. Printed
results are read back from the captured output where the function returns nothing. The shims, each named where
it is applied:

- ``SHIM cuda``: ``Tensor.cuda`` / ``Module.cuda`` are no-ops (the CPU stands in for the GPU);
- ``SHIM half``: ``Tensor.half`` / ``Module.half`` are no-ops for codes that cast to fp16 by hand (APE-T, Tip-X;
  LP++'s ``get_one_hot`` asks for ``dtype=torch.float16``, so its one-hots are made in fp32 the same way):
  on CUDA they would run in fp16, on the CPU everything stays fp32, as tipkit computes;
- ``SHIM encoder``: the image encoder is replaced by tipkit's cached views: a "loader" whose images are already
  features and a model whose ``encode_image`` is the identity (each pass over the loader gives the next
  augmented view, in the order tipkit's own training draws them);
- ``SHIM stubs``: third-party modules that the called code paths import but never use (``cv2``, ``gdown``,
  ``yacs``, ``wilds``, tensorboard) are empty stand-ins when they are not installed, and ``pkg_resources``
  (gone from recent setuptools) is a stand-in holding the real ``packaging``, all that OpenAI's ``clip.py`` reads;
- ``SHIM cache dir``: codes that cache to ``./caches/<dataset>`` run in a fresh temporary directory, so nothing
  cached by one run (APE's channel criterion) is read by another;
- ``SHIM numpy 2``: ``float(a)`` of a one-element 1-D array (the codes' ``cls_acc``), an error since NumPy 2,
  takes the element as NumPy 1 did: the checkout's modules see a ``float`` that accepts it;
- ``SHIM torch 2``: Dassl's warm-up schedulers pass ``verbose`` to ``LRScheduler.__init__``, which recent
  PyTorch no longer takes; it is accepted and ignored;
- ``SHIM init``: LP++'s linear layer draws its bias from torch's global generator, tipkit from its own seeded one;
  the runner gives the code tipkit's draw (the same law), so both start from the same point;
- ``SHIM torch.load``: ``weights_only=False`` where the code re-loads a whole module it saved (PyTorch >= 2.6);
- ``SHIM shuffle`` (CLAP, by default): the code shuffles its training features with
  ``np.random.rand(n).argsort()`` from NumPy's global generator, tipkit with ``randperm`` of its own seeded torch
  generator; ``np.random.rand`` is given values whose ``argsort`` is tipkit's permutation of that epoch, so both
  sides train on the same batches (``shuffles="own"`` runs the code's own draws after ``np.random.seed``);
- ``SHIM APE-T config``: APE-T at HEAD reads ``cfg['feat_num']`` (absent from every shipped config: KeyError) and
  selects ``training_free_feat_num`` channels for a residual of ``training_feat_num`` (a crash when they differ);
  the runner sets both to the training count, the paper's formula.
"""

from __future__ import annotations

import builtins
import contextlib
import importlib
import importlib.abc
import importlib.util
import io
import os
import re
import sys
import tempfile
import types
from typing import Any, Iterator

import torch

_ROOTS: list[str] = []  # the checkouts being imported from
LOCAL = ("clip", "utils", "datasets", "main", "main_few_shots", "methods", "tipx", "trainers", "dassl")
STUBS = ("cv2", "gdown", "yacs", "wilds")


class _Stub(types.ModuleType):
    """SHIM stubs: any attribute is an inert class, so ``from x import y`` succeeds and is never called."""

    def __getattr__(self, key: str) -> Any:
        if key.startswith("__"):
            raise AttributeError(key)
        return type(key, (), {"__init__": lambda self, *a, **k: None})


class _StubFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def find_spec(self, name, path, target=None):  # appended last: only what is not installed is stubbed
        if any(name == s or name.startswith(s + ".") for s in STUBS):
            return importlib.util.spec_from_loader(name, self, is_package=True)
        return None

    def create_module(self, spec):
        return _Stub(spec.name)

    def exec_module(self, module):
        module.__path__ = []


@contextlib.contextmanager
def checkout(*roots: str) -> Iterator[None]:
    """Import from ``roots`` (first wins), with the shims on, and forget the imported modules afterwards."""
    saved_path, cwd = list(sys.path), os.getcwd()
    patches = [(torch.Tensor, "cuda"), (torch.nn.Module, "cuda")]
    saved = {p: getattr(*p) for p in patches}
    finder = _StubFinder()
    sys.meta_path.append(finder)
    try:
        importlib.import_module("tensorboard")
    except ImportError:  # SHIM stubs: Dassl's writer is never opened here
        sys.modules["torch.utils.tensorboard"] = _Stub("torch.utils.tensorboard")
    try:
        importlib.import_module("pkg_resources")
    except ImportError:  # SHIM stubs: OpenAI's clip.py reads only pkg_resources.packaging (setuptools >= 81 has none)
        sys.modules["pkg_resources"] = types.ModuleType("pkg_resources")
        importlib.import_module("packaging.version")
        sys.modules["pkg_resources"].packaging = importlib.import_module("packaging")
    torch.Tensor.cuda = lambda self, *a, **k: self  # SHIM cuda
    torch.nn.Module.cuda = lambda self, *a, **k: self  # SHIM cuda
    sys.path[:0] = list(roots)
    _ROOTS[:] = roots
    try:
        with tempfile.TemporaryDirectory() as tmp:
            os.chdir(tmp)  # SHIM cache dir
            yield
    finally:
        os.chdir(cwd)
        sys.path[:] = saved_path
        sys.meta_path.remove(finder)
        for (obj, name), fn in saved.items():
            setattr(obj, name, fn)
        for mod in list(sys.modules):
            if mod.split(".")[0] in LOCAL + STUBS + ("pkg_resources",) or mod == "torch.utils.tensorboard":
                del sys.modules[mod]


def _float(x: Any = 0.0) -> float:
    """SHIM numpy 2: ``float()`` that also takes a one-element array, as NumPy 1 did."""
    import numpy as np

    if isinstance(x, np.ndarray) and x.size == 1:
        x = x.reshape(())
    return builtins.float(x)


def load(name: str) -> types.ModuleType:
    """Import ``name`` from the checkout on ``sys.path`` and give every module it brought in ``_float``."""
    module = importlib.import_module(name)
    roots = [os.path.join(os.path.abspath(r), "") for r in _ROOTS]
    for mod in list(sys.modules.values()):
        if any(str(getattr(mod, "__file__", "") or "").startswith(r) for r in roots):
            mod.float = _float  # SHIM numpy 2
    return module


@contextlib.contextmanager
def no_half() -> Iterator[None]:
    """SHIM half: fp16 casts by hand become no-ops (fp32 on the CPU)."""
    saved = torch.Tensor.half, torch.nn.Module.half, torch.zeros
    torch.Tensor.half = lambda self, *a, **k: self
    torch.nn.Module.half = lambda self, *a, **k: self
    torch.zeros = lambda *a, **k: saved[2](*a, **{**k, "dtype": torch.float32 if k.get("dtype") is torch.float16
                                                   else k.get("dtype")})
    try:
        yield
    finally:
        torch.Tensor.half, torch.nn.Module.half, torch.zeros = saved


@contextlib.contextmanager
def scheduler_verbose() -> Iterator[None]:
    """SHIM torch 2: Dassl's schedulers pass ``verbose`` positionally, an argument recent PyTorch removed."""
    cls = torch.optim.lr_scheduler.LRScheduler
    saved = cls.__init__
    cls.__init__ = lambda self, optimizer, last_epoch=-1, verbose=None: saved(self, optimizer, last_epoch)
    try:
        yield
    finally:
        cls.__init__ = saved


@contextlib.contextmanager
def tipkit_bias(seed: int) -> Iterator[None]:
    """SHIM init: LP++'s ``nn.Linear`` bias, the one random draw the two codes do not share, drawn as tipkit draws
    it (uniform in ±1/√D from a generator seeded with the run's seed; the code draws the same law from torch's
    global generator). Its weight is overwritten by the class sums in both."""
    saved = torch.nn.Linear.reset_parameters

    def reset(self) -> None:
        saved(self)
        if self.bias is not None:
            gen = torch.Generator().manual_seed(seed)
            with torch.no_grad():
                self.bias.copy_((torch.rand(self.out_features, generator=gen) * 2 - 1) / self.in_features ** 0.5)

    torch.nn.Linear.reset_parameters = reset
    try:
        yield
    finally:
        torch.nn.Linear.reset_parameters = saved


@contextlib.contextmanager
def full_torch_load() -> Iterator[None]:
    """SHIM torch.load: the code reloads a module it saved itself (weights_only=False, PyTorch >= 2.6)."""
    saved = torch.load
    torch.load = lambda *a, **k: saved(*a, **{**k, "weights_only": False})
    try:
        yield
    finally:
        torch.load = saved


def captured(fn, *args, **kwargs) -> tuple[Any, str]:
    """Call ``fn`` with stdout captured; returns its result and the text it printed."""
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        out = fn(*args, **kwargs)
    return out, buf.getvalue()


def last(pattern: str, text: str) -> tuple[str, ...]:
    found = re.findall(pattern, text)
    if not found:
        raise RuntimeError(f"the official code did not print {pattern!r}")
    return found[-1] if isinstance(found[-1], tuple) else (found[-1],)


class Encoder:
    """SHIM encoder: the model, whose images are already features."""

    dtype = torch.float32

    def encode_image(self, x: torch.Tensor) -> torch.Tensor:
        return x.clone()


class ViewLoader:
    """SHIM encoder: the data loader. Pass ``e`` over it yields view ``e mod A`` of the raw features ``[A, K, D]``
    in batches; ``shuffle`` draws the order as tipkit's training does (``randperm`` of a generator seeded once)."""

    def __init__(self, views: torch.Tensor, labels: torch.Tensor, batch_size: int = 256, shuffle: bool = False,
                 seed: int = 1) -> None:
        self.views, self.labels, self.batch_size, self.shuffle = views, labels, batch_size, shuffle
        self.gen, self.passes = torch.Generator().manual_seed(seed), 0

    def __len__(self) -> int:
        return -(-len(self.labels) // self.batch_size)

    def __iter__(self):
        feats = self.views[self.passes % self.views.shape[0]]
        self.passes += 1
        n = len(self.labels)
        order = torch.randperm(n, generator=self.gen) if self.shuffle else torch.arange(n)
        for s in range(0, n, self.batch_size):
            b = order[s:s + self.batch_size]
            yield feats[b], self.labels[b]


# ------------------------------------------------------------------------------------------------ the runners
# Each takes the checkout root(s), tipkit's features ``f`` (a namespace: views [A, K, D] raw, labels [K], keys
# [K, D], W [C, D], raw_W [C, D], val [Nv, D], yv, val_lpp/yv_lpp (LP++'s own split), test [Nt, D], yt, seed,
# shots, logit_scale) and the settings
# tipkit used, and returns (official test accuracy, the official code's chosen hyperparameters).

def _one_hot(f) -> torch.Tensor:
    return torch.nn.functional.one_hot(f.labels, f.W.shape[0]).float()  # the code's .half() one-hot; 0/1 exact


def tip_adapter(root: str, f, s: dict) -> tuple[float, dict]:
    with checkout(root):
        main = load("main")
        cfg = {"search_hp": True, "search_scale": s["search_scale"], "search_step": s["search_step"],
               "init_beta": s["init_beta"], "init_alpha": s["init_alpha"]}
        _, out = captured(main.run_tip_adapter, cfg, f.keys.T, _one_hot(f), f.val, f.yv, f.test, f.yt, f.W.T)
    beta, alpha = last(r"New best setting, beta: (\d+\.\d+), alpha: (\d+\.\d+)", out)
    return float(last(r"Tip-Adapter's test accuracy: (\d+\.\d+)", out)[0]), {"beta": beta, "alpha": alpha}


def tip_adapter_f(root: str, f, s: dict) -> tuple[float, dict]:
    with checkout(root):
        main = load("main")
        cfg = {"search_hp": True, "search_scale": s["search_scale"], "search_step": s["search_step"],
               "init_beta": s["init_beta"], "init_alpha": s["init_alpha"], "lr": s["lr"], "train_epoch": s["epochs"],
               "shots": f.shots, "cache_dir": os.getcwd()}
        loader = ViewLoader(f.views, f.labels, s["batch_size"], shuffle=True, seed=f.seed)
        _, out = captured(main.run_tip_adapter_F, cfg, f.keys.T.clone(), _one_hot(f), f.val, f.yv, f.test, f.yt, f.W.T,
                          Encoder(), loader)
    beta, alpha = last(r"New best setting, beta: (\d+\.\d+), alpha: (\d+\.\d+)", out)
    epoch = int(last(r"best test accuracy: [\d.]+, at epoch: (\d+)", out)[0]) + 1  # 0-based in the code
    return float(last(r"Tip-Adapter-F's test accuracy: (\d+\.\d+)", out)[0]), {"beta": beta, "alpha": alpha,
                                                                                "best_epoch": epoch}


def gda(root: str, f, s: dict) -> tuple[float, dict]:
    with checkout(root):
        main = load("main_few_shots")
        main.val_features, main.val_labels, main.test_features, main.test_labels = f.val, f.yv, f.test, f.yt
        acc, out = captured(main.run, {"augment_epoch": f.views.shape[0]}, ViewLoader(f.views, f.labels), f.W.T,
                            Encoder())
    return float(acc), {"alpha": float(last(r"best_val_alpha: ([\d.e+-]+)", out)[0])}


def _ape_cfg(f, s: dict) -> dict:
    return {"shots": f.shots, "dataset": "parity", "backbone": "standin", "search_scale": s["search_scale"],
            "search_step": s["search_step"], "init_beta": 1.0, "init_alpha": 1.0, "init_gamma": 0.1}


def ape(root: str, f, s: dict) -> tuple[float, dict]:
    with checkout(root):
        os.makedirs("caches/parity")
        main = load("main")
        cfg = {**_ape_cfg(f, s), "w_training_free": s["w"], "training_free_feat_num": s["feat_num"]}
        _, out = captured(main.APE, cfg, f.keys.T, _one_hot(f), f.val, f.yv, f.test, f.yt, f.W.T)
    alpha, beta, gamma = last(r"New best setting, alpha: (\d+\.\d+), beta: (\d+\.\d+), gamma: (\d+\.\d+)", out)
    return float(last(r"APE's test accuracy: (\d+\.\d+)", out)[0]), {"alpha": alpha, "beta": beta, "gamma": gamma}


def ape_t(root: str, f, s: dict) -> tuple[float, dict]:
    with checkout(root), no_half(), full_torch_load():
        os.makedirs("caches/parity")
        main = load("main")
        cfg = {**_ape_cfg(f, s), "w_training": s["w"], "training_feat_num": s["feat_num"],
               "training_free_feat_num": s["feat_num"], "feat_num": s["feat_num"],  # SHIM APE-T config
               "init_beta": s["init_beta"], "init_alpha": s["init_alpha"], "lr": s["lr"], "eps": s["eps"],
               "train_epoch": s["epochs"], "cache_dir": "caches/parity"}
        # main.py runs APE first: its text-and-cache channel similarity is cached in caches/<dataset>/ and APE_T's
        # cal_criterion (whose default is text only) reads it back; the runner keeps that order
        captured(main.cal_criterion, {**cfg, "w": s["w"]}, f.W.T, f.keys, only_use_txt=False)
        loader = ViewLoader(f.views, f.labels, s["batch_size"], shuffle=True, seed=f.seed)
        _, out = captured(main.APE_T, cfg, f.keys.T.clone(), _one_hot(f), f.val, f.yv, f.test, f.yt, f.W.T,
                          Encoder(), loader)
    alpha, beta = last(r"New best setting, alpha: (\d+\.\d+), beta: (\d+\.\d+)", out)
    epoch = int(last(r"best test accuracy: [\d.]+, at epoch: (\d+)", out)[0]) + 1  # 0-based in the code
    return float(last(r"APE-T's test accuracy: (\d+\.\d+)", out)[0]), {"alpha": alpha, "beta": beta, "best_epoch": epoch}


def lp_plus_plus(root: str, f, s: dict) -> tuple[float, dict]:
    with checkout(root), no_half(), tipkit_bias(f.seed):  # its get_one_hot builds fp16 one-hots
        lpp = load("methods.linear_probe_p2")
        method = lpp.LinearProbe_P2({"train_epoch": s["epochs"], "shots": f.shots, "dataset": "parity",
                                     "output_dir": os.getcwd()})
        train = ViewLoader(f.views[:1], f.labels)  # one pass of the augmented loader: the first view
        val = ViewLoader(f.val_lpp[None], f.yv_lpp, batch_size=len(f.yv_lpp))
        (_, acc), out = captured(method.forward, train, val, f.test, f.yt, f.W.T, Encoder(), None)
    vals = [float(v) for v in re.findall(r"The accuracy for val data is\s+(\d+\.\d+)", out)]
    best = max(range(len(vals)), key=lambda i: (vals[i], i))  # the code keeps the last maximum (>=)
    return float(acc), {"best_epoch": best + 1}


def tip_x(root: str, f, s: dict) -> tuple[float, dict]:
    with checkout(root), no_half():
        tipx = load("tipx")
        args = types.SimpleNamespace(temperature=s["temperature"])
        (_, test_kl, val_kl), _ = captured(tipx.get_kl_div_sims, args, f.test, f.val, f.keys.T, f.W.T)
        (acc, alpha, beta, gamma), _ = captured(tipx.hparam_search, f.val, f.yv, f.test, f.yt, f.keys.T, _one_hot(f),
                                                f.W.T, val_kl, test_kl)
    return float(acc), {"alpha": alpha, "beta": beta, "gamma": gamma}


def clap(roots: tuple[str, str], f, s: dict, shuffles: str = "tipkit") -> tuple[float, dict]:
    """CLAP's ``ADAPTER`` trainer with only what its ``run_epoch`` and ``forward_backward`` read set by hand
    (the Dassl data manager, CLIP loading and checkpointing are skipped: SHIM encoder). ``shuffles``: "tipkit"
    (SHIM shuffle: tipkit's batches) or "own" (the code's NumPy draws, seeded with ``f.seed``)."""
    import numpy as np

    with checkout(*roots), scheduler_verbose():
        A = load("trainers.adapters")
        optim = load("dassl.optim")
        ns = types.SimpleNamespace
        cfg = ns(TRAINER=ns(ADAPTER=ns(INIT="ZS", CONSTRAINT="l2", PREC="fp32")), TRAIN=ns(PRINT_FREQ=10 ** 9),
                 OPTIM=ns(NAME="sgd", LR=s["lr"], MAX_EPOCH=s["epochs"], LR_SCHEDULER="cosine",
                          WARMUP_EPOCH=s["warmup_epochs"], WARMUP_TYPE="constant", WARMUP_CONS_LR=s["warmup_lr"],
                          WEIGHT_DECAY=s["weight_decay"], MOMENTUM=s["momentum"], SGD_DAMPNING=0,
                          SGD_NESTEROV=False, RMSPROP_ALPHA=0.99, ADAM_BETA1=0.9, ADAM_BETA2=0.999,
                          STAGED_LR=False, NEW_LAYERS=(), BASE_LR_MULT=0.1, STEPSIZE=(-1,), GAMMA=0.1,
                          WARMUP_RECOUNT=True, WARMUP_MIN_LR=1e-5))
        model = A.CustomCLIP.__new__(A.CustomCLIP)
        torch.nn.Module.__init__(model)
        model.logit_scale = torch.nn.Parameter(torch.tensor(float(np.log(f.logit_scale))))  # the model's own
        model.logit_scale.requires_grad_(False)  # as ADAPTER.build_model freezes every non-adapter parameter
        model.dtype = torch.float32
        clip_model = ns(dtype=torch.float32, logit_scale=model.logit_scale)
        model.adapter = A.AdapterMethod(cfg, clip_model, f.raw_W.clone())  # base: the RAW text features
        trainer = A.ADAPTER.__new__(A.ADAPTER)
        trainer.cfg, trainer.model, trainer.device = cfg, model, torch.device("cpu")
        trainer._models, trainer._optims, trainer._scheds, trainer._writer = {}, {}, {}, None
        trainer.max_epoch = s["epochs"]
        a, k, d = f.views.shape
        trainer.features_train = f.views.reshape(a * k, d).clone()  # raw features, one row per augmented view
        trainer.labels_train = f.labels.repeat(a)
        trainer.features_test, trainer.labels_test = f.test, f.yt
        trainer.train_loader_x = _Batches(k, s["batch_size"])  # Dassl's loader length over the K images
        with torch.no_grad():
            logits_zs = model.forward_lp(trainer.features_train)
        model.adapter.device = trainer.device
        model.adapter.init_lagrangian_multipliers(trainer.labels_train, logits_zs)
        trainer.optim = optim.build_optimizer(model.adapter, cfg.OPTIM)
        trainer.sched = optim.build_lr_scheduler(trainer.optim, cfg.OPTIM)
        trainer.register_model("adapter", model.adapter, trainer.optim, trainer.sched)
        np.random.seed(f.seed)  # Dassl's set_random_seed: the code shuffles with np.random
        gen = torch.Generator().manual_seed(f.seed)  # as tipkit's CLAP draws its epochs' orders

        def as_tipkit(n: int) -> "np.ndarray":  # SHIM shuffle: rank i at tipkit's i-th index, so argsort = its order
            r = np.empty(n)
            r[torch.randperm(n, generator=gen).numpy()] = np.arange(n) / n
            return r

        with contextlib.ExitStack() as stack:
            if shuffles == "tipkit":
                stack.enter_context(_patched(np.random, "rand", as_tipkit))
            for trainer.epoch in range(trainer.max_epoch):
                summary, _ = captured(trainer.run_epoch)
    return float(summary["acc_test"]), {"logit_scale": round(f.logit_scale, 4)}


@contextlib.contextmanager
def _patched(owner: Any, name: str, value: Any) -> Iterator[None]:
    old = getattr(owner, name)
    setattr(owner, name, value)
    try:
        yield
    finally:
        setattr(owner, name, old)


class _Batches:
    """``len()`` of Dassl's train loader over K images (drop_last when K >= batch size), and its batch size."""

    def __init__(self, k: int, batch_size: int) -> None:
        self.k, self.batch_size = k, batch_size

    def __len__(self) -> int:
        return self.k // self.batch_size if self.k >= self.batch_size else 1
