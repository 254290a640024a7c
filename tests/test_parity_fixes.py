"""The deviations from the authors' code fixed by issue 16: CLAP from the raw text features with the model's logit
scale, APE's/APE-T's per-dataset settings under ``paper``, LP++'s own validation split, per-class prompt files."""

from __future__ import annotations

import json
import math

import pytest
import torch
import torch.nn.functional as F
from methods_synth import make_problem

from tipkit import config, data
from tipkit.cli import build_parser, config_from_args
from tipkit.core.cache import l2_normalize
from tipkit.data.fewshot_official import sample_few_shot_official
from tipkit.errors import TipkitError
from tipkit.experiments import pipeline
from tipkit.methods import FewShotData, get_method, hparams
from tipkit.methods.ape import select_channels
from tipkit.methods.lpplusplus import own_val
from tipkit.models.backbone import class_embeddings, load_backbone, raw_class_embeddings, text_classifier


def _with_raw(d: FewShotData, scale: float = 20.0) -> tuple[FewShotData, torch.Tensor]:
    gen = torch.Generator().manual_seed(3)
    raw = d.class_embeddings * (2.0 + torch.rand(d.num_classes, 1, generator=gen) * 5)  # norms 2..7, not 1
    raw = raw + 0.05 * torch.randn(raw.shape, generator=gen)
    return FewShotData(views=d.views, labels=d.labels, val=d.val, val_labels=d.val_labels,
                       class_embeddings=d.class_embeddings, raw_class_embeddings=raw, logit_scale=scale), raw


# ------------------------------------------------------------------------------------------------------ CLAP
def test_clap_starts_at_the_raw_text_features_with_the_models_scale():
    d, ft, _ = make_problem()
    d, raw = _with_raw(d)
    m = get_method("clap", epochs=1, lr=0.0, warmup_lr=0.0).fit(d)  # no step: prototypes stay where they start
    assert m.scale == 20.0 and m.hyper["logit_scale"] == 20.0 and m.hyper["init"] == "raw"
    assert torch.allclose(m.prototypes, l2_normalize(raw), atol=1e-6)
    assert torch.allclose(m.predict(ft), 20.0 * ft @ l2_normalize(raw).T, atol=1e-4)
    probs = torch.softmax(20.0 * d.normalized_views.reshape(-1, d.dim) @ l2_normalize(raw).T, -1)
    y = d.labels.repeat(d.views.shape[0])
    want = torch.stack([probs[y == c, c].mean() for c in range(d.num_classes)])
    assert torch.allclose(m.lambdas, want, atol=1e-6)  # multipliers from the zero-shot logits at the model's scale


def test_clap_penalty_pulls_toward_the_raw_features():
    d, raw = _with_raw(make_problem()[0])
    lr = 0.5
    m = get_method("clap", epochs=1, warmup_lr=lr, momentum=0.0, batch_size=10 ** 6).fit(d)  # one full-batch step
    w = raw.clone().requires_grad_(True)
    pool, y = d.normalized_views.reshape(-1, d.dim), d.labels.repeat(d.views.shape[0])
    lam = m.lambdas
    loss = F.cross_entropy(20.0 * pool @ l2_normalize(w).T, y) + (lam * (w - raw).pow(2).sum(-1)).mean()
    loss.backward()
    assert torch.allclose(m.prototypes, l2_normalize(raw - lr * w.grad), atol=1e-5)


def test_clap_normalized_variant_is_the_former_one():
    d, ft, _ = make_problem()
    d2, _ = _with_raw(d)
    old = get_method("clap", init="normalized", epochs=5, batch_size=16).fit(d2)
    assert old.scale == 100.0 and old.hyper["init"] == "normalized"
    same = get_method("clap", epochs=5, batch_size=16).fit(d)  # no raw features given: the classifier as it is
    assert same.scale == 100.0 and torch.equal(old.predict(ft), same.predict(ft))
    with pytest.raises(TipkitError, match="unknown CLAP init 'unit'; known: normalized, raw"):
        get_method("clap", init="unit").fit(d)


def test_fewshotdata_checks_raw_features_and_scale():
    d = make_problem()[0]
    with pytest.raises(TipkitError, match="raw_class_embeddings must have shape"):
        FewShotData(views=d.views, labels=d.labels, val=d.val, val_labels=d.val_labels,
                    class_embeddings=d.class_embeddings, raw_class_embeddings=d.class_embeddings[:2])
    with pytest.raises(TipkitError, match="logit_scale must be a positive number, got -1"):
        FewShotData(views=d.views, labels=d.labels, val=d.val, val_labels=d.val_labels,
                    class_embeddings=d.class_embeddings, logit_scale=-1)


# ---------------------------------------------------------------------------------------- APE's per-dataset configs
def test_paper_protocol_reads_apes_per_dataset_settings():
    dtd = config.make_config(dataset="dtd", protocol="paper")
    ape = pipeline.method_overrides(dtd, "ape")
    assert ape == {"feat_num": 400 / 1024, "w": [0.5, 0.5], "search_scale": [7.0, 7.0, 1.0], "search_step": [200, 20, 20]}
    ape_t = pipeline.method_overrides(config.make_config(dataset="eurosat", protocol="paper"), "ape_t")
    assert (ape_t["epochs"], ape_t["init_alpha"], ape_t["search_scale"], ape_t["feat_num"]) == (200, 1.0, [30.0, 5.0], 900 / 1024)
    pets = pipeline.method_overrides(config.make_config(dataset="oxford_pets", protocol="paper"), "ape_t")
    assert (pets["lr"], pets["eps"], pets["epochs"]) == (1e-4, 2e-3, 30)
    assert pipeline.method_overrides(config.make_config(dataset="stanford_cars", protocol="paper"), "ape_t")["eps"] == 5e-3
    for name in data.paper.FEW_SHOT_DATASETS:  # every official config is there, for both methods
        cfg = config.make_config(dataset=name, protocol="paper")
        assert pipeline.method_overrides(cfg, "ape") and pipeline.method_overrides(cfg, "ape_t")
        get_method("ape", **pipeline.method_overrides(cfg, "ape"))  # valid hyperparameters
        get_method("ape_t", **pipeline.method_overrides(cfg, "ape_t"))
    assert pipeline.method_overrides(config.make_config(dataset="dtd"), "ape") == {}  # clean: tipkit's defaults
    assert pipeline.method_overrides(config.make_config(protocol="paper"), "ape") == {}  # no official config
    assert pipeline.method_overrides(dtd, "gda") == {}  # GDA's configs set nothing per dataset


@pytest.mark.parametrize("width, kept", [(1024, 400), (512, 200), (768, 300)])
def test_official_channel_counts_scale_with_the_width(width, kept):
    d = make_problem(d=width, c=4, shots=2)[0]
    assert len(select_channels(d, hparams.paper_settings("dtd", "ape")["feat_num"], [0.5, 0.5])) == kept


def test_hparams_sources_name_the_per_dataset_values():
    src = hparams.HPARAMS["ape_t"]["epochs"]["source"]
    assert "30 on 7 of 11" in src and "200 EuroSAT" in src and "configs/paper/methods/ape.yaml" in src
    assert "400 on DTD" in hparams.HPARAMS["ape"]["feat_num"]["source"]


# ---------------------------------------------------------------------------------------------- LP++'s own split
def test_lp_plus_plus_chooses_on_k_images_per_class_when_asked():
    d, ft, _ = make_problem(shots=4, n_val=100)
    idx = own_val(d, "shots")
    assert torch.equal(idx, torch.from_numpy(sample_few_shot_official(d.val_labels.numpy(), 4, d.seed)))
    assert torch.bincount(d.val_labels[idx]).tolist() == [4] * d.num_classes
    assert torch.equal(own_val(d, None), torch.arange(len(d.val_labels)))
    assert torch.bincount(d.val_labels[own_val(d, 2)]).tolist() == [2] * d.num_classes
    m = get_method("lp_plus_plus", epochs=20, val_shots="shots").fit(d)
    assert m.hyper["val_images"] == 4 * d.num_classes
    assert get_method("lp_plus_plus", epochs=20).fit(d).hyper["val_images"] == len(d.val_labels)
    with pytest.raises(TipkitError, match="val_shots must be None, 'shots' or a positive int, got 'all'"):
        own_val(d, "all")
    assert pipeline.method_overrides(config.make_config(protocol="paper"), "lp_plus_plus") == {"val_shots": "shots"}
    assert pipeline.method_overrides(config.make_config(), "lp_plus_plus") == {}


# -------------------------------------------------------------------------------------------------- prompt files
def test_prompt_file_is_read_like_cupls(tmp_path):
    f = tmp_path / "cupl.json"
    f.write_text(json.dumps({"t-shirt": ["a t-shirt.", "cotton top."], "Ankle boot": ["a boot."]}))
    assert data.load_prompt_file(f, ["t-shirt", "ankle_boot"]) == [["a t-shirt.", "cotton top."], ["a boot."]]
    with pytest.raises(TipkitError, match="has no sentences for class 'sandal'"):
        data.load_prompt_file(f, ["sandal"])
    with pytest.raises(TipkitError, match="prompt file not found"):
        data.load_prompt_file(tmp_path / "none.json", ["x"])
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(TipkitError, match="is not valid JSON"):
        data.load_prompt_file(tmp_path / "bad.json", ["x"])
    (tmp_path / "empty.json").write_text(json.dumps({"x": []}))
    with pytest.raises(TipkitError, match="class 'x' must have a non-empty list of sentences"):
        data.load_prompt_file(tmp_path / "empty.json", ["x"])


def test_a_run_builds_its_classifier_from_the_prompt_file(tmp_path):
    ds = data.get_dataset("synthetic")
    f = tmp_path / "cupl.json"
    f.write_text(json.dumps({c: [f"a photo of a {c}.", f"a blurry {c}."] for c in ds.classnames}))
    args = build_parser().parse_args(["run", "--dataset", "synthetic", "--pretrained", "none", "--prompts", str(f),
                                      "--methods", "zero_shot", "--augment-views", "1"])
    cfg = config_from_args(args)
    assert cfg.prompts == str(f)
    fitted = pipeline.fit(cfg)
    bb = load_backbone(cfg.backbone, cfg.pretrained, init_seed=cfg.seed)
    want = text_classifier(bb, data.load_prompt_file(f, ds.classnames))
    assert torch.allclose(fitted.data.class_embeddings, want, atol=1e-6)
    plain = pipeline.fit(config.make_config(dataset="synthetic", pretrained="none", methods=["zero_shot"],
                                            augment_views=1)).data
    assert not torch.allclose(fitted.data.class_embeddings, plain.class_embeddings)
    single = class_embeddings(bb, ds.classnames, [pipeline.SINGLE_PROMPT])
    assert torch.allclose(fitted.data.single_prompt_embeddings, single, atol=1e-6)  # never the file's sentences
    assert math.isclose(fitted.data.logit_scale, float(bb.model.logit_scale.detach().exp()), rel_tol=1e-6)
    assert fitted.data.raw_class_embeddings is None  # computed only when CLAP runs
    raw = raw_class_embeddings(bb, ds.classnames, ds.templates)
    assert not torch.allclose(raw.norm(dim=-1), torch.ones(len(raw)))  # CLAP's base: not normalised
    (tmp_path / "short.json").write_text(json.dumps({ds.classnames[0]: ["x"]}))
    with pytest.raises(TipkitError, match="has no sentences for class"):
        pipeline.validate(config.make_config(dataset="synthetic", pretrained="none", prompts=str(tmp_path / "short.json")))
