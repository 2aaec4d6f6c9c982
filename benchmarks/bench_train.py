"""Training throughput: the classic DCGAN recipe as a plain fp32 loop vs medgan's trainer, same run.

Both train the same DCGAN architecture (ngf = ndf = 64, nz = 100) at the same batch size on the same MNI152
axial slices at 64x64, with BCE-on-logits and Adam(2e-4, beta1 0.5). The reference is the loop of
pytorch/examples' dcgan written plainly (NCHW, fp32, separate real and fake passes, D's weight gradients
computed in the G step). medgan's trainer adds channels_last, frozen D weights in the G step and bf16 autocast
where the CPU runs bf16 natively. The two are timed alternately, in rounds, and the medians are compared.

    python benchmarks/bench_train.py [--steps 30] [--rounds 3] [--batch-size 64]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time

import torch
import torch.nn.functional as F

from medgan.config import DataConfig, from_dict, recipe
from medgan.data import load_slices
from medgan.networks.dcgan import DCGANDiscriminator, DCGANGenerator
from medgan.training.loop import train


def reference_loop(images: torch.Tensor, steps: int, batch_size: int) -> float:
    """pytorch/examples-style DCGAN loop in plain fp32; returns images/s over ``steps`` after 3 warm-up steps."""
    generator = DCGANGenerator(resolution=64, latent_dim=100, channels=64)
    discriminator = DCGANDiscriminator(resolution=64, channels=64)
    optimizer_d = torch.optim.Adam(discriminator.parameters(), lr=2e-4, betas=(0.5, 0.999))
    optimizer_g = torch.optim.Adam(generator.parameters(), lr=2e-4, betas=(0.5, 0.999))
    started = 0.0
    for step in range(steps + 3):
        if step == 3:
            started = time.perf_counter()
        real = images[torch.randint(0, len(images), (batch_size,))]
        ones, zeros = torch.ones(batch_size), torch.zeros(batch_size)
        # (1) Update D: maximize log D(x) + log(1 - D(G(z)))
        discriminator.zero_grad()
        loss_real = F.binary_cross_entropy_with_logits(discriminator(real), ones)
        loss_real.backward()
        fake = generator(torch.randn(batch_size, 100))
        loss_fake = F.binary_cross_entropy_with_logits(discriminator(fake.detach()), zeros)
        loss_fake.backward()
        optimizer_d.step()
        # (2) Update G: maximize log D(G(z))
        generator.zero_grad()
        loss_g = F.binary_cross_entropy_with_logits(discriminator(fake), ones)
        loss_g.backward()
        optimizer_g.step()
    return steps * batch_size / (time.perf_counter() - started)


def medgan_trainer(data, steps: int, batch_size: int, precision: str = "auto") -> float:
    """medgan's trainer on the classic recipe; returns images/s measured by the loop (after 3 warm-up steps)."""
    config = from_dict({"data": {"source": "mni152"},
                        "train": {"steps": steps + 3, "batch_size": batch_size, "log_every": 1,
                                  "sample_every": 10**6, "checkpoint_every": 10**6, "precision": precision}},
                       base=recipe("dcgan"))
    with tempfile.TemporaryDirectory() as run_dir:
        train(config, run_dir, progress=False, data=data)
        from medgan.visuals import read_jsonl

        records = read_jsonl(f"{run_dir}/losses.jsonl")[3:]
    seconds = sum(batch_size / r["images_per_s"] for r in records)
    return len(records) * batch_size / seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=64)
    args = parser.parse_args()
    torch.manual_seed(0)
    data = load_slices(DataConfig(source="mni152", resolution=64), progress=False)
    print(f"data: {len(data)} MNI152 axial slices at 64x64; batch {args.batch_size}; threads {torch.get_num_threads()}")
    reference, ours = [], []
    for round_index in range(args.rounds):
        reference.append(reference_loop(data.images, args.steps, args.batch_size))
        ours.append(medgan_trainer(data, args.steps, args.batch_size))
        print(f"round {round_index + 1}: reference {reference[-1]:.1f} img/s, medgan {ours[-1]:.1f} img/s")
    ref, med = statistics.median(reference), statistics.median(ours)
    print(f"plain fp32 DCGAN loop : {ref:.1f} images/s (median of {args.rounds})")
    print(f"medgan trainer        : {med:.1f} images/s (median of {args.rounds})")
    print(f"ratio                 : {med / ref:.2f}x (target >= 1.5x)")


if __name__ == "__main__":
    main()
