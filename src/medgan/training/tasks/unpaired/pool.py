"""CycleGAN's image pool: D is also shown generator outputs from earlier steps, which damps oscillation.

Shrivastava et al. 2017 (SimGAN) introduced it; Zhu et al. 2017 keep 50 past fakes per discriminator. Until
the pool is full every fake is stored and returned; afterwards each fake is, with chance 1/2, swapped for a
random stored one (which is returned while the new fake takes its place), else returned as it is. The pool is
kept on the CPU and its content is checkpointed, so a resumed run continues exactly.
"""

from __future__ import annotations

from typing import Any

import torch


class ImagePool:
    """A pool of at most ``size`` past generator outputs (``size`` 0: fakes pass through)."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.images: list[torch.Tensor] = []

    def query(self, fakes: torch.Tensor, rng: torch.Generator) -> torch.Tensor:
        """The images D sees for a batch of ``fakes`` ``[N, C, H, W]`` (detached), on the fakes' device."""
        if self.size <= 0:
            return fakes
        chosen = []
        for fake in fakes:
            stored = fake.detach().cpu().clone()
            if len(self.images) < self.size:
                self.images.append(stored)
                chosen.append(fake)
            elif float(torch.rand((), generator=rng)) < 0.5:
                index = int(torch.randint(0, self.size, (), generator=rng))
                chosen.append(self.images[index].to(fakes.device))
                self.images[index] = stored
            else:
                chosen.append(fake)
        return torch.stack(chosen)

    def state_dict(self) -> dict[str, Any]:
        return {"size": self.size, "images": torch.stack(self.images) if self.images else None}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        images = state["images"]
        self.images = [] if images is None else [image.clone() for image in images][: self.size]
