"""CoOp (Zhou, Yang, Loy, Liu, "Learning to Prompt for Vision-Language Models", IJCV 2022,
arXiv 2109.01134; code github.com/KaiyangZhou/CoOp ``trainers/coop.py``).

The prompt of class c is ``[SOS] v_1 … v_M [CLASS_c] . [EOS]`` with M = 16 learnable context vectors
``v`` (shared by all classes unless ``csc``; initialised N(0, 0.02²)) in the token-embedding space of
the frozen open_clip text encoder ``g``:

    t_c = g([SOS, v_1, …, v_M, e(CLASS_c), e(.), EOS]),   logits = s · (f/‖f‖) (t/‖t‖)ᵀ

with ``s = exp(logit_scale)`` of the model (100 for CLIP). Cross-entropy trains ``v`` only, by SGD with
Dassl's schedule (lr 0.002, batch 32, 1 warm-up epoch at 1e-5, cosine); 50 epochs at 1 shot, 100 at
2-4 shots, 200 beyond; the last epoch is kept (CoOp has no validation step). Training uses the cached
image features (one augmented view per epoch) instead of re-encoding images, so only the text
encoder runs. The encoder pass mirrors open_clip 3.3.0 ``CLIP.encode_text`` with the prompt
embeddings in place of ``token_embedding(text)``; the model's weights are frozen during fit and their
``requires_grad`` flags restored afterwards.
"""

from __future__ import annotations

import logging

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from tipkit.core.cache import l2_normalize
from tipkit.errors import TipkitError
from tipkit.methods.base import FewShotData, Method, dassl_lr, epoch_batches, register, require_positive, val_accuracy

log = logging.getLogger(__name__)
POSITIONS = ("end", "middle", "front")


def encode_prompts(model: torch.nn.Module, embeddings: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
    """Text features ``[C, D]`` of prompt ``embeddings [C, L, width]`` (tokens ``[C, L]`` locate the EOS)."""
    from open_clip.transformer import text_global_pool  # lazy: open_clip is slow to import

    cast = model.transformer.get_cast_dtype()
    x = embeddings.to(cast) + model.positional_embedding.to(cast)
    x = model.ln_final(model.transformer(x, attn_mask=model.attn_mask))
    x = text_global_pool(x, tokens, model.text_pool_type, eos_token_id=getattr(model, "text_eos_id", None))
    proj = model.text_projection
    if proj is None:
        return x
    return proj(x) if isinstance(proj, torch.nn.Linear) else x @ proj


class PromptLearner(torch.nn.Module):
    """Learnable context ``[M, width]`` (or ``[C, M, width]``) plus the frozen SOS/class/EOS token embeddings."""

    def __init__(self, model, tokenizer, classnames: list[str], n_ctx: int, csc: bool, position: str,
                 std: float, gen: torch.Generator) -> None:
        super().__init__()
        names = [n.replace("_", " ") for n in classnames]
        width = model.token_embedding.weight.shape[1]
        length = model.positional_embedding.shape[0]
        self.name_lens = [len(tokenizer.encode(n)) for n in names] if hasattr(tokenizer, "encode") else None
        if self.name_lens is not None:
            need = 1 + n_ctx + max(self.name_lens) + 2  # SOS, context, longest name, ".", EOS
            if need > length:
                raise TipkitError(f"coop: n_ctx={n_ctx} leaves too few of the text encoder's {length} tokens for the "
                                  f"longest class name ({max(self.name_lens)} tokens); lower n_ctx")
        elif position != "end":
            raise TipkitError("coop: class_token_position 'middle'/'front' needs a tokenizer with encode()")
        device = model.token_embedding.weight.device
        self.tokens = tokenizer([" ".join(["X"] * n_ctx) + " " + n + "." for n in names]).to(device)  # [C, L]
        with torch.no_grad():
            emb = model.token_embedding(self.tokens)
        self.register_buffer("prefix", emb[:, :1].clone())  # SOS
        self.register_buffer("suffix", emb[:, 1 + n_ctx:].clone())  # CLASS . EOS pad
        shape = (len(names), n_ctx, width) if csc else (n_ctx, width)
        self.ctx = torch.nn.Parameter((torch.randn(shape, generator=gen) * std).to(device))
        self.position, self.n_ctx = position, n_ctx

    def forward(self) -> torch.Tensor:
        """Prompt embeddings ``[C, L, width]``."""
        c = self.prefix.shape[0]
        ctx = self.ctx if self.ctx.dim() == 3 else self.ctx.unsqueeze(0).expand(c, -1, -1)
        if self.position == "end":
            return torch.cat([self.prefix, ctx, self.suffix], dim=1)
        rows, half = [], self.n_ctx // 2
        for i, n in enumerate(self.name_lens):
            cls, rest = self.suffix[i:i + 1, :n], self.suffix[i:i + 1, n:]
            parts = ([ctx[i:i + 1, :half], cls, ctx[i:i + 1, half:]] if self.position == "middle"
                     else [cls, ctx[i:i + 1]])
            rows.append(torch.cat([self.prefix[i:i + 1], *parts, rest], dim=1))
        return torch.cat(rows, dim=0)


def default_epochs(shots: int) -> int:
    """CoOp's schedule by shots per class: 50 (1 shot), 100 (2-4), 200 (8 and more)."""
    return 50 if shots <= 1 else 100 if shots <= 4 else 200


@register
class CoOp(Method):
    name = "coop"

    def _fit(self, data: FewShotData) -> None:
        p, dev = self.params, self.device
        if data.backbone is None or data.classnames is None:
            raise TipkitError("coop needs FewShotData.backbone (the open_clip model) and FewShotData.classnames")
        model = data.backbone.model
        if not hasattr(model, "token_embedding"):
            raise TipkitError(f"coop needs an open_clip CLIP text tower with token_embedding; got {type(model).__name__}")
        mdev = next(model.parameters()).device
        if mdev.type != dev.type or (mdev.index or 0) != (dev.index or 0):
            raise TipkitError(f"coop: the backbone is on {mdev} but FewShotData.device is {dev}")
        if p["class_token_position"] not in POSITIONS:
            raise TipkitError(f"coop: unknown class_token_position {p['class_token_position']!r}; known: {', '.join(POSITIONS)}")
        shots = max(1, round(len(data.labels) / data.num_classes))
        if p["epochs"] is not None and (not isinstance(p["epochs"], int) or isinstance(p["epochs"], bool)):
            raise TipkitError(f"coop: epochs must be an integer or None (CoOp's schedule by shots), got {p['epochs']!r}")
        epochs = int(p["epochs"]) if p["epochs"] is not None else default_epochs(shots)
        require_positive(self.name, n_ctx=p["n_ctx"], epochs=epochs, batch_size=p["batch_size"])
        gen = torch.Generator().manual_seed(data.seed)
        learner = PromptLearner(model, data.backbone.tokenizer, data.classnames, int(p["n_ctx"]), bool(p["csc"]),
                                p["class_token_position"], float(p["ctx_std"]), gen)
        self.scale = float(model.logit_scale.detach().exp()) if hasattr(model, "logit_scale") else 100.0
        views, y = data.normalized_views.to(dev), data.labels.to(dev)
        opt = torch.optim.SGD(learner.parameters(), lr=p["lr"], momentum=p["momentum"], weight_decay=p["weight_decay"])
        flags = [q.requires_grad for q in model.parameters()]
        model.requires_grad_(False)
        try:
            for epoch in tqdm(range(epochs), desc="CoOp", unit="epoch", leave=False):
                lr = dassl_lr(epoch, p["lr"], epochs, int(p["warmup_epochs"]), p["warmup_lr"])
                for g in opt.param_groups:
                    g["lr"] = lr
                feats, loss_sum, correct, seen = views[epoch % views.shape[0]], 0.0, 0, 0
                for b in epoch_batches(len(y), int(p["batch_size"]), gen):
                    b = b.to(dev)
                    text = l2_normalize(encode_prompts(model, learner(), learner.tokens).float())
                    logits = self.scale * feats[b] @ text.T
                    loss = F.cross_entropy(logits, y[b])
                    opt.zero_grad(set_to_none=True)
                    loss.backward()
                    opt.step()
                    loss_sum, seen = loss_sum + loss.item() * len(b), seen + len(b)
                    correct += int((logits.argmax(-1) == y[b]).sum())
                self.history.append({"epoch": epoch + 1, "loss": loss_sum / seen, "train_acc": 100.0 * correct / seen, "lr": lr})
            with torch.no_grad():
                self.text = l2_normalize(encode_prompts(model, learner(), learner.tokens).float())  # [C, D]
        finally:
            for q, flag in zip(model.parameters(), flags):
                q.requires_grad_(flag)
        self.ctx = learner.ctx.detach().cpu()
        val_acc = val_accuracy(self._predict(data.val.float().to(dev)), data.val_labels)
        self.hyper = {"epochs": epochs, "val_acc": val_acc}  # last epoch kept; val only reported
        log.info("CoOp: %d epochs, val %.2f%%", epochs, val_acc)

    def _predict(self, features: torch.Tensor) -> torch.Tensor:
        return self.scale * features @ self.text.T
