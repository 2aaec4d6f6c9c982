"""Synthetic-data cards and model bundles: a bundle of a run trained on real DICOM files with patient identifiers
holds none of them in any file and any encoding, samples exactly like its run, and refuses to load when a file
was changed; cards record provenance, modality, results and privacy; every writing command leaves one."""

import hashlib
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from medgan.card import (CARD_NAME, NO_GUARANTEE, NOT_FOR_DIAGNOSTIC_USE, WITHHELD, build_card, evaluation_card,
                         read_card, shareable_config)
from medgan.checkpoint import save_checkpoint
from medgan.cli import main
from medgan.config import from_dict
from medgan.data import IntensityMapping, SliceSet, load_slices
from medgan.data.spec import DataSpec, training_data_sha256
from medgan.inference import load_model
from medgan.inference.bundle import BUNDLE_FILES, WEIGHTS
from medgan.training.loop import train

from helpers import TINY, assert_one_error_line
from test_paired_task import paired_config

PATIENTS = (("Doe^Jane", "PID12345"), ("Roe^Richard", "PID67890"))
FOLDER = "Doe_Jane_PID12345_scans"  # a folder named after the patient: source paths are identifiers too
IDENTIFYING = ("PatientName", "PatientID", "PatientBirthDate", "StudyDate", "SeriesDate", "AcquisitionDate",
               "ContentDate", "InstitutionName", "ReferringPhysicianName", "StudyID", "AccessionNumber")


def _write_identified_dicoms(folder: Path) -> list[Path]:
    """Copies of pydicom's real CT_small.dcm with distinctive identifiers: 2 patients, 3 slices."""
    import pydicom
    from pydicom.data import get_testdata_file

    folder.mkdir(parents=True)
    paths = []
    for index, (name, patient_id) in enumerate((PATIENTS[0], PATIENTS[1], PATIENTS[0])):
        dataset = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
        dataset.PatientName, dataset.PatientID = name, patient_id
        dataset.PatientBirthDate, dataset.StudyDate, dataset.SeriesDate = "19450623", "19990317", "19990317"
        dataset.AccessionNumber, dataset.StudyID = f"ACC{7311 + index}", f"STUDY{7311 + index}"
        dataset.StudyInstanceUID = f"1.2.826.0.1.3680043.9.7311.1.{patient_id[-1]}"
        dataset.SeriesInstanceUID = f"1.2.826.0.1.3680043.9.7311.2.{index}"
        dataset.SOPInstanceUID = dataset.file_meta.MediaStorageSOPInstanceUID = f"1.2.826.0.1.3680043.9.7311.3.{index}"
        dataset.PixelData = (dataset.pixel_array + 7 * index).astype(dataset.pixel_array.dtype).tobytes()
        path = folder / f"{patient_id}_slice{index}.dcm"
        dataset.save_as(path)
        paths.append(path)
    return paths


def _dicom_needles(paths: list[Path]) -> dict[str, bytes]:
    """Every identifying value of the files as raw DICOM bytes: patient fields, dates and non-standard UIDs."""
    import pydicom

    needles = {}
    for path in paths:
        dataset = pydicom.dcmread(path)
        for element in dataset.iterall():
            wanted = element.keyword in IDENTIFYING or (element.VR == "UI" and not str(element.value).startswith(
                "1.2.840.10008"))  # standard SOP class / transfer syntax UIDs identify nobody
            if wanted and str(element.value).strip():
                raw = dataset.get_item(element.tag)
                value = raw.value if isinstance(raw.value, bytes) else str(element.value).encode("ascii")
                needles[f"{element.keyword}={element.value}"] = value.rstrip(b"\x00 ")
    return needles


def _encodings(text: str) -> list[bytes]:
    return [text.encode(codec) for codec in ("utf-8", "latin-1", "utf-16-le", "utf-16-be")] + \
        [json.dumps(text)[1:-1].encode("utf-8")]


def _leaks(where: Path, needles: dict[str, bytes], texts: list[str], allowed: bytes = b"\0" * 64) -> list[str]:
    """``file: needle`` for every needle (raw bytes, or text in several encodings, case-insensitive) in any file
    below the folder ``where`` (or in the file ``where``), after removing ``allowed`` (text a file may hold)."""
    patterns = {name: [value] for name, value in needles.items()}
    for text in texts:
        patterns[text] = _encodings(text) + _encodings(text.replace("^", " "))
    found = []
    for path in [where] if where.is_file() else sorted(p for p in where.rglob("*") if p.is_file()):
        haystack = path.read_bytes().lower().replace(allowed.lower(), b"")
        found += [f"{path.name}: {name}" for name, forms in patterns.items()
                  if any(form.lower() in haystack for form in forms if len(form) >= 6)]
    return found


@pytest.fixture(scope="module")
def dicom_run(tmp_path_factory):
    """A run trained from a relative path on identified DICOMs (cwd = the data's parent), and its bundle."""
    root = tmp_path_factory.mktemp("cards")
    paths = _write_identified_dicoms(root / FOLDER)
    previous = os.getcwd()
    os.chdir(root)
    try:
        assert main(["train", "--data", FOLDER, "--out", "run", "--steps", "2", *TINY[:2], "--batch-size", "2",
                     *TINY[4:], "--set", "train.eval_every=0"]) == 0
        assert main(["bundle", "--run", "run", "--out", "bundle"]) == 0
    finally:
        os.chdir(previous)
    texts = [str(root / FOLDER), FOLDER, f"{FOLDER}/{paths[0].name}", *(p.name for p in paths),
             *(p.stem for p in paths), *(name for pair in PATIENTS for name in pair)]
    return {"root": root, "run": root / "run", "bundle": root / "bundle", "paths": paths,
            "needles": _dicom_needles(paths), "texts": texts}


def test_the_search_finds_identifiers_where_they_are(dicom_run):
    """Positive controls: the DICOM files hold every needle, and the run keeps its source path privately."""
    needles = dicom_run["needles"]
    assert {"PatientName=Doe^Jane", "PatientID=PID67890", "StudyDate=19990317", "PatientBirthDate=19450623",
            "InstitutionName=JFK IMAGING CENTER", "StudyInstanceUID=1.2.826.0.1.3680043.9.7311.1.5"} <= set(needles)
    found = {leak.split(": ", 1)[1] for leak in _leaks(dicom_run["root"] / FOLDER, needles, [])}
    assert found == set(needles)  # every identifier is in the DICOM files, and the search sees it there
    run_leaks = _leaks(dicom_run["run"], {}, [FOLDER])
    assert any(leak.startswith("config.yaml") for leak in run_leaks)
    assert any(leak.startswith(("best.pt", "latest.pt")) for leak in run_leaks)


def test_the_run_holds_no_dicom_identifier_and_the_bundle_holds_nothing_identifying(dicom_run):
    # The run keeps the data location it was given (config.yaml, checkpoints), here a folder named after a patient;
    # apart from that path, no file of the run directory holds a patient field, a date or a UID.
    run_files = _leaks(dicom_run["run"], dicom_run["needles"], [name for pair in PATIENTS for name in pair],
                       allowed=FOLDER.encode())
    assert run_files == []
    assert sorted(p.name for p in dicom_run["bundle"].iterdir()) == sorted([*BUNDLE_FILES, CARD_NAME])
    assert _leaks(dicom_run["bundle"], dicom_run["needles"], dicom_run["texts"]) == []


def test_sampling_outputs_hold_no_identifier(dicom_run, tmp_path):
    for fmt in ("dicom", "png"):
        assert main(["sample", "--model", str(dicom_run["bundle"]), "--n", "2", "--format", fmt,
                     "--out", str(tmp_path / fmt)]) == 0
        assert (tmp_path / fmt / CARD_NAME).is_file()
        assert _leaks(tmp_path / fmt, dicom_run["needles"], dicom_run["texts"]) == []


def test_bundle_carries_no_discriminator_optimizer_or_path(dicom_run):
    from safetensors import safe_open

    bundle = dicom_run["bundle"]
    with safe_open(bundle / WEIGHTS, "pt") as weights:
        names = list(weights.keys())
        assert weights.metadata() == {"format": "pt"}
    assert names and all(name.startswith("generator:") for name in names)
    assert json.loads((bundle / "inference.json").read_text()) == {"kind": "noise-to-image"}
    config = json.loads((bundle / "config.json").read_text())
    assert config["data"]["source"] == WITHHELD and from_dict(config).data.resolution == 32
    state = torch.load(dicom_run["run"] / "checkpoints" / "best.pt", weights_only=True)
    assert sum(t.numel() for t in state["inference"]["generator"].values()) == \
        sum(np.prod(weights_shape) for weights_shape in _shapes(bundle / WEIGHTS))


def _shapes(path: Path) -> list[tuple[int, ...]]:
    from safetensors import safe_open

    with safe_open(path, "pt") as weights:
        return [tuple(weights.get_slice(name).get_shape()) for name in weights.keys()]


def test_bundle_samples_exactly_like_its_run(dicom_run, tmp_path):
    run, bundle = load_model(dicom_run["run"]), load_model(dicom_run["bundle"])
    assert torch.equal(run.generate(6, seed=11), bundle.generate(6, seed=11))
    for source, name in ((dicom_run["run"], "from_run"), (dicom_run["bundle"], "from_bundle")):
        assert main(["sample", "--model", str(source), "--n", "3", "--seed", "5", "--format", "npy",
                     "--out", str(tmp_path / name)]) == 0
    assert np.array_equal(np.load(tmp_path / "from_run" / "samples.npy"),
                          np.load(tmp_path / "from_bundle" / "samples.npy"))


def test_a_half_precision_bundle_is_half_the_size_and_samples_alike(dicom_run, tmp_path):
    from safetensors import safe_open

    from medgan.inference.bundle import WEIGHTS, read_bundle, write_bundle

    write_bundle(dicom_run["run"], tmp_path / "half", half=True)
    full_size = (dicom_run["bundle"] / WEIGHTS).stat().st_size
    assert (tmp_path / "half" / WEIGHTS).stat().st_size < 0.55 * full_size
    with safe_open(tmp_path / "half" / WEIGHTS, "pt") as weights:
        dtypes = {weights.get_slice(name).get_dtype() for name in weights.keys()}
    assert "F16" in dtypes and "F32" not in dtypes
    assert read_bundle(tmp_path / "half").path.parent == tmp_path / "half"
    card = json.loads((tmp_path / "half" / "DATA_CARD.json").read_text())
    assert card["bundle"]["weights"] == "float16"
    full, half = load_model(dicom_run["run"]), load_model(tmp_path / "half")
    assert next(half.generator.parameters()).dtype == torch.float32  # cast back on loading
    a, b = full.generate(6, seed=11), half.generate(6, seed=11)
    assert not torch.equal(a, b) and (a - b).abs().max() < 0.02  # unit range [-1, 1]: within 1% of it


def test_card_records_provenance_modality_privacy_and_use(dicom_run):
    card = read_card(dicom_run["bundle"] / CARD_NAME)
    provenance = card["provenance"]
    data = load_slices(from_dict({"data": {"source": str(dicom_run["root"] / FOLDER), "resolution": 32}}).data,
                       progress=False)
    assert provenance["data_sha256"] == training_data_sha256(data) and len(provenance["data_sha256"]) == 64
    assert (provenance["subjects"], provenance["slices"], provenance["seed"], provenance["steps"]) == (2, 3, 0, 2)
    assert provenance["data_source"] == WITHHELD and provenance["config"]["data"]["source"] == WITHHELD
    assert card["modality"]["modality"] == "CT" and card["modality"]["intensity_mapping"]["unit"] == "HU"
    assert card["privacy"]["guarantee"] == NO_GUARANTEE and card["not_for_diagnostic_use"] is True
    assert NOT_FOR_DIAGNOSTIC_USE in card["intended_use"]
    selection = card["medigan"]["selection"]  # medigan's field names
    assert selection["modality"] == ["CT"] and selection["height"] == 32 and selection["privacy_preservation"] is None
    assert card["medigan"]["execution"]["extension"] == ".safetensors"
    files = card["bundle"]["files"]
    assert all(files[name] == hashlib.sha256((dicom_run["bundle"] / name).read_bytes()).hexdigest()
               for name in BUNDLE_FILES)


def test_export_card_says_whether_the_privacy_filter_was_on(dicom_run, tmp_path):
    assert main(["sample", "--run", str(dicom_run["run"]), "--n", "2", "--out", str(tmp_path / "s")]) == 0
    card = read_card(tmp_path / "s" / CARD_NAME)
    assert card["privacy"]["privacy_filter"] == "off" and card["export"]["images"] == 2
    assert card["provenance"]["data_sha256"] == read_card(dicom_run["bundle"] / CARD_NAME)["provenance"]["data_sha256"]


def test_dp_guarantee_and_results_reach_the_card(dicom_run):
    state = torch.load(dicom_run["run"] / "checkpoints" / "best.pt", weights_only=True)
    config, spec = from_dict(state["config"]), DataSpec.from_dict(state["data_spec"])
    privacy = {"epsilon": 9.7, "delta": 1e-5, "noise_multiplier": 0.9, "max_grad_norm": 1.0, "unit": "subject",
               "sample_rate": 0.1, "steps": 40, "accountant": "rdp", "mechanism": "DP-SGD"}
    results = {"evaluation": {"values": {"distribution.fid": 12.5}},
               "classification_utility": {"values": {"arms.synthetic.accuracy.mean": 0.8}}}
    card = build_card(config, spec, "noise-to-image", privacy, results)
    assert card["privacy"]["guarantee"].startswith("(9.7, 1e-05)-differential privacy per subject")
    assert card["medigan"]["selection"]["privacy_preservation"]["differential_privacy"]["epsilon"] == 9.7
    performance = card["medigan"]["selection"]["performance"]
    assert performance["FID"] == 12.5 and performance["downstream_task"]["CLF"]["trained_on_fake"]["accuracy"] == 0.8


def test_result_files_in_the_run_reach_the_card_as_numbers_only(dicom_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(dicom_run["run"], run)
    (run / "audit").mkdir()
    (run / "audit" / "audit.json").write_text(json.dumps({
        "run": str(dicom_run["root"] / FOLDER), "members": {"images": 3, "patients": 2, "source": FOLDER},
        "attacks": {"distance": {"auc": 0.61, "auc_ci_low": 0.4, "leakage_detected": False}}}))
    (run / "eval").mkdir()
    (run / "eval" / "metrics.json").write_text(json.dumps({
        "inputs": {"real": FOLDER, "features": "torchscript:/secret/PID12345.pt"},
        "distribution": {"fid": 33.0}, "memorization": {"near_copy_fraction": 0.0}, "held_out": {"subjects": ["PID12345"]}}))
    assert main(["bundle", "--run", str(run), "--out", str(tmp_path / "b")]) == 0
    card = read_card(tmp_path / "b" / CARD_NAME)
    assert card["results"]["membership_inference"]["values"]["attacks.distance.auc"] == 0.61
    assert card["results"]["evaluation"]["values"]["distribution.fid"] == 33.0
    assert card["results"]["evaluation"]["features"] == "torchscript"
    assert _leaks(tmp_path / "b", {}, [FOLDER, "PID12345", "/secret"]) == []


def test_tampered_or_corrupt_bundles_are_one_line_errors(dicom_run, tmp_path, capsys):
    for name, change in ((WEIGHTS, lambda b: b[:-9] + bytes([b[-9] ^ 1]) + b[-8:]),
                         ("config.json", lambda b: b.replace(b'"latent_dim": 8', b'"latent_dim": 9')),
                         (CARD_NAME, lambda b: b.replace(b"no formal privacy guarantee", b"epsilon 1")),
                         ("data.json", None), (CARD_NAME, None)):
        bundle = tmp_path / f"bundle_{name}_{change is None}"
        shutil.copytree(dicom_run["bundle"], bundle)
        target = bundle / name
        if change is None:
            target.unlink()
        else:
            changed = change(target.read_bytes())
            assert changed != target.read_bytes()
            target.write_bytes(changed)
        capsys.readouterr()
        code = main(["sample", "--model", str(bundle), "--n", "1", "--out", str(tmp_path / "out")])
        assert_one_error_line(code, capsys, name)
        assert not (tmp_path / "out").exists()


def test_a_run_without_inference_state_cannot_be_bundled(dicom_run, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(dicom_run["run"], run)
    state = torch.load(run / "checkpoints" / "best.pt", weights_only=True)
    for inference, message in ((None, "inference"), ({"kind": "noise-to-image"}, "no inference weights")):
        kept = {key: value for key, value in state.items() if key not in ("inference", "format_version", "versions",
                                                                         "content_sha256")}
        if inference is not None:
            kept["inference"] = inference
        for which in ("best", "latest"):
            save_checkpoint(run / "checkpoints" / f"{which}.pt", kept)
        capsys.readouterr()
        assert_one_error_line(main(["bundle", "--run", str(run), "--out", str(tmp_path / "b")]), capsys, message)
        assert not (tmp_path / "b").exists()
    shutil.rmtree(run / "checkpoints")
    (run / "checkpoints").mkdir()
    assert_one_error_line(main(["bundle", "--run", str(run), "--out", str(tmp_path / "b")]), capsys, "checkpoint")


def test_shareable_config_keeps_embedded_sources_and_withholds_paths():
    config = from_dict({"data": {"source": "ct-phantom", "labels": "/data/Doe/labels.csv", "domain_a": ["mni152",
                                                                                                       "/x/t2"]}})
    data = shareable_config(config)["data"]
    assert (data["source"], data["labels"], data["domain_a"]) == ("ct-phantom", WITHHELD, ["mni152", WITHHELD])


def test_translate_from_a_bundle_matches_the_run_and_leaves_a_card(tmp_path):
    import nibabel as nib

    hu = IntensityMapping("ct_window", -160.0, 240.0, "HU")
    generator = torch.Generator().manual_seed(0)
    target = torch.rand(8, 1, 32, 32, generator=generator) * 2 - 1
    noisy = (target + 0.2 * torch.randn(target.shape, generator=generator)).clamp(-1, 1)
    data = SliceSet(target, hu, (0.7, 0.7), [f"p{i % 2}" for i in range(8)], [f"f{i}#0" for i in range(8)],
                    aligned={"input": noisy}, mappings={"input": hu})
    train(paired_config(train={"steps": 2, "eval_every": 0}), tmp_path / "run", progress=False, data=data)
    assert main(["bundle", "--run", str(tmp_path / "run"), "--out", str(tmp_path / "bundle")]) == 0
    volume = np.random.default_rng(0).normal(40, 30, (32, 32, 3)).astype(np.float32)
    nib.save(nib.Nifti1Image(volume, np.eye(4)), tmp_path / "case.nii.gz")
    for source in ("run", "bundle"):
        assert main(["translate", "--model", str(tmp_path / source), "--input", str(tmp_path / "case.nii.gz"),
                     "--out", str(tmp_path / f"out_{source}"), "--quiet"]) == 0
    arrays = [nib.load(tmp_path / f"out_{source}" / "case_translated.nii.gz").get_fdata() for source in ("run", "bundle")]
    assert np.array_equal(*arrays)
    card = read_card(tmp_path / "out_bundle" / CARD_NAME)
    assert card["export"]["command"] == "medgan translate" and card["export"]["files"] == 1
    assert card["provenance"]["inference_kind"] == "image-to-image"


def test_evaluate_writes_a_card_and_a_report_section_from_the_samples_card(dicom_run, tmp_path):
    samples, out = tmp_path / "samples", tmp_path / "evaluation"
    assert main(["sample", "--model", str(dicom_run["bundle"]), "--n", "8", "--out", str(samples)]) == 0
    assert main(["evaluate", "--real", str(dicom_run["root"] / FOLDER), "--fake", str(samples), "--out", str(out),
                 "--max-images", "8", "--quiet"]) == 0
    card, model = read_card(out / CARD_NAME), read_card(dicom_run["bundle"] / CARD_NAME)
    assert card["provenance"]["data_sha256"] == model["provenance"]["data_sha256"]
    assert card["privacy"]["guarantee"] == NO_GUARANTEE and card["privacy"]["privacy_filter"] == "off"
    values = card["results"]["evaluation"]["values"]
    assert values["memorization.near_copy_fraction"] == json.loads((out / "metrics.json").read_text())[
        "memorization"]["near_copy_fraction"]
    assert card["evaluation"]["synthetic_images"] == 8
    report = (out / "report.html").read_text()
    assert 'id="data-card"' in report and NO_GUARANTEE in report and card["card_sha256"] in report
    # metrics.json and report.html name the --real folder (they stay private); the card names nothing.
    assert _leaks(out / CARD_NAME, dicom_run["needles"], dicom_run["texts"]) == []


def test_evaluation_card_of_a_run_and_of_images_without_a_card(dicom_run, tmp_path):
    metrics = {"inputs": {"real": str(dicom_run["root"] / FOLDER), "synthetic_images": 4},
               "distribution": {"fid": 40.0}, "membership_inference": {"attacks": {"distance": {"auc": 0.52}}}}
    card = evaluation_card(dicom_run["run"], metrics)
    assert card["provenance"]["subjects"] == 2 and card["results"]["evaluation"]["values"]["distribution.fid"] == 40.0
    assert card["results"]["membership_inference"]["values"]["attacks.distance.auc"] == 0.52
    assert FOLDER not in json.dumps(card)
    unknown = evaluation_card(tmp_path, metrics)
    assert unknown["provenance"] is None and "unknown" in unknown["provenance_note"]
    assert unknown["privacy"]["guarantee"] == NO_GUARANTEE and unknown["not_for_diagnostic_use"] is True


def test_the_privacy_filter_needs_the_run_not_its_bundle(dicom_run, tmp_path, capsys):
    code = main(["sample", "--model", str(dicom_run["bundle"]), "--n", "1", "--out", str(tmp_path / "s"),
                 "--privacy-filter"])
    assert_one_error_line(code, capsys, "model bundle does not carry")
    assert not (tmp_path / "s").exists()


def test_nested_inference_states_round_trip_through_a_bundle(tmp_path):
    from medgan.inference.bundle import join_inference, split_inference

    weights = {"net.0.weight": torch.randn(3, 2), "net.0.bias": torch.zeros(3)}
    state = {"kind": "image-to-image", "generator": weights, "inputs": ["input"], "default": "a2b",
             "directions": {"a2b": {"generator": weights, "target": "image"},
                            "b2a": {"generator": {"net.0.weight": torch.ones(2, 3)}, "target": "input"}}}
    tensors, rest = split_inference(state, tmp_path)
    assert "directions/b2a/generator:net.0.weight" in tensors and json.dumps(rest)
    back = join_inference(tensors, rest)
    assert back["inputs"] == ["input"] and back["directions"]["a2b"]["target"] == "image"
    assert torch.equal(back["directions"]["b2a"]["generator"]["net.0.weight"], torch.ones(2, 3))
    assert all(torch.equal(back["generator"][key], value) for key, value in weights.items())
