"""The wound dataset: one row per patient visit, the four modalities, the healing phase, the patient-grouped folds.

Dataset NPZ (``results/genaug/data/dataset.npz``), N visits, S = ``image_size``:

===============  ================  ========  ==============================================
array            shape             dtype     values
===============  ================  ========  ==============================================
``depth_rgb``    (N, 3, S, S)      float32   the depth camera's RGB view, in [0, 1]
``thermal_rgb``  (N, 3, S, S)      float32   the thermal camera's RGB view, in [0, 1]
``depth_map``    (N, 1, S, S)      float32   distance, registered to depth_rgb, in [0, 1]
``thermal_map``  (N, 1, S, S)      float32   temperature, registered to thermal_rgb, in [0, 1]
``phase``        (N,)              int64     0, 1, 2 = I, P, R
``patient``      (N,)              unicode   patient id
``visit``        (N,)              int64     visit number
``fold``         (N,)              int64     the fold whose test split holds the visit's patient
``split``        (folds, N)        int8      per fold: 0 train, 1 validation, 2 test
===============  ================  ========  ==============================================

Folds are grouped by patient: all visits of a patient share one test fold, and each fold's
validation patients come from its training patients, so no patient is ever on two sides.

The users' own data (``data.source: folder``): a folder with a CSV, ``labels.csv`` unless named::

    wounds/
      labels.csv
      P001/visit1_depth_rgb.png ...        (any layout: the CSV names each file, relative to the folder)

    patient,visit,phase,depth_rgb,thermal_rgb,depth_map,thermal_map
    P001,1,I,P001/visit1_depth_rgb.png,P001/visit1_thermal_rgb.png,P001/visit1_depth.png,P001/visit1_thermal.npy

``phase`` is I, P, R or inflammatory, proliferative, remodeling (any case). RGB files are PNG or
JPEG; a map is a greyscale PNG (8 or 16 bit, scaled by its bit depth to [0, 1]) or a 2-D ``.npy``
of floats already in [0, 1]. Every image of every modality must have one size (the cameras'
images are registered); they are resized to ``image_size`` x ``image_size``. Each problem (a
missing column or file, an unknown phase, a mismatched size, a duplicate visit) is one error
naming the CSV row and the file.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import GensynthError
from ..io import load_npz, save_npz
from ..seeding import numpy_generator, sha256_seed
from .augmentation import MODALITIES, PHASE_NAMES, PHASES, image_channels

TRAIN, VALIDATION, TEST, EXCLUDED = 0, 1, 2, 3  # roles in ``split`` (EXCLUDED: a training patient a low-data regime leaves out)
ROLE_NAMES = {TRAIN: "train", VALIDATION: "validation", TEST: "test", EXCLUDED: "excluded"}
CSV_COLUMNS = ("patient", "visit", "phase", *MODALITIES)
DEFAULT_CSV = "labels.csv"
PHASE_LABELS = {**{p.lower(): i for i, p in enumerate(PHASES)}, **{PHASE_NAMES[p]: i for i, p in enumerate(PHASES)}}
MAP_SUFFIXES = (".png", ".npy")
RGB_SUFFIXES = (".png", ".jpg", ".jpeg")
RANGE_TOLERANCE = 1e-6


@dataclass(frozen=True)
class SplitPlan:
    """How the dataset's splits are laid out: regime-major (``train_fractions``), then partition, then fold.

    Split k trains on its regime's share of the fold's training patients and tests on the fold's test patients;
    the classifier, the pipelines and the pools of ``fold{k}`` belong to split k.
    """

    folds: int = 3
    partitions: int = 1
    train_fractions: tuple[float, ...] = (1.0,)

    def __len__(self) -> int:
        return len(self.train_fractions) * self.partitions * self.folds

    def describe(self, index: int) -> dict[str, float | int]:
        """Split ``index``'s regime (its training share), partition and fold."""
        regime, rest = divmod(index, self.partitions * self.folds)
        partition, fold = divmod(rest, self.folds)
        return {"train_fraction": self.train_fractions[regime], "partition": partition, "fold": fold}


@dataclass
class WoundDataset:
    images: dict[str, np.ndarray]  # modality -> (N, C, S, S) float32 in [0, 1]
    phase: np.ndarray  # (N,) int64, index into PHASES
    patient: np.ndarray  # (N,) unicode
    visit: np.ndarray  # (N,) int64
    fold: np.ndarray  # (partitions, N) int64: the visit's test fold in each partition
    split: np.ndarray  # (splits, N) int8: TRAIN, VALIDATION, TEST, EXCLUDED
    plan: SplitPlan  # what each split is (its regime, partition and fold)

    def __len__(self) -> int:
        return len(self.phase)

    @property
    def folds(self) -> int:
        """How many splits (folds x partitions x regimes); ``fold{k}`` of the DAG is split k."""
        return self.split.shape[0]

    @property
    def image_size(self) -> int:
        return self.images[MODALITIES[0]].shape[-1]

    def indices(self, fold: int, role: int) -> np.ndarray:
        """The visits of one side of a fold (TRAIN, VALIDATION or TEST), in dataset order."""
        if not 0 <= fold < self.folds:
            raise GensynthError(f"fold {fold}: the dataset has folds 0 to {self.folds - 1}")
        return np.flatnonzero(self.split[fold] == role)

    def arrays(self) -> dict[str, np.ndarray]:
        plan = {
            "plan_folds": np.int64(self.plan.folds),
            "plan_partitions": np.int64(self.plan.partitions),
            "train_fractions": np.asarray(self.plan.train_fractions),
        }
        return {**self.images, "phase": self.phase, "patient": self.patient, "visit": self.visit, "fold": self.fold, "split": self.split, **plan}


def assign_folds(patients: np.ndarray, folds: int, val_fraction: float, seed: int, partition: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Patient-grouped folds: ``fold`` (N,) and ``split`` (folds, N) for visits whose patient ids are ``patients``.

    The patients are shuffled (seeded by ``seed`` and the partition: partition 0 is the seed's own) and dealt
    to the folds in turn; in each fold, ``round(val_fraction * training patients)`` of its training patients
    (at least one when val_fraction > 0) are its validation set.
    """
    names = np.unique(patients)
    if len(names) < folds:
        raise GensynthError(f"{len(names)} patients for {folds} patient-grouped folds: expected at least one patient per fold")
    salt = () if partition == 0 else ("partition", partition)
    order = numpy_generator(sha256_seed("genaug-folds", seed, *salt)).permutation(len(names))
    patient_fold = np.empty(len(names), dtype=np.int64)
    patient_fold[order] = np.arange(len(names)) % folds
    visit_patient = np.searchsorted(names, patients)  # (N,) index into names
    split = np.full((folds, len(patients)), TRAIN, dtype=np.int8)
    for fold in range(folds):
        training = np.flatnonzero(patient_fold != fold)
        n_val = max(1, round(val_fraction * len(training))) if val_fraction > 0 else 0
        if n_val >= len(training):
            raise GensynthError(
                f"fold {fold}: {len(training)} training patients leave none to train on after {n_val} for validation "
                f"(val_fraction {val_fraction}): expected more patients or a smaller val_fraction"
            )
        validation = numpy_generator(sha256_seed("genaug-validation", seed, *salt, fold)).choice(training, n_val, replace=False)
        split[fold, np.isin(visit_patient, validation)] = VALIDATION
        split[fold, patient_fold[visit_patient] == fold] = TEST
    return patient_fold[visit_patient], split


def reduce_training(split: np.ndarray, patients: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """A copy of one fold's ``split`` (N,) keeping ``round(fraction * training patients)`` of them (at least one) as
    TRAIN and marking the rest EXCLUDED. One seeded order of the training patients serves every fraction, so a
    smaller regime's patients are a subset of a larger one's."""
    reduced = split.copy()
    if fraction >= 1:
        return reduced
    training = np.unique(patients[split == TRAIN])
    keep = training[numpy_generator(seed).permutation(len(training))[: max(1, round(fraction * len(training)))]]
    reduced[(split == TRAIN) & ~np.isin(patients, keep)] = EXCLUDED
    return reduced


def assign_splits(patients: np.ndarray, plan: SplitPlan, val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``fold`` (partitions, N): each visit's test fold per partition; ``split`` (len(plan), N): its role in each split."""
    per_partition = [assign_folds(patients, plan.folds, val_fraction, seed, p) for p in range(plan.partitions)]
    split = np.stack(
        [
            reduce_training(
                per_partition[d["partition"]][1][d["fold"]], patients, d["train_fraction"], sha256_seed("genaug-regime", seed, d["partition"], d["fold"])
            )
            for d in map(plan.describe, range(len(plan)))
        ]
    )
    return np.stack([fold for fold, _ in per_partition]), split


def with_folds(arrays: dict[str, np.ndarray], plan: SplitPlan | int, val_fraction: float, seed: int) -> WoundDataset:
    """A dataset from per-visit arrays (the phantom's or read_folder's) with its splits assigned (an int: that many folds)."""
    plan = SplitPlan(folds=plan) if isinstance(plan, int) else plan
    fold, split = assign_splits(arrays["patient"], plan, val_fraction, seed)
    images = {m: np.ascontiguousarray(arrays[m], dtype=np.float32) for m in MODALITIES}
    return WoundDataset(images, arrays["phase"].astype(np.int64), arrays["patient"], arrays["visit"].astype(np.int64), fold, split, plan)


def save_dataset(path: str | Path, dataset: WoundDataset) -> None:
    save_npz(path, dataset.arrays())


def load_dataset(path: str | Path) -> WoundDataset:
    """The dataset NPZ, its arrays' shapes and values checked (one error naming the file and array)."""
    arrays = load_npz(path, required=(*MODALITIES, "phase", "patient", "visit", "fold", "split", "plan_folds", "plan_partitions", "train_fractions"))
    n = len(arrays["phase"])
    for modality in MODALITIES:
        shape = arrays[modality].shape
        if len(shape) != 4 or shape[0] != n or shape[1] != image_channels(modality) or shape[2:] != arrays[MODALITIES[0]].shape[2:]:
            raise GensynthError(f"{path}: array {modality} has shape {shape}; expected ({n}, {image_channels(modality)}, S, S)")
    if not np.isin(arrays["phase"], np.arange(len(PHASES))).all():
        raise GensynthError(f"{path}: array phase holds values other than 0, 1, 2 (I, P, R)")
    plan = SplitPlan(int(arrays["plan_folds"]), int(arrays["plan_partitions"]), tuple(float(f) for f in arrays["train_fractions"]))
    if arrays["split"].ndim != 2 or arrays["split"].shape != (len(plan), n):
        raise GensynthError(f"{path}: array split has shape {arrays['split'].shape}; expected ({len(plan)}, {n}): one row per split")
    images = {m: arrays[m].astype(np.float32, copy=False) for m in MODALITIES}
    return WoundDataset(images, arrays["phase"], arrays["patient"], arrays["visit"], arrays["fold"], arrays["split"], plan)


# -- the users' own folder --------------------------------------------------------------------------


def parse_phase(label: str, where: str) -> int:
    phase = PHASE_LABELS.get(label.strip().lower())
    if phase is None:
        expected = ", ".join(PHASES) + " or " + ", ".join(PHASE_NAMES.values())
        raise GensynthError(f"{where}: unknown phase {label!r} (expected one of {expected})")
    return phase


def read_image(path: Path, modality: str, where: str) -> np.ndarray:
    """One image file as (C, H, W) float32 in [0, 1] (3 channels for the RGB views, 1 for the maps)."""
    from PIL import Image, UnidentifiedImageError

    suffixes = RGB_SUFFIXES if image_channels(modality) == 3 else MAP_SUFFIXES
    if path.suffix.lower() not in suffixes:
        raise GensynthError(f"{where}: {path} is a {path.suffix or 'suffix-less'} file; expected {' or '.join(suffixes)} for {modality}")
    if not path.is_file():
        raise GensynthError(f"{where}: {modality} file {path} not found")
    if path.suffix.lower() == ".npy":
        try:
            array = np.load(path, allow_pickle=False)
        except (ValueError, OSError, EOFError) as exc:
            raise GensynthError(f"{where}: {path} is not a readable .npy array ({exc})") from None
        if array.ndim != 2 or not np.issubdtype(array.dtype, np.number):
            raise GensynthError(f"{where}: {path} holds a {array.dtype} array of shape {array.shape}; expected a 2-D array of numbers")
        if not (np.isfinite(array).all() and array.min() >= -RANGE_TOLERANCE and array.max() <= 1 + RANGE_TOLERANCE):
            raise GensynthError(f"{where}: {path} has values outside [0, 1] (or NaN); scale the map to [0, 1] first")
        return np.clip(array, 0, 1).astype(np.float32)[None]
    try:
        with Image.open(path) as image:
            image.load()
    except (UnidentifiedImageError, OSError) as exc:
        raise GensynthError(f"{where}: {path} is not a readable image ({exc})") from None
    if image_channels(modality) == 3:
        if image.mode not in ("RGB", "RGBA"):
            raise GensynthError(f"{where}: {path} is a {image.mode} image; expected an RGB image for {modality}")
        return np.asarray(image.convert("RGB"), dtype=np.float32).transpose(2, 0, 1) / 255
    scale = {"L": 255, "I;16": 65535, "I;16B": 65535, "I": 65535}.get(image.mode)
    if scale is None:
        raise GensynthError(f"{where}: {path} is a {image.mode} image; expected a greyscale (8- or 16-bit) PNG for {modality}")
    return (np.asarray(image, dtype=np.float32) / scale)[None].clip(0, 1)


def resize_image(image: np.ndarray, size: int) -> np.ndarray:
    """(C, H, W) -> (C, size, size), each channel with PIL's antialiased bilinear filter."""
    if image.shape[1:] == (size, size):
        return image
    from PIL import Image

    channels = [np.asarray(Image.fromarray(c, mode="F").resize((size, size), Image.Resampling.BILINEAR)) for c in image]
    return np.stack(channels).clip(0, 1)


def read_folder(folder: str | Path, csv_name: str = DEFAULT_CSV, image_size: int = 32) -> dict[str, np.ndarray]:
    """The users' folder (see the module docstring) as per-visit arrays, every file checked."""
    folder = Path(folder)
    csv_path = folder / (csv_name or DEFAULT_CSV)
    if not folder.is_dir():
        raise GensynthError(f"{folder}: data folder not found")
    if not csv_path.is_file():
        raise GensynthError(f"{csv_path}: labels CSV not found (expected columns {', '.join(CSV_COLUMNS)})")
    with open(csv_path, newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        missing = [c for c in CSV_COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise GensynthError(f"{csv_path}: missing column(s) {', '.join(missing)}; expected {', '.join(CSV_COLUMNS)}")
        rows = list(reader)
    if not rows:
        raise GensynthError(f"{csv_path}: no visits (the CSV has a header only)")
    images: dict[str, list[np.ndarray]] = {m: [] for m in MODALITIES}
    phases, patients, visits, seen = [], [], [], {}
    first_size = None  # (H, W) and where it came from
    for number, row in enumerate(rows, start=2):  # line 1 is the header
        where = f"{csv_path}, line {number}"
        patient = (row["patient"] or "").strip()
        if not patient:
            raise GensynthError(f"{where}: empty patient id")
        try:
            visit = int(row["visit"])
        except (TypeError, ValueError):
            raise GensynthError(f"{where}: visit {row['visit']!r} is not an integer") from None
        if (patient, visit) in seen:
            raise GensynthError(f"{where}: patient {patient} visit {visit} again (first on line {seen[patient, visit]})")
        seen[patient, visit] = number
        phases.append(parse_phase(row["phase"] or "", where))
        for modality in MODALITIES:
            name = (row[modality] or "").strip()
            if not name:
                raise GensynthError(f"{where}: no {modality} file named")
            image = read_image(folder / name, modality, where)
            if first_size is None:
                first_size = (image.shape[1:], folder / name)
            elif image.shape[1:] != first_size[0]:
                (height, width), other = first_size
                raise GensynthError(
                    f"{where}: {folder / name} is {image.shape[2]}x{image.shape[1]} pixels, but {other} is "
                    f"{width}x{height}; expected every image of every modality to have one size"
                )
            images[modality].append(resize_image(image, image_size))
        patients.append(patient)
        visits.append(visit)
    return {
        **{m: np.stack(v) for m, v in images.items()},
        "phase": np.array(phases, dtype=np.int64),
        "patient": np.array(patients),
        "visit": np.array(visits, dtype=np.int64),
    }


def write_folder(arrays: dict[str, np.ndarray], folder: str | Path, csv_name: str = DEFAULT_CSV) -> Path:
    """Per-visit arrays in the users' layout: 8-bit RGB PNGs, 16-bit map PNGs, the CSV (an example for users, and the tests)."""
    from PIL import Image

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / csv_name, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(CSV_COLUMNS)
        for i, (patient, visit) in enumerate(zip(arrays["patient"], arrays["visit"])):
            names = []
            for modality in MODALITIES:
                name = f"{patient}/visit{visit}_{modality}.png"
                (folder / patient).mkdir(exist_ok=True)
                image = arrays[modality][i]
                if image.shape[0] == 3:
                    Image.fromarray(np.round(image.transpose(1, 2, 0) * 255).astype(np.uint8)).save(folder / name)
                else:
                    Image.fromarray(np.round(image[0] * 65535).astype(np.uint16)).save(folder / name)
                names.append(name)
            writer.writerow([patient, int(visit), PHASES[arrays["phase"][i]], *names])
    return folder
