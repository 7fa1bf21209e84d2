"""Training a hyper-representation: one loop, resumable, deterministic from ``train.seed``.

Per epoch: shuffle the train split (a pure function of seed and epoch), and per batch augment one
or two views (two when the contrastive term is on), tokenise, encode, decode, and take
gamma*L_C + (1-gamma)*(beta*L_S + (1-beta)*L_B); AdamW with a linear warm-up and a cosine decay
to zero (a pure function of the step), gradient-norm clipping. After each epoch: the validation
losses (eval mode, fixed augmentations and queries, so epochs are comparable), every
``eval_every`` epochs the reconstruction R^2 of all three splits, the log row, the best checkpoint
(lowest validation loss), the resume state and every ``checkpoint_every`` epochs a checkpoint.

Determinism: data order, augmentations and queries are hashed from the seed; dropout draws from
torch's global generator, which is re-seeded from (seed, epoch) at the start of each epoch inside
``torch.random.fork_rng`` (the caller's generator state is untouched). A run resumed from the state
of epoch e therefore redoes epochs e+1.. exactly as an uninterrupted run does (same machine,
same thread count): after Ctrl-C or kill -9, rerun the same command.
"""

from __future__ import annotations

import math
import os
import signal
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from ..errors import ModelZooError
from ..seeding import derive_seed, generator, hashed_uniform
from ..tokens import WeightStructure, layer_groups
from . import folder, preflight
from .augment import PAPER_POOL_PICK, BatchAugmenter, permutation_pool, sample_keys
from .autoencoders import build_autoencoder
from .behaviour import QuerySet, network_outputs
from .data import SPLITS, Split, load_splits
from .losses import BEHAVIOUR, CONTRAST, RECONSTRUCTION, composite
from .metrics import R2
from .models import ProjectionHead
from .tokens import layer_of_position

FAULT_ENV = "MODELZOO_HYPERREP_FAULT"  # "EPOCH:BATCH": kill -9 this process after that step
TERMS = ("loss", "contrast", "structural", "behaviour")
EVAL_CHUNK = 2048
PAPER_POOL = 10  # permutations of the 2021 code's test set (testset::permutations_number)


class Trainer:
    """Everything one training run holds; :meth:`run` trains, :meth:`finish` writes the rest."""

    def __init__(self, zoo: Any, config: dict[str, Any], work: Path) -> None:
        self.zoo, self.config, self.work = zoo, config, work
        model_cfg, self.loss_cfg, train = config["model"], config["loss"], config["train"]
        self.device = torch.device(train["device"])
        self.seed, self.epochs = train["seed"], train["epochs"]
        self.structure = WeightStructure.of(zoo)
        self.splits, self.norm = load_splits(zoo, config["data"])
        self.gamma, self.beta = self.loss_cfg["gamma"], self.loss_cfg["beta"]
        self.views = 2 if self.gamma > 0 else 1
        self.min_states = 2 if self.gamma > 0 else 1  # NT-Xent needs a second sample
        preflight.check_split_sizes(zoo, config, self.splits, self.min_states)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(derive_seed(self.seed, "ae-init"))
            self.model = build_autoencoder(model_cfg, self.structure)
            self.head = None
            if self.gamma > 0:
                p = config["projection"]
                self.head = ProjectionHead(model_cfg["latent"], p["layers"], p["hidden"], p["out"])
        self.plan = type(self.model).token_plan(self.structure, model_cfg)
        self.modules = nn.ModuleDict(
            {"model": self.model, **({"head": self.head} if self.head else {})}
        )
        self.modules.to(self.device)
        self.mask = torch.from_numpy(self.plan.mask).to(self.device)
        mean, std = self.norm.space_stats(zoo.layout)
        self.slot_mean = self.plan.tokenize(torch.from_numpy(mean)[None]).to(self.device)
        self.slot_std = self.plan.tokenize(torch.from_numpy(std)[None]).to(self.device)
        self.augment = BatchAugmenter(self.structure, config["augment"], self.seed)
        self.queries = None
        if self.beta < 1:
            self.queries = QuerySet(zoo, self.loss_cfg, config["data"]["data_dir"], self.seed)
        n_train = len(self.splits["train"])
        self.batch = min(train["batch_size"], n_train)
        self.steps_per_epoch = max(n_train // self.batch, 1)
        self.total_steps = self.steps_per_epoch * self.epochs
        self.optimizer = torch.optim.AdamW(
            self.modules.parameters(), lr=train["lr"], weight_decay=train["weight_decay"]
        )
        self.step, self.epoch = 0, 0
        self.best_val, self.best_epoch = math.inf, 0
        self.log: list[dict[str, float]] = []
        self.layer_names = [name for name, _ in layer_groups(zoo.layout)]
        self.layer_of = layer_of_position(self.structure)
        self.bar = None
        if self.beta < 1 and getattr(self.model, "window", self.plan.shape[0]) < self.plan.shape[0]:
            raise ModelZooError(
                "loss.beta < 1 runs whole networks: set model.window=0 (or at "
                f"least {self.plan.shape[0]} tokens)"
            )
        self.paper_pool = torch.from_numpy(
            permutation_pool(self.structure, PAPER_POOL, self.seed, "ae-paper-pool")
        )
        preflight.check_memory(self)

    # ------------------------------------------------------------------ schedule
    def lr_at(self, step: int) -> float:
        """Linear warm-up over ``train.warmup`` of all steps, then cosine decay to 0."""
        peak, warm = (
            self.config["train"]["lr"],
            int(self.config["train"]["warmup"] * self.total_steps),
        )
        if step < warm:
            return peak * (step + 1) / warm
        progress = (step - warm) / max(self.total_steps - warm, 1)
        return peak * 0.5 * (1.0 + math.cos(math.pi * min(progress, 1.0)))

    # ------------------------------------------------------------------ one batch
    def losses(
        self, split: Split, rows: np.ndarray, epoch: int, batch: int
    ) -> dict[str, torch.Tensor]:
        """Every loss term of one batch of ``split`` (``rows``: sample numbers in the split)."""
        flat = split.flat[torch.from_numpy(rows)].to(self.device)
        samples = torch.from_numpy(rows)
        inputs, targets = [], []
        for view in range(self.views):
            augmented, before = self.augment(flat, samples, epoch, view)
            inputs.append(augmented)
            targets.append(augmented if self.config["data"]["target"] == "view" else before)
        x, y = torch.cat(inputs), torch.cat(targets)
        tokens, wanted = self.plan.tokenize(x), self.plan.tokenize(y)
        ids, mask, slot_mean, slot_std = self.window(samples, epoch)
        if ids is not None:
            tokens, wanted = _take(tokens, ids), _take(wanted, ids)
        z = self.model.encode(tokens, ids)
        zero = torch.zeros((), device=self.device)
        terms = {"contrast": zero, "structural": zero, "behaviour": zero}
        if self.head is not None:
            embedded = self.head(self.model.embed(z))
            a, b = embedded.chunk(2)
            terms["contrast"] = CONTRAST[self.loss_cfg["contrast"]](
                a, b, self.loss_cfg["temperature"]
            )
        if self.gamma < 1:
            out = self.model.decode(z, ids)
            terms["structural"] = RECONSTRUCTION[self.loss_cfg["reconstruction"]](
                out, wanted, mask, mean=slot_mean, std=slot_std
            )
            if self.beta < 1:
                terms["behaviour"] = self.behaviour(out, y, split, rows, epoch, batch)
        terms["loss"] = composite(
            self.gamma, self.beta, terms["contrast"], terms["structural"], terms["behaviour"]
        )
        return terms

    def window(self, samples: torch.Tensor, epoch: int):
        """Token numbers of each sample's training window (sequential model), or None."""
        size = getattr(self.model, "window", self.plan.shape[0])
        n = self.plan.shape[0]
        if size >= n:
            return None, self.mask, self.slot_mean, self.slot_std
        keys = sample_keys(self.seed, samples, 0, "ae-window")
        start = (hashed_uniform(keys, epoch, 0, (1,))[:, 0] * (n - size + 1)).long()
        ids = (start[:, None] + torch.arange(size)).repeat(self.views, 1).to(self.device)
        return ids, self.mask[ids], self.slot_mean[0][ids], self.slot_std[0][ids]

    def behaviour(self, out, y, split: Split, rows, epoch: int, batch: int) -> torch.Tensor:
        """L_B: the reconstructed vs the target networks' outputs on this batch's queries."""
        queries = self.queries.draw(epoch, batch, self.device)
        reconstructed = self.norm.invert(self.plan.detokenize(out))
        with torch.no_grad():
            reference = self.norm.invert(y)
        activations = np.tile(split.activations[rows], self.views)
        fn = BEHAVIOUR[self.loss_cfg["behaviour"]]
        total = torch.zeros((), device=self.device)
        temperature = self.loss_cfg["behaviour_temperature"]
        plan = self.zoo.plan
        with torch.no_grad():
            originals = network_outputs(plan, activations, reference, queries)
        reconstructions = network_outputs(plan, activations, reconstructed, queries)
        for (members, logits), (_, original) in zip(reconstructions, originals):
            share = len(members) / len(activations)
            total = total + share * fn(logits, original, temperature=temperature)
        return total

    # ------------------------------------------------------------------ epochs
    def train_epoch(self, epoch: int) -> dict[str, float]:
        self.modules.train()
        train = self.splits["train"]
        order = torch.randperm(len(train), generator=generator(self.seed, f"ae-order:{epoch}"))
        sums = dict.fromkeys(TERMS, 0.0)
        fault = _fault_point()
        clip = self.config["train"]["clip"]
        for batch in range(self.steps_per_epoch):
            rows = order[batch * self.batch : (batch + 1) * self.batch].numpy()
            for group in self.optimizer.param_groups:
                group["lr"] = self.lr_at(self.step)
            terms = self.losses(train, rows, epoch, batch)
            loss = float(terms["loss"].detach())
            if not math.isfinite(loss):
                self.diverged(f"training loss {loss} at epoch {epoch}, step {batch + 1}", epoch)
            self.optimizer.zero_grad(set_to_none=True)
            terms["loss"].backward()
            if clip > 0:
                nn.utils.clip_grad_norm_(self.modules.parameters(), clip)
            self.optimizer.step()
            self.step += 1
            for name in TERMS:
                sums[name] += float(terms[name].detach())
            if self.bar is not None:
                self.bar.update(1)
                self.bar.set_postfix(epoch=epoch, loss=f"{loss:.4g}")
            if fault == (epoch, batch):
                os.kill(os.getpid(), signal.SIGKILL)
        if not all(bool(torch.isfinite(p).all()) for p in self.modules.parameters()):
            self.diverged(f"non-finite weights after epoch {epoch}'s last step", epoch)
        return {f"train_{name}": value / self.steps_per_epoch for name, value in sums.items()}

    def diverged(self, what: str, epoch: int) -> None:
        """Stop: a NaN/inf loss or weight is never checkpointed, embedded or published."""
        raise ModelZooError(
            f"train-ae diverged: {what}; try a lower train.lr (it is "
            f"{self.config['train']['lr']:g}). {self.work} keeps epoch {epoch - 1}'s state: "
            "delete it to start over with other settings"
        )

    @torch.no_grad()
    def validate(self) -> dict[str, float]:
        """Every loss term's mean over the validation states; NaN when there are too few (only
        with train.select=final). Batches of ``batch`` to ``2 * batch - 1`` states, so none is
        left with a single state that NT-Xent could not score."""
        self.modules.eval()
        val = self.splits["val"]
        if len(val) < self.min_states:
            return {f"val_{name}": math.nan for name in TERMS}
        sums = dict.fromkeys(TERMS, 0.0)
        for batch, rows in enumerate(np.array_split(np.arange(len(val)), max(len(val) // self.batch, 1))):
            terms = self.losses(val, rows, 0, batch)
            for name in TERMS:
                sums[name] += float(terms[name]) * rows.size
        return {f"val_{name}": value / len(val) for name, value in sums.items()}

    @torch.no_grad()
    def reconstruct(self, flat: torch.Tensor) -> torch.Tensor:
        """Clean reconstruction (eval mode) of AE-space states ``[S, P]``, in AE space."""
        self.modules.eval()
        parts = []
        for chunk in flat.split(EVAL_CHUNK):
            tokens = self.plan.tokenize(chunk.to(self.device))
            parts.append(self.plan.detokenize(self.model.decode(self.model.encode(tokens))).cpu())
        return torch.cat(parts) if parts else flat.clone()

    def r2(self) -> dict[str, float]:
        """modelzoo's R^2 of every split (overall, per layer) and the 2021 code's on val/test."""
        row: dict[str, float] = {}
        for name in SPLITS:
            split = self.splits[name]
            accumulate, paper = (
                R2(self.layer_of, self.layer_names),
                R2(self.layer_of, self.layer_names),
            )
            target = self.norm.invert(split.flat.numpy())
            accumulate.add(target, self.norm.invert(self.reconstruct(split.flat).numpy()))
            row[f"r2_{name}"] = accumulate.overall()
            for layer, value in accumulate.per_layer().items():
                row[f"r2_{name}_{layer}"] = value
            if name != "train":
                samples = torch.arange(len(split))
                u = hashed_uniform(
                    sample_keys(self.seed, samples, 0, "ae-paper"), 0, PAPER_POOL_PICK, (1,)
                )
                pick = (u[:, 0] * PAPER_POOL).long().clamp_max(PAPER_POOL - 1)
                permuted = split.flat.gather(1, self.paper_pool[pick])
                paper.add(
                    self.norm.invert(permuted.numpy()),
                    self.norm.invert(self.reconstruct(permuted).numpy()),
                )
                row[f"paper_r2_{name}"] = paper.overall()
        return row

    def run(self, progress: bool = True) -> None:
        from tqdm.auto import tqdm

        self.bar = tqdm(
            total=self.total_steps,
            initial=self.step,
            desc="train-ae",
            unit="step",
            disable=not progress,
            dynamic_ncols=True,
        )
        every = self.config["train"]
        flushed = torch.set_flush_denormal(True)  # Adam's moments turn denormal: 30x slower steps
        try:
            for epoch in range(self.epoch + 1, self.epochs + 1):
                started = time.perf_counter()
                with torch.random.fork_rng(devices=_cuda_index(self.device)):
                    torch.manual_seed(derive_seed(self.seed, f"ae-dropout:{epoch}"))
                    row: dict[str, float] = {"epoch": epoch, **self.train_epoch(epoch)}
                row.update(self.validate())
                scored = len(self.splits["val"]) >= self.min_states  # else NaN by design
                if scored and not math.isfinite(row["val_loss"]):
                    self.diverged(f"validation loss {row['val_loss']} after epoch {epoch}", epoch)
                last = epoch == self.epochs
                if epoch % every["eval_every"] == 0 or last:
                    row.update(self.r2())
                row["lr"] = self.lr_at(self.step - 1)
                row["seconds"] = time.perf_counter() - started
                self.epoch = epoch
                self.log.append(row)
                self.bar.set_postfix(
                    epoch=epoch,
                    loss=f"{row['train_loss']:.4g}",
                    val=f"{row['val_loss']:.4g}",
                    r2_val=f"{row.get('r2_val', float('nan')):.3f}",
                )
                self.save_epoch(row, last)
        finally:
            if flushed:
                torch.set_flush_denormal(False)
            self.bar.close()

    # ------------------------------------------------------------------ checkpoints
    def weights(self) -> dict[str, torch.Tensor]:
        return {k: v for k, v in self.modules.state_dict().items()}

    def save_epoch(self, row: dict[str, float], last: bool) -> None:
        folder.write_parquet(self.work / folder.LOG, pd.DataFrame(self.log))
        if row["val_loss"] < self.best_val:
            self.best_val, self.best_epoch = row["val_loss"], self.epoch
            folder.write_tensors(self.work / folder.BEST, self.weights(), self.epoch)
        every = self.config["train"]["checkpoint_every"]
        if every and self.epoch % every == 0:
            (self.work / folder.CHECKPOINTS).mkdir(exist_ok=True)
            path = self.work / folder.CHECKPOINTS / f"epoch_{self.epoch:04d}.safetensors"
            folder.write_tensors(path, self.weights(), self.epoch)
        if last:
            folder.write_tensors(self.work / folder.FINAL, self.weights(), self.epoch)
        moments, settings = folder.optimizer_tensors(self.optimizer)
        folder.write_tensors(self.work / folder.STATE, {**self.weights(), **moments}, self.epoch)
        folder.write_json(
            self.work / folder.STATE_JSON,
            {
                "epoch": self.epoch,
                "step": self.step,
                "best_val": self.best_val,
                "best_epoch": self.best_epoch,
                "optimizer": settings,
            },
        )

    def resume(self) -> bool:
        """Continue from the resume state in the work folder, if there is one."""
        if not (self.work / folder.STATE_JSON).is_file():
            return False
        state = folder.read_json(self.work / folder.STATE_JSON)
        tensors = folder.read_tensors(self.work / folder.STATE)
        weights = {k: v for k, v in tensors.items() if not k.startswith("optim.")}
        self.modules.load_state_dict(weights)
        folder.restore_optimizer(self.optimizer, tensors, state["optimizer"])
        self.epoch, self.step = state["epoch"], state["step"]
        self.best_val, self.best_epoch = state["best_val"], state["best_epoch"]
        log = folder.read_parquet(self.work / folder.LOG)
        self.log = log[log["epoch"] <= self.epoch].to_dict("records")
        return True


def _take(tokens: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
    return tokens.gather(1, ids[:, :, None].expand(-1, -1, tokens.shape[2]))


def _cuda_index(device: torch.device) -> list[int]:
    return [device.index or 0] if device.type == "cuda" else []


def _fault_point() -> tuple[int, int] | None:
    """The test seam ``MODELZOO_HYPERREP_FAULT=EPOCH:BATCH`` (kill -9 after that step)."""
    value = os.environ.get(FAULT_ENV)
    if not value:
        return None
    epoch, _, batch = value.partition(":")
    return int(epoch), int(batch or 0)
