"""CoOp on the random-init stand-in architecture, at tiny sizes (CPU smoke and overfit tests)."""

import dataclasses

import pytest
import torch

from tipkit.core.cache import l2_normalize
from tipkit.core.metrics import accuracy
from tipkit.errors import TipkitError
from tipkit.methods import FewShotData, get_method
from tipkit.methods.coop import PromptLearner, encode_prompts
from tipkit.models.backbone import class_embeddings, load_backbone

NAMES = ["cat", "dog", "red car"]


@pytest.fixture(scope="module")
def bb():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield load_backbone(pretrained="none", init_seed=0)
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def data(bb):
    gen = torch.Generator().manual_seed(0)
    d = bb.model.text_projection.shape[1]
    centres = l2_normalize(torch.randn(3, d, generator=gen))
    labels = torch.arange(3).repeat_interleave(2)  # 2 shots
    views = centres[labels].unsqueeze(0) + 0.05 * torch.randn(2, 6, d, generator=gen)
    W = class_embeddings(bb, NAMES, ["a photo of a {}."])
    return FewShotData(views=views, labels=labels, val=l2_normalize(views[0]), val_labels=labels, class_embeddings=W,
                       seed=1, backbone=bb, classnames=NAMES)


def test_encoder_pass_matches_open_clip_encode_text(bb):
    model = bb.model
    tokens = bb.tokenizer(["a photo of a cat.", "a red car"])
    with torch.no_grad():
        ours = encode_prompts(model, model.token_embedding(tokens), tokens)
        assert torch.allclose(ours, model.encode_text(tokens), atol=1e-5)


@pytest.mark.parametrize("position, text", [("end", "a photo of a cat."), ("front", "cat a photo of a."),
                                            ("middle", "a photo cat of a.")])
def test_prompt_assembly_places_context_and_class(bb, position, text):
    """With the context set to the embeddings of 'a photo of a', the learner's prompt is that sentence."""
    model, tok = bb.model, bb.tokenizer
    learner = PromptLearner(model, tok, ["cat"], 4, False, position, 0.02, torch.Generator().manual_seed(0))
    with torch.no_grad():
        learner.ctx.copy_(model.token_embedding(tok(["a photo of a"]))[0, 1:5])
        expected = model.encode_text(tok([text]))
        assert torch.allclose(encode_prompts(model, learner(), learner.tokens), expected, atol=1e-5)


def test_smoke_fit_predict_keeps_the_encoder_frozen(bb, data):
    before = {k: v.clone() for k, v in bb.model.state_dict().items()}
    flags = [p.requires_grad for p in bb.model.parameters()]
    m = get_method("coop", epochs=2).fit(data)
    assert m.predict(data.val).shape == (6, 3) and len(m.history) == 2 and m.ctx.shape == (16, 64)
    assert all(torch.equal(v, bb.model.state_dict()[k]) for k, v in before.items())
    assert [p.requires_grad for p in bb.model.parameters()] == flags
    again = get_method("coop", epochs=2).fit(data)
    assert torch.equal(again.ctx, m.ctx) and torch.equal(again.predict(data.val), m.predict(data.val))
    other = get_method("coop", epochs=2).fit(dataclasses.replace(data, seed=2))
    assert not torch.equal(other.ctx, m.ctx)


def test_overfits_a_few_samples(data):
    """Class-specific contexts (CSC) fit 6 samples even through a random text encoder."""
    m = get_method("coop", epochs=40, lr=2.0, batch_size=6, warmup_epochs=0, csc=True).fit(data)
    losses = [h["loss"] for h in m.history]
    assert m.ctx.shape == (3, 16, 64) and losses[-1] < 0.2 * losses[0]
    assert accuracy(m.predict(data.val), data.val_labels) == 100.0
    shared = get_method("coop", epochs=25, lr=0.5, batch_size=6, warmup_epochs=0, n_ctx=4).fit(data)
    assert shared.history[-1]["loss"] < 0.5 * shared.history[0]["loss"]


def test_rejects_what_it_cannot_run(bb, data):
    with pytest.raises(TipkitError, match="needs FewShotData.backbone"):
        get_method("coop", epochs=1).fit(dataclasses.replace(data, backbone=None))
    with pytest.raises(TipkitError, match="lower n_ctx"):
        get_method("coop", epochs=1, n_ctx=22).fit(data)
    with pytest.raises(TipkitError, match="unknown class_token_position 'start'"):
        get_method("coop", epochs=1, class_token_position="start").fit(data)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_runs_on_cuda(data):
    bb = load_backbone(pretrained="none", init_seed=0, device="cuda")
    m = get_method("coop", epochs=2).fit(dataclasses.replace(data, backbone=bb, device="cuda"))
    assert m.predict(data.val).shape == (6, 3)
    with pytest.raises(TipkitError, match="the backbone is on cuda"):
        get_method("coop", epochs=1).fit(dataclasses.replace(data, backbone=bb, device="cpu"))
