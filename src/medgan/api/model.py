"""``Model``: a trained run, model bundle or zoo model, loaded for sampling or translation."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch

from medgan.api.images import Images
from medgan.errors import ConfigError


class Model:
    """A loaded model: ``sample`` and ``invert`` for noise-to-image runs, ``translate`` for image-to-image runs.

    Made by ``medgan.load``. ``kind`` says which: ``"noise-to-image"`` or ``"image-to-image"``.

    Attributes:
        source: the run directory or bundle folder it was loaded from.
        inference: the underlying inference model (``medgan.inference.NoiseToImage`` or ``Translator``).
    """

    def __init__(self, source: Path, inference: Any, which: str = "best") -> None:
        self.source = source
        self.inference = inference
        self.which = which
        self._directions: dict[str, Any] = {}  # other directions of an unpaired run, loaded once each

    def __repr__(self) -> str:
        return f"medgan.Model({self.kind}, task {self.task}, {self.resolution} px, from {self.source})"

    @property
    def kind(self) -> str:
        """``"noise-to-image"`` or ``"image-to-image"``."""
        from medgan.inference import NoiseToImage

        return "noise-to-image" if isinstance(self.inference, NoiseToImage) else "image-to-image"

    @property
    def task(self) -> str:
        """The task the model was trained with."""
        return str(self.inference.config.task)

    @property
    def resolution(self) -> int:
        """The training tile side in pixels."""
        return int(self.inference.spec.resolution)

    @property
    def class_names(self) -> tuple[str, ...]:
        """The classes of a conditional model (else empty)."""
        return tuple(self.inference.spec.class_names)

    @property
    def attribute_names(self) -> tuple[str, ...]:
        """The continuous attributes of a model trained with attribute columns (else empty)."""
        return tuple(self.inference.spec.attribute_names)

    @property
    def input_domains(self) -> tuple[str, ...]:
        """A translator's input domains, in order (empty for noise-to-image models)."""
        return tuple(getattr(self.inference, "input_domains", ()))

    # -------------------------------------------------------------------------------------------------------

    def sample(self, n: int, seed: int = 0, class_name: str | None = None,
               attributes: Mapping[str, float] | None = None) -> Images:
        """``n`` synthetic images in physical units, as ``medgan sample`` makes them (same seed, same images).

        Args:
            n: number of images.
            seed: noise seed.
            class_name: conditional models: the class (default: the classes in turn).
            attributes: raw attribute values by name (e.g. ``{"age": 60}``); others take their training mean.

        Returns:
            ``Images`` with ``array`` ``[n, H, W]`` (``[n, C, H, W]`` for several channels).

        Raises:
            ConfigError: not a noise-to-image model, a bad count, class or attribute.
        """
        from medgan.inference.noise import check_sample_count
        from medgan.inference.sampling import class_labels

        if self.kind != "noise-to-image":
            raise ConfigError(f"this model (task {self.task}) translates images: use .translate(image)", self.source)
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ConfigError(f"n must be a positive integer, got {n!r}")
        check_sample_count(n, self.resolution, "n")
        model = self.inference
        values = dict(attributes or {})
        unit = model.generate(n, seed=seed, class_name=class_name, attributes=values)
        physical = np.asarray(model.mapping.to_physical(unit.numpy()), dtype=np.float32)
        labels = class_labels(model, n, class_name)
        classes = None if labels is None else tuple(model.class_names[int(i)] for i in labels)

        def write(out: Path, fmt: str) -> list[Path]:
            from medgan.card import export_card
            from medgan.export import output_folder
            from medgan.inference.sampling import write_samples
            from medgan.run import check_output_folder

            check_output_folder(output_folder(out, fmt), "out")
            record = {"command": "medgan.Model.sample", "images": n, "seed": seed, "format": fmt,
                      "class": class_name, "attributes": values or None, "privacy_filter": {"enabled": False}}
            metadata = {"synthetic": True, "images": n, "seed": seed, "class": class_name,
                        "privacy_filter": {"enabled": False}}
            return write_samples(unit, model, out, fmt, metadata=metadata, card=export_card(self.source, record))

        array = physical[:, 0] if physical.shape[1] == 1 else physical
        return Images(array, tuple(float(s) for s in model.spacing), model.mapping.unit, True, None, classes,
                      str(self.source), _writer=write)

    def invert(self, image: Any, class_name: str | None = None, steps: int = 300, restarts: int = 4,
               encoder: str | Path | None = None, slice_index: int | None = None,
               spacing: tuple[float, ...] | None = None, seed: int = 0, layer_steps: int = 0) -> Any:
        """The latent whose generated image reproduces ``image``, as ``medgan invert`` finds it (same defaults).

        Args:
            image: a path (PNG, NPY, NIfTI, DICOM file or series folder) or an array in physical units of the
                model's modality: 2D ``[H, W]`` or 3D ``[X, Y, Z]`` (sliced along the run's axis).
            class_name: conditional models: the image's class (default: every class is tried).
            steps: optimizer steps per start (0 with ``encoder``: the encoder's guess alone).
            restarts: starts per image (and class).
            encoder: an encoder file from ``medgan train-encoder``, whose guess is the first start.
            slice_index: volumes: the slice (default: the middle one of those training would keep).
            spacing: mm per pixel of an array input (default 1 mm).
            seed: seed of the random starts.
            layer_steps: then refine the reconstruction on G's feature maps (``--layer-steps``; 0: off).

        Returns:
            ``medgan.api.inversion.Inversion``: reconstruction, target, difference, latent, SSIM, PSNR; ``save``.

        Raises:
            ConfigError: not a noise-to-image model, a 3D model, a class for an unconditional model.
            DataError: an unreadable image, or one of another modality.
        """
        from medgan.api.inversion import invert_image
        from medgan.inference.inversion import InversionConfig

        if self.kind != "noise-to-image":
            raise ConfigError(f"this model (task {self.task}) translates images; it has no generator from noise to "
                              "invert", self.source)
        config = InversionConfig(steps=steps, restarts=restarts, seed=seed, layer_steps=layer_steps)
        config.check()
        volume = _volume(image, spacing, "image")
        return invert_image(self.inference, volume, self.source, class_name, config, encoder, slice_index)

    def explore(self, out: str | Path, directions: int = 5, steps: int = 7, span: float = 3.0, seed: int = 0,
                class_name: str | None = None) -> dict[str, Any]:
        """Writes the files ``medgan explore`` writes into the new or empty folder ``out`` (same defaults; ``span``
        is ``--range``) and returns ``explore.json``'s record (``medgan.inference.directions.explore``)."""
        from medgan.inference.directions import explore

        if self.kind != "noise-to-image":
            raise ConfigError(f"this model (task {self.task}) translates images; it has no latent space to explore",
                              self.source)
        return explore(self.source, out, directions, steps, span, seed, class_name, loaded=self.inference)

    def counterfactual(self, image: str | Path, to_class: str, out: str | Path, judge: str | Path | None = None,
                       steps: int = 300, restarts: int = 4, seed: int = 0, steer: int = 0) -> dict[str, Any]:
        """Writes what ``medgan counterfactual`` writes for ``image`` (a file or folder of images) as class
        ``to_class`` into the new or empty folder ``out`` (same defaults; ``steer`` is ``--steer``) and returns
        ``counterfactual.json``'s record (``medgan.evaluation.counterfactual``)."""
        from medgan.evaluation.counterfactual import counterfactual_file
        from medgan.inference.inversion import InversionConfig

        if self.kind != "noise-to-image":
            raise ConfigError(f"this model (task {self.task}) translates images; it has no classes to change",
                              self.source)
        config = InversionConfig(steps=steps, restarts=restarts, seed=seed)
        return counterfactual_file(self.source, image, out, to_class, config, judge, progress=False, steer_steps=steer)

    def translate(self, image: Any, direction: str | None = None,
                  domains: Mapping[str, Any] | None = None, spacing: tuple[float, ...] | None = None) -> Images:
        """Translates one image or volume, in physical units, as ``medgan translate`` does.

        Args:
            image: a path (NIfTI, DICOM file or series folder, PNG, npy) or an array in the input domain's
                physical units (HU for CT): 2D ``[H, W]`` or 3D ``[X, Y, Z]``, sliced along the run's axis.
            direction: runs that translate both ways: ``"a2b"`` (default) or ``"b2a"``.
            domains: the run's other input domains by name (e.g. ``{"phantom-t2": t2_array}``), same kinds.
            spacing: mm per pixel of an array input (default 1 mm).

        Returns:
            ``Images`` of the input's shape (``synthetic`` False: derived from a real image), with its affine.

        Raises:
            ConfigError: not an image-to-image model, or missing inputs. DataError: unreadable input.
        """
        from medgan.inference.files import translate_volume

        model = self._translator(direction)
        inputs = {model.input_domains[0]: image, **dict(domains or {})}
        unknown = [name for name in inputs if name not in model.input_domains]
        if unknown:
            raise ConfigError(f"unknown input domain {unknown[0]!r}; this model takes {', '.join(model.input_domains)}")
        volumes = {name: _volume(value, spacing, name) for name, value in inputs.items()}
        lead = volumes[model.input_domains[0]]
        array = translate_volume(model, volumes)
        unit = model.spec.domain(model.target).mapping.unit
        return Images(array, tuple(float(s) for s in lead.spacing), unit, False, lead.affine, None, str(self.source),
                      getattr(lead, "uneven", None))

    def translate_files(self, inputs: str | Path | Mapping[str, str | Path], out: str | Path, format: str = "same",
                        direction: str | None = None, progress: bool = False) -> list[Path]:  # noqa: A002
        """``medgan translate`` on files: a file, a folder of files or a DICOM series into ``out``, geometry kept.

        Args:
            inputs: the path of the first input domain, or paths by input domain name.
            out: the output folder.
            format: "same" (the input's kind), "nifti", "dicom", "png16" or "npy".
            direction: runs that translate both ways: "a2b" (default) or "b2a".
            progress: progress bars.

        Returns:
            Every file written, ``DATA_CARD.json`` included.
        """
        from medgan.card import export_card, write_card
        from medgan.inference.files import translate_path
        from medgan.run import check_output_folder

        model = self._translator(direction)
        paths = dict(inputs) if isinstance(inputs, Mapping) else {model.input_domains[0]: inputs}
        check_output_folder(out, "out")
        card = export_card(self.source, {"command": "medgan.Model.translate_files", "format": format,
                                         "direction": direction,
                                         "note": "derived from the input images: as private as they are"})
        written = translate_path(model, paths, out, format, progress=progress)
        card_path = write_card(out, {**card, "export": {**card["export"], "files": len(written)}})
        return [*written, card_path]

    def _translator(self, direction: str | None) -> Any:
        from medgan.inference import load_model

        if self.kind != "image-to-image":
            raise ConfigError(f"this model (task {self.task}) generates images from noise: use .sample(n)",
                              self.source)
        if direction is None or direction == getattr(self.inference, "direction", None):
            return self.inference
        if direction not in self._directions:
            self._directions[direction] = load_model(self.source, self.which, direction=direction)
        return self._directions[direction]


def _volume(value: Any, spacing: tuple[float, ...] | None, name: str) -> Any:
    """A reader ``Volume`` for a path or an array in physical units."""
    from medgan.data.readers import read_volume
    from medgan.data.readers.base import Volume
    from medgan.errors import DataError

    if isinstance(value, (str, Path)):
        return read_volume(Path(value))
    if isinstance(value, Images):
        if value.affine is not None and value.array.ndim in (2, 3) and spacing is None:
            # A translated image keeps its orientation: the same slicing as the file it came from.
            array = np.asarray(value.array, dtype=np.float32)
            return Volume(array, value.affine, tuple(value.spacing), None, Path(f"<array {name}>"), "array")
        spacing = spacing or value.spacing
        value = value.array
    array = np.asarray(value.numpy() if isinstance(value, torch.Tensor) else value, dtype=np.float32)
    if array.ndim not in (2, 3) or not np.isfinite(array).all():
        raise DataError(f"input {name!r} must be a finite 2D or 3D array in physical units, got shape "
                        f"{array.shape}")
    spacing = tuple(float(s) for s in (spacing or (1.0,) * array.ndim))[: array.ndim]
    if len(spacing) != array.ndim:
        raise ConfigError(f"spacing needs {array.ndim} values for a {array.ndim}D input, got {spacing}")
    affine = np.diag([*spacing, *(1.0,) * (3 - array.ndim), 1.0])
    return Volume(array, affine, spacing, None, Path(f"<array {name}>"), "array")
