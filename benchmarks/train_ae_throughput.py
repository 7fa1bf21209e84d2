"""Throughput of an AttN+t EcD training step (the `ecd` preset's model and losses) on two zoo shapes.

For the tetris MLP (100 parameters, 9 neuron tokens of up to 16 values) and CNN-small on 28x28 inputs (2,464
parameters, 48 tokens of up to 201 values), this times full training steps exactly as
``modelzoo train-ae --preset ecd`` takes them (two augmented views per state: permutation from a
pool of 120 + erasing, neuron tokens, encoder, decoder, projection head, NT-Xent + MSE, backward,
gradient clipping, AdamW) on random weights of the zoo's shape, and reports

* states per second (each state is augmented into 2 views; views/s is twice that),
* the step's FLOPs (``torch.utils.flop_counter``: matmuls, attention, forward and backward),
* the FLOP/s the step reaches, as a fraction of this machine's float32 matmul FLOP/s, measured in
  the same run (a square matmul of ``--matmul`` size, best of several),
* the same step of a plain-PyTorch AttN+t written the obvious way (``nn.TransformerEncoder`` of
  the same sizes, a compression token, tanh latent, MLP head, NT-Xent via ``cross_entropy``, masked
  MSE, AdamW) on already tokenised views, timed in the same run, and modelzoo's speed-up over it.
  The baseline skips augmentation and tokenising, which modelzoo's step includes, so the ratio
  understates modelzoo's advantage.

    python benchmarks/train_ae_throughput.py [--batch 500] [--steps 20] [--threads N] [--device cpu]
"""

from __future__ import annotations

import argparse
import itertools
import platform
import time

SHAPES = {"tetris": ("tetris_mlp", (1, 4, 4), 4), "cnn_small": ("cnn_small", (1, 28, 28), 10)}


def matmul_flops(size: int, device, repeats: int = 10) -> float:
    """Best float32 matmul FLOP/s of ``size x size`` products on ``device``."""
    import torch

    a, b = torch.randn(size, size, device=device), torch.randn(size, size, device=device)
    best = float("inf")
    for _ in range(repeats):
        _sync(device)
        started = time.perf_counter()
        (a @ b).sum().item()
        best = min(best, time.perf_counter() - started)
    return 2.0 * size**3 / best


def _sync(device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


def plain_attn_t(tokens: int, width: int, config: dict, device):
    """The baseline: AttN+t of the ``ecd`` sizes in plain PyTorch, and one training step for it."""
    import torch
    from torch import nn
    from torch.nn import functional as F

    m, p = config["model"], config["projection"]

    def encoder() -> nn.TransformerEncoder:
        layer = nn.TransformerEncoderLayer(
            m["d_model"], m["heads"], m["ff_dim"], m["dropout"], batch_first=True
        )
        return nn.TransformerEncoder(layer, m["blocks"], enable_nested_tensor=False)

    head_layers: list[nn.Module] = []
    sizes = [m["latent"]] + [p["hidden"]] * (p["layers"] - 1) + [p["out"]]
    for a, b in itertools.pairwise(sizes):
        head_layers += [nn.Linear(a, b), nn.ReLU()]
    net = nn.ModuleDict({
        "embed": nn.Linear(width, m["d_model"]), "encoder": encoder(),
        "to_z": nn.Linear(m["d_model"], m["latent"]), "from_z": nn.Linear(m["latent"], tokens * m["d_model"]),
        "decoder": encoder(), "out": nn.Linear(m["d_model"], width),
        "head": nn.Sequential(*head_layers[:-1]),
    }).to(device).train()  # fmt: skip
    compression = nn.Parameter(torch.randn(1, 1, m["d_model"], device=device))
    positions = nn.Parameter(torch.randn(1, tokens + 1, m["d_model"], device=device))
    parameters = [*net.parameters(), compression, positions]
    optimizer = torch.optim.AdamW(parameters, lr=1e-4, weight_decay=1e-9)

    def step(x: torch.Tensor, mask: torch.Tensor) -> None:
        n = x.shape[0]
        h = torch.cat([compression.expand(n, -1, -1), net["embed"](x)], 1) + positions
        z = torch.tanh(net["to_z"](net["encoder"](h)[:, 0]))
        d = net["from_z"](z).view(n, tokens, m["d_model"]) + positions[:, 1:]
        y = net["out"](net["decoder"](d))
        recon = ((y - x).square() * mask).sum() / (mask.sum() * n)
        a, b = F.normalize(net["head"](z), dim=1).chunk(2)
        logits = torch.cat([a, b]) @ torch.cat([a, b]).T / config["loss"]["temperature"]
        logits = logits.fill_diagonal_(float("-inf"))
        half = n // 2
        labels = torch.cat([torch.arange(half, n), torch.arange(half)]).to(device)
        loss = 0.5 * F.cross_entropy(logits, labels) + 0.5 * recon
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(parameters, 1.0)
        optimizer.step()

    return step


def case(name: str, batch: int, steps: int, device) -> dict[str, float]:
    """Time ``steps`` EcD training steps of ``batch`` states of the ``name`` shape."""
    import torch
    from torch import nn
    from torch.utils.flop_counter import FlopCounterMode

    from modelzoo.architectures import plan_architecture
    from modelzoo.hyperrep.augment import BatchAugmenter
    from modelzoo.hyperrep.autoencoders import build_autoencoder
    from modelzoo.hyperrep.config import build_config
    from modelzoo.hyperrep.losses import composite, nt_xent, reconstruction_mse
    from modelzoo.hyperrep.models import ProjectionHead
    from modelzoo.tokens import WeightStructure

    architecture, shape, classes = SHAPES[name]
    structure = WeightStructure.from_plan(plan_architecture(architecture, shape, classes))
    config = build_config("ecd")
    torch.manual_seed(0)
    model = build_autoencoder(config["model"], structure)
    plan = type(model).token_plan(structure, config["model"])
    p = config["projection"]
    head = ProjectionHead(config["model"]["latent"], p["layers"], p["hidden"], p["out"])
    modules = nn.ModuleDict({"model": model, "head": head}).to(device).train()
    optimizer = torch.optim.AdamW(modules.parameters(), lr=1e-4, weight_decay=1e-9)
    augment = BatchAugmenter(structure, config["augment"], seed=0)
    mask = torch.from_numpy(plan.mask).to(device)
    data = torch.randn(batch * 4, structure.parameters)

    def step(number: int) -> None:
        rows = torch.arange(number * batch, (number + 1) * batch) % len(data)
        flat = data[rows].to(device)
        views = [augment(flat, rows, number, view)[0] for view in (0, 1)]
        x = torch.cat(views)
        tokens = plan.tokenize(x)
        z = model.encode(tokens)
        a, b = head(z).chunk(2)
        loss = composite(
            0.5, 1.0, nt_xent(a, b, 0.1), reconstruction_mse(model.decode(z), tokens, mask),
            torch.zeros((), device=device),
        )  # fmt: skip
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(modules.parameters(), 1.0)
        optimizer.step()

    flushed = torch.set_flush_denormal(True)  # as the trainer does
    for number in range(3):  # warm-up
        step(number)
    counter = FlopCounterMode(display=False)
    with counter:
        step(3)
    flops = float(counter.get_total_flops())
    _sync(device)
    started = time.perf_counter()
    for number in range(steps):
        step(4 + number)
    _sync(device)
    seconds = time.perf_counter() - started
    # the plain-PyTorch baseline on the same views, tokenised beforehand (not timed)
    plain = plain_attn_t(plan.shape[0], plan.shape[1], config, device)
    inputs = []
    for number in range(4):
        rows = torch.arange(number * batch, (number + 1) * batch)
        views = [augment(data[rows].to(device), rows, number, view)[0] for view in (0, 1)]
        inputs.append(plan.tokenize(torch.cat(views)).detach())
    for number in range(3):
        plain(inputs[number % 4], mask)
    _sync(device)
    started = time.perf_counter()
    for number in range(steps):
        plain(inputs[number % 4], mask)
    _sync(device)
    plain_seconds = time.perf_counter() - started
    if flushed:
        torch.set_flush_denormal(False)
    return {
        "plain_states_per_s": batch * steps / plain_seconds,
        "parameters": structure.parameters,
        "tokens": plan.shape[0],
        "states_per_s": batch * steps / seconds,
        "step_flops": flops,
        "flops_per_s": flops * steps / seconds,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch", type=int, default=500, help="states per step (ecd: 500)")
    parser.add_argument("--steps", type=int, default=20, help="timed steps per case")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default all)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--matmul", type=int, default=2048, help="matmul size for peak FLOP/s")
    parser.add_argument("--case", choices=[*SHAPES, "all"], default="all")
    args = parser.parse_args()

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    peak = matmul_flops(args.matmul, device)
    print(f"{platform.processor() or platform.machine()}, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads, device {device}; "
          f"float32 matmul {args.matmul}^2: {peak / 1e9:.1f} GFLOP/s")  # fmt: skip
    names = list(SHAPES) if args.case == "all" else [args.case]
    print(f"{'case':10} {'P':>6} {'tokens':>6} {'states/s':>9} {'views/s':>9} "
          f"{'GFLOP/step':>10} {'GFLOP/s':>8} {'of matmul':>9} {'plain st/s':>10} {'speed-up':>8}")  # fmt: skip
    for name in names:
        row = case(name, args.batch, args.steps, device)
        print(f"{name:10} {row['parameters']:6d} {row['tokens']:6d} {row['states_per_s']:9.0f} "
              f"{2 * row['states_per_s']:9.0f} {row['step_flops'] / 1e9:10.2f} "
              f"{row['flops_per_s'] / 1e9:8.1f} {row['flops_per_s'] / peak:9.1%} "
              f"{row['plain_states_per_s']:10.0f} "
              f"{row['states_per_s'] / row['plain_states_per_s']:7.2f}x")  # fmt: skip


if __name__ == "__main__":
    main()
