"""Every method's hyperparameters and search ranges, as data, each with its source.

``HPARAMS[method][name]`` is ``{"default": value, "source": where the value comes from}``; a
``None`` default means "derived" (explained in the source line). :func:`defaults` gives the plain
``{name: default}`` dict a :class:`tipkit.methods.base.Method` starts from; constructor keyword
arguments override it. ``PAPERS`` cites each method.

Grids written ``(scale, steps)`` follow the official repositories' formula
``start + i·(scale − start)/steps`` for ``i in range(steps)``; ``start`` is stated per grid.
"""

from __future__ import annotations

from typing import Any

import yaml

from tipkit import paths
from tipkit.config import RunConfig

_RC = RunConfig()

PAPERS: dict[str, str] = {
    "zero_shot": "Radford et al., Learning Transferable Visual Models From Natural Language Supervision, ICML 2021 (arXiv 2103.00020)",
    "linear_probe": "Radford et al. 2021 (CLIP linear probe); protocol of Zhou et al., Learning to Prompt for Vision-Language Models, IJCV 2022 (arXiv 2109.01134), repo KaiyangZhou/CoOp lpclip/",
    "clip_adapter": "Gao et al., CLIP-Adapter: Better Vision-Language Models with Feature Adapters, IJCV 2024 (arXiv 2110.04544), repo gaopengcuhk/CLIP-Adapter",
    "tip_adapter": "Zhang et al., Tip-Adapter: Training-free Adaption of CLIP for Few-shot Classification, ECCV 2022 (arXiv 2207.09519), repo gaopengcuhk/Tip-Adapter",
    "tip_x": "Udandarao et al., SuS-X: Training-Free Name-Only Transfer of Vision-Language Models, ICCV 2023 (arXiv 2211.16198), repo vishaal27/SuS-X tipx.py",
    "ape": "Zhu et al., Not All Features Matter: Enhancing Few-shot CLIP with Adaptive Prior Refinement, ICCV 2023 (arXiv 2304.01195), repo yangyangyang127/APE",
    "gda": "Wang et al., A Hard-to-Beat Baseline for Training-free CLIP-based Adaptation, ICLR 2024 (arXiv 2402.04087), repo mrflogs/ICLR24",
    "clap": "Silva-Rodríguez et al., A Closer Look at the Few-Shot Adaptation of Large Vision-Language Models, CVPR 2024 (arXiv 2312.12730), repo jusiro/CLAP",
    "lp_plus_plus": "Huang et al., LP++: A Surprisingly Strong Linear Probe for Few-Shot CLIP, CVPR 2024 (arXiv 2404.02285), repo FereshteShakeri/FewShot-CLIP-Strong-Baseline",
    "coop": "Zhou et al., Learning to Prompt for Vision-Language Models, IJCV 2022 (arXiv 2109.01134), repo KaiyangZhou/CoOp",
}
PAPERS["zero_shot_single"] = PAPERS["zero_shot"]
PAPERS["tip_adapter_f"] = PAPERS["tip_adapter"]
PAPERS["ape_t"] = PAPERS["ape"]

_TIP = "gaopengcuhk/Tip-Adapter configs/*.yaml via tipkit.config.RunConfig"
_DASSL = "Dassl defaults used by CoOp-style trainers (OPTIM.MOMENTUM 0.9, WEIGHT_DECAY 5e-4, constant warm-up 1 epoch at 1e-5, per-epoch cosine)"
_APE = "yangyangyang127/APE configs/<dataset>.yaml"
_APE_PAPER = " (the `paper` protocol reads each dataset's own value from configs/paper/methods/ape.yaml)"


def _h(default: Any, source: str) -> dict[str, Any]:
    return {"default": default, "source": source}


HPARAMS: dict[str, dict[str, dict[str, Any]]] = {
    "zero_shot": {},
    "zero_shot_single": {},
    "linear_probe": {
        "c_grid": _h([1e6, 1e4, 1e2, 1.0, 1e-2, 1e-4, 1e-6], "CoOp lpclip/linear_probe.py search_list (inverse L2 strength C)"),
        "search_steps": _h(8, "CoOp lpclip/linear_probe.py --num_step (log-space bisection around the best grid C)"),
        "max_iter": _h(1000, "CoOp lpclip/linear_probe.py LogisticRegression(solver='lbfgs', max_iter=1000)"),
        "tol": _h(1e-4, "scikit-learn's default tol as CoOp ran it (gradient of C·Σ loss + ‖A‖²/2); tipkit stops at tol/(C·n) on the mean loss, the same point"),
    },
    "clip_adapter": {
        "reduction": _h(4, "gaopengcuhk/CLIP-Adapter clip_adapter.py Adapter(1024, 4)"),
        "ratio": _h(0.2, "gaopengcuhk/CLIP-Adapter clip_adapter.py ratio = 0.2"),
        "epochs": _h(200, "CLIP-Adapter paper (200 epochs, as CoOp); LP++ re-implementation base.yaml"),
        "lr": _h(1e-2, "not in the official repo (module only); LP++ re-implementation base.yaml ('Clipadapter 0.01')"),
        "batch_size": _h(32, "not in the official repo; LP++ re-implementation base.yaml ('32 clip adapter')"),
        "momentum": _h(0.9, _DASSL),
        "weight_decay": _h(5e-4, _DASSL),
        "warmup_epochs": _h(1, _DASSL),
        "warmup_lr": _h(1e-5, _DASSL),
    },
    "tip_adapter": {
        "search_scale": _h(list(_RC.search_scale), _TIP + " search_scale [beta, alpha]; grids start at 0.1"),
        "search_step": _h(list(_RC.search_step), _TIP + " search_step [beta, alpha] (paper: 200 x 20)"),
    },
    "tip_adapter_f": {
        "search_scale": _h(list(_RC.search_scale), _TIP + " search_scale [beta, alpha]; grids start at 0.1"),
        "search_step": _h(list(_RC.search_step), _TIP + " search_step [beta, alpha]"),
        "init_alpha": _h(_RC.init_alpha, _TIP + " init_alpha (fixed while training)"),
        "init_beta": _h(_RC.init_beta, _TIP + " init_beta (fixed while training)"),
        "epochs": _h(_RC.epochs, _TIP + " train_epoch"),
        "lr": _h(_RC.lr, _TIP + " lr (AdamW, eps 1e-4, cosine)"),
        "batch_size": _h(_RC.batch_size, "gaopengcuhk/Tip-Adapter main.py train loader batch 256"),
    },
    "tip_x": {
        "temperature": _h(0.5, "SuS-X tipx.py --temperature default 0.5 (softmax(f Wᵀ / T))"),
        "search_scale": _h([50.0, 50.0, 30.0], "SuS-X tipx.py hparam_search search_scale [beta, alpha, gamma]"),
        "search_step": _h([200, 20, 50], "SuS-X tipx.py hparam_search search_step [beta, alpha, gamma]; beta grid starts at 1, alpha and gamma at 0.1"),
        "betas": _h(None, "explicit beta grid overriding search_scale/search_step (tipkit)"),
        "alphas": _h(None, "explicit alpha grid (tipkit)"),
        "gammas": _h(None, "explicit gamma grid (tipkit)"),
    },
    "ape": {
        "feat_num": _h(800 / 1024, _APE + " training_free_feat_num, a count of RN50's 1024 channels: 800 on Caltech101, OxfordPets, FGVCAircraft, SUN397; 700 on EuroSAT, Food101, Flowers102, UCF101; 500 on ImageNet, StanfordCars; 400 on DTD. A float is a fraction of D, an int a count" + _APE_PAPER),
        "w": _h([0.7, 0.3], _APE + " w_training_free [similarity, variance]: [0.7, 0.3] on ImageNet, OxfordPets, SUN397; [0.5, 0.5] on Caltech101, DTD; [0.9, 0.1] EuroSAT; [0.1, 0.9] FGVCAircraft; [0.3, 0.7] Food101, UCF101; [0.4, 0.6] Flowers102; [0.6, 0.4] StanfordCars" + _APE_PAPER),
        "search_scale": _h([7.0, 7.0, 1.0], _APE + " search_scale [beta, alpha, gamma]: [7, 7, 1] on Caltech101, DTD, Food101, Flowers102, OxfordPets; [7, 7, 0.5] ImageNet; [30, 5, 1.5] EuroSAT; [20, 10, 1] FGVCAircraft; [10, 7, 1] StanfordCars, SUN397; [10, 7, 1.5] UCF101; beta/alpha start at 0.1, gamma at 0" + _APE_PAPER),
        "search_step": _h([200, 20, 20], _APE + " search_step: [200, 20, 20] on every dataset but ImageNet [200, 20, 5]" + _APE_PAPER),
        "betas": _h(None, "explicit beta grid (tipkit)"),
        "alphas": _h(None, "explicit alpha grid (tipkit)"),
        "gammas": _h(None, "explicit gamma grid (tipkit)"),
    },
    "ape_t": {
        "feat_num": _h(900 / 1024, _APE + " training_feat_num of RN50's 1024: 900 on Caltech101, EuroSAT, FGVCAircraft, Food101; 800 on Flowers102, OxfordPets, StanfordCars, SUN397, UCF101; 700 DTD; 500 ImageNet" + _APE_PAPER),
        "w": _h([0.2, 0.8], _APE + " w_training ([0.2, 0.8] on every dataset)"),
        "init_alpha": _h(1.0, _APE + " init_alpha: 1 on Caltech101, EuroSAT, StanfordCars, SUN397; 2 ImageNet, OxfordPets, UCF101; 3 DTD, Flowers102; 5 FGVCAircraft; 0.8 Food101" + _APE_PAPER),
        "init_beta": _h(1.0, _APE + " init_beta (1 on every dataset)"),
        "epochs": _h(20, _APE + " train_epoch: tipkit's default for datasets without an official config is 20 (DTD's and ImageNet's); officially 30 on 7 of 11 datasets, 20 on DTD and ImageNet, 60 Flowers102, 200 EuroSAT" + _APE_PAPER),
        "lr": _h(1e-3, _APE + " lr: 1e-3; 1e-4 on ImageNet, Food101, OxfordPets, SUN397" + _APE_PAPER),
        "eps": _h(1e-3, _APE + " eps (AdamW): 1e-3; 2e-3 on OxfordPets and UCF101, 5e-3 StanfordCars" + _APE_PAPER),
        "weight_decay": _h(0.1, "APE main.py APE_T AdamW(weight_decay=1e-1)"),
        "batch_size": _h(256, "APE main.py train_loader_F batch_size=256"),
        "search_scale": _h([7.0, 7.0], _APE + " search_scale [beta, alpha] (the first two entries of the official list)" + _APE_PAPER),
        "search_step": _h([200, 20], _APE + " search_step [beta, alpha]"),
    },
    "gda": {
        "alphas": _h([1e-4, 1e-3, 1e-2, 1e-1, 1.0, 10.0, 100.0], "mrflogs/ICLR24 main_few_shots.py alpha grid, the same for every dataset (its configs/few_shots/<dataset>.yaml set only augment_epoch 10 and RN50, the same on all 11)"),
    },
    "clap": {
        "init": _h("raw", "jusiro/CLAP trainers/adapters.py _get_base_text_features: prototypes start at, and the l2 constraint pulls toward, the RAW (unnormalised) text features; 'normalized' = tipkit's earlier variant (L2-normalised template-ensemble rows, logits x 100)"),
        "logit_scale": _h(None, "jusiro/CLAP trainers/adapters.py forward_lp: logits x clip_model.logit_scale.exp() (100 for CLIP); None = the model's own (FewShotData.logit_scale)"),
        "epochs": _h(300, "jusiro/CLAP configs/trainers/SGD_lr1e-1_B256_ep300.yaml MAX_EPOCH"),
        "lr": _h(0.1, "jusiro/CLAP SGD_lr1e-1_B256_ep300.yaml LR"),
        "batch_size": _h(256, "jusiro/CLAP SGD_lr1e-1_B256_ep300.yaml TRAIN_X.BATCH_SIZE"),
        "momentum": _h(0.9, _DASSL),
        "weight_decay": _h(0.0, "jusiro/CLAP SGD_lr1e-1_B256_ep300.yaml WEIGHT_DECAY 0.0"),
        "warmup_epochs": _h(1, "jusiro/CLAP SGD_lr1e-1_B256_ep300.yaml WARMUP_EPOCH 1"),
        "warmup_lr": _h(1e-5, "jusiro/CLAP SGD_lr1e-1_B256_ep300.yaml WARMUP_CONS_LR 1e-5"),
    },
    "lp_plus_plus": {
        "epochs": _h(300, "LP++ configs/base.yaml train_epoch 300"),
        "alpha_every": _h(10, "LP++ methods/linear_probe_p2.py: alpha updated every 10 epochs"),
        "init_alpha_scale": _h(250.0, "LP++ methods/linear_probe_p2.py calculate_init_alpha: 250 / shots * alpha_tilde"),
        "momentum": _h(0.9, "LP++ methods/linear_probe_p2.py SGD(momentum=0.9)"),
        "val_shots": _h(None, "LP++ main.py generate_fewshot_dataset_(shots, split='val'): the code chooses its epoch on K validation images per class; None = the run's validation split as given, 'shots' = K per class drawn from it (Dassl's random.sample, the run's seed; the `paper` protocol's choice), an int = that many per class"),
    },
    "coop": {
        "n_ctx": _h(16, "CoOp scripts/coop/main.sh NCTX 16 (M = 16)"),
        "class_token_position": _h("end", "CoOp CLASS_TOKEN_POSITION end"),
        "csc": _h(False, "CoOp CSC False (one context shared by all classes)"),
        "ctx_std": _h(0.02, "CoOp trainers/coop.py nn.init.normal_(ctx_vectors, std=0.02)"),
        "epochs": _h(None, "CoOp configs rn50_ep50 / rn50_ep100 / rn50: 50 epochs at 1 shot, 100 at 2-4, 200 at 8+ (None = by shots)"),
        "lr": _h(2e-3, "CoOp configs/trainers/CoOp/rn50.yaml LR 0.002"),
        "batch_size": _h(32, "CoOp rn50.yaml TRAIN_X.BATCH_SIZE 32"),
        "momentum": _h(0.9, _DASSL),
        "weight_decay": _h(5e-4, _DASSL),
        "warmup_epochs": _h(1, "CoOp rn50.yaml WARMUP_EPOCH 1"),
        "warmup_lr": _h(1e-5, "CoOp rn50.yaml WARMUP_CONS_LR 1e-5"),
    },
}


# Methods compared with their authors' code by benchmarks/parity.py (book/parity.md), the commit it ran.
OFFICIAL_CODE: dict[str, str] = {
    "tip_adapter": "gaopengcuhk/Tip-Adapter@d0e2d6f", "tip_adapter_f": "gaopengcuhk/Tip-Adapter@d0e2d6f",
    "gda": "mrflogs/ICLR24@560fe21", "ape": "yangyangyang127/APE@70460de", "ape_t": "yangyangyang127/APE@70460de",
    "lp_plus_plus": "FereshteShakeri/FewShot-CLIP-Strong-Baseline@f81054f", "tip_x": "vishaal27/SuS-X@d7d4d37",
    "clap": "jusiro/CLAP@dbdf409",
}
NOT_COMPARED: dict[str, str] = {
    "zero_shot": "CLIP's zero-shot classifier itself: no adaptation method to compare",
    "zero_shot_single": "CLIP's zero-shot classifier with one prompt: no adaptation method to compare",
    "linear_probe": "CoOp's lpclip/linear_probe.py is a scikit-learn script over saved features; not yet run by the harness",
    "clip_adapter": "gaopengcuhk/CLIP-Adapter publishes the adapter module only, without its training code",
    "coop": "CoOp learns its prompt through the text encoder inside Dassl's full pipeline; not run by the CPU harness",
}


def paper_settings(dataset: str, method: str) -> dict[str, Any]:
    """The official per-dataset settings of ``method`` on ``dataset`` (``configs/paper/methods/*.yaml``), as
    overrides; ``{}`` where the authors' code has none for that pair. Channel counts become fractions of 1,024."""
    out: dict[str, Any] = {}
    for f in sorted((paths.CONFIGS / "paper" / "methods").glob("*.yaml")):
        spec = (yaml.safe_load(f.read_text()) or {}).get("datasets", {}).get(dataset, {}).get(method)
        if spec:
            out.update(spec)
    if isinstance(out.get("feat_num"), int):
        out["feat_num"] = out["feat_num"] / 1024  # RN50's count, as a fraction of the width
    for key in ("init_alpha", "init_beta", "lr", "eps"):
        if key in out:
            out[key] = float(out[key])
    for key in ("search_scale", "w"):
        if key in out:
            out[key] = [float(v) for v in out[key]]
    return out


def defaults(method: str) -> dict[str, Any]:
    """``{name: default}`` for ``method`` (lists copied, so callers may mutate them)."""
    return {k: (list(v["default"]) if isinstance(v["default"], list) else v["default"])
            for k, v in HPARAMS[method].items()}
