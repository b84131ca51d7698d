"""The official CIFAR-10 train and test sets as one npz of uint8 images, from one of three sources.

- `torchvision`: the canonical binary release, downloaded by torchvision.
- `folder`: a directory, or a `.tar` / `.tar.gz` of one, laid out `train/<class>/*` and
  `test/<class>/*` (PNG or JPEG), possibly under one top-level folder. Tars are streamed, never
  extracted to disk. Images must already be 32x32 RGB: nothing is resized or converted, so a
  wrong file is an error that names it, not a silent change of the data.
- `synthetic`: a small, deterministic, learnable stand-in for tests of the workflow.

The npz holds `x_train` uint8 (N, 32, 32, 3), `y_train` int64 (N,), `x_test`, `y_test`,
`classes` (str array) and `image_format` (str): the format of the images as read, e.g. "JPEG" or
"PNG" (PIL's name for the files' format; several joined by ", "), "CIFAR-10 binary" for
torchvision, "synthetic". A label is the index of its class in `classes`.
"""

from __future__ import annotations

import io
import tarfile
import time
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Callable

import numpy as np
from PIL import Image, UnidentifiedImageError

from .artifacts import atomic_path

CIFAR10_CLASSES = ["airplane", "automobile", "bird", "cat", "deer",
                   "dog", "frog", "horse", "ship", "truck"]
SOURCES = ("torchvision", "folder", "synthetic")
SPLITS = ("train", "test")
IMAGE_SHAPE = (32, 32, 3)          # (H, W, C): CIFAR-10 at its own size
LOG_EVERY = 10_000                 # images between progress lines

Log = Callable[[str], None]


class DataError(ValueError):
    """Bad input data; the message names the file or class (and the archive) at fault."""


@dataclass
class Dataset:
    x_train: np.ndarray            # uint8 (N, 32, 32, 3)
    y_train: np.ndarray            # int64 (N,)
    x_test: np.ndarray             # uint8 (M, 32, 32, 3)
    y_test: np.ndarray             # int64 (M,)
    classes: list[str]
    image_format: str = "unknown"  # as read: "JPEG", "PNG", "CIFAR-10 binary", "synthetic"


# ----------------------------------------------------------------------------------------
# Entry points


def prepare_data(source: str, path: str | None, out: str | Path, *,
                 synthetic: dict | None = None, classes: list[str] | None = None,
                 log: Log = print) -> dict:
    """Build the data set from `source` and write it to `out` (atomically); return a summary."""
    t0 = time.perf_counter()
    if source == "torchvision":
        ds = _from_torchvision(path, classes, log)
    elif source == "folder":
        ds = _from_folder(path, classes, log)
    elif source == "synthetic":
        synthetic = dict(synthetic or {})
        unknown = sorted(set(synthetic) - set(SYNTHETIC_KEYS))
        if unknown:
            raise DataError(f"unknown key(s) data.synthetic.{', data.synthetic.'.join(unknown)}; "
                            f"allowed: {', '.join(SYNTHETIC_KEYS)}")
        ds = make_synthetic(**synthetic)
    else:
        raise DataError(f"data.source is {source!r}; allowed values: {', '.join(SOURCES)}")
    _check_dataset(ds, source)
    save_dataset(out, ds)
    summary = {
        "source": source,
        "path": None if path is None else str(path),
        "classes": ds.classes,
        "image_format": ds.image_format,
        "n_train": len(ds.y_train),
        "n_test": len(ds.y_test),
        "train_per_class": _counts(ds.y_train, ds.classes),
        "test_per_class": _counts(ds.y_test, ds.classes),
        "seconds": round(time.perf_counter() - t0, 2),
    }
    log(f"wrote {out}: {summary['n_train']} train / {summary['n_test']} test images, "
        f"{len(ds.classes)} classes, source {source}, image format {ds.image_format}, "
        f"{summary['seconds']:.1f} s")
    return summary


def save_dataset(out: str | Path, ds: Dataset) -> None:
    with atomic_path(out) as tmp, open(tmp, "wb") as fh:
        # uncompressed: 180 MB for CIFAR-10, but loads in a fraction of a second
        np.savez(fh, x_train=ds.x_train, y_train=ds.y_train, x_test=ds.x_test,
                 y_test=ds.y_test, classes=np.array(ds.classes, dtype=str),
                 image_format=np.array(ds.image_format, dtype=str))


def load_dataset(path: str | Path) -> Dataset:
    path = Path(path)
    if not path.is_file():
        raise DataError(f"data file {path} does not exist (it is written by the prepare_data rule)")
    keys = ("x_train", "y_train", "x_test", "y_test", "classes")
    with np.load(path, allow_pickle=False) as z:
        missing = [k for k in keys if k not in z.files]
        if missing:
            raise DataError(f"data file {path} lacks the key(s) {', '.join(missing)}")
        return Dataset(z["x_train"], z["y_train"].astype(np.int64), z["x_test"],
                       z["y_test"].astype(np.int64), [str(c) for c in z["classes"]],
                       _image_format(z))


def image_format(path: str | Path) -> str:
    """The image format recorded in a data npz by prepare_data ("unknown" for an older npz);
    reads that one entry only."""
    with np.load(path, allow_pickle=False) as z:
        return _image_format(z)


def _image_format(z) -> str:
    return str(z["image_format"]) if "image_format" in z.files else "unknown"


def _counts(y: np.ndarray, classes: list[str]) -> dict[str, int]:
    n = np.bincount(y, minlength=len(classes))
    return {c: int(k) for c, k in zip(classes, n)}


def _check_dataset(ds: Dataset, source: str) -> None:
    """Shapes, dtypes and label range, whatever the source."""
    for split, x, y in (("train", ds.x_train, ds.y_train), ("test", ds.x_test, ds.y_test)):
        if x.dtype != np.uint8 or x.shape[1:] != IMAGE_SHAPE or len(x) != len(y) or len(x) == 0:
            raise DataError(f"{source} {split} set: expected uint8 images (N, 32, 32, 3) with "
                            f"N labels, got {x.dtype} {x.shape} and {len(y)} labels")
        if y.min() < 0 or y.max() >= len(ds.classes):
            raise DataError(f"{source} {split} set: labels outside 0..{len(ds.classes) - 1}")


# ----------------------------------------------------------------------------------------
# Source: torchvision


def _from_torchvision(path: str | None, classes: list[str] | None, log: Log) -> Dataset:
    if not path:
        raise DataError("data.path must name the download folder for data.source 'torchvision'")
    if classes is not None and list(classes) != CIFAR10_CLASSES:
        raise DataError("data.source 'torchvision' is CIFAR-10 with its own classes "
                        f"{CIFAR10_CLASSES}; got {list(classes)}")
    from torchvision.datasets import CIFAR10

    parts = {}
    for split in SPLITS:
        try:
            d = CIFAR10(root=str(path), train=split == "train", download=True)
        except Exception as e:  # no internet, proxy, bad checksum: all mean "use another source"
            raise DataError(
                f"could not download CIFAR-10 into {path} ({type(e).__name__}: {e}). Without "
                "internet access use data.source 'folder' with data.path pointing to a folder or "
                ".tar.gz laid out train/<class>/* and test/<class>/* (or set CIFAR10_JPEG)"
            ) from e
        if list(d.classes) != CIFAR10_CLASSES:
            raise DataError(f"torchvision CIFAR10 in {path} has classes {d.classes}")
        parts[split] = (np.ascontiguousarray(d.data, dtype=np.uint8),
                        np.asarray(d.targets, dtype=np.int64))
        log(f"read {len(d.targets)} {split} images from torchvision CIFAR10 in {path}")
    return Dataset(*parts["train"], *parts["test"], list(CIFAR10_CLASSES), "CIFAR-10 binary")


# ----------------------------------------------------------------------------------------
# Source: folder or tar archive


def _from_folder(path: str | None, classes: list[str] | None, log: Log) -> Dataset:
    if not path:
        raise DataError("data.path is empty: data.source 'folder' needs a directory or a .tar(.gz)")
    root = Path(path)
    if not root.exists():
        raise DataError(f"data.path {root} does not exist")
    where = f"archive {root}" if root.is_file() else f"folder {root}"

    t0 = time.perf_counter()
    dirs, files = _read_tar(root) if root.is_file() else _read_dir(root)
    tree = _class_tree(dirs, files, where)
    classes = _resolve_classes(tree, classes, where)
    log(f"listed {where} in {time.perf_counter() - t0:.1f} s: "
        + ", ".join(f"{sum(len(v) for v in tree[s].values())} {s}" for s in SPLITS)
        + f" images in {len(classes)} classes")

    parts, formats = [], set()
    for split in SPLITS:
        items = [(i, name, files[key]) for i, c in enumerate(classes)
                 for name, key in sorted(tree[split][c].items())]
        x = np.empty((len(items), *IMAGE_SHAPE), dtype=np.uint8)  # (N, 32, 32, 3)
        y = np.empty(len(items), dtype=np.int64)
        for n, (label, name, data) in enumerate(items):
            x[n], fmt = _decode(data, f"{split}/{classes[label]}/{name}", where)
            formats.add(fmt)
            y[n] = label
            if (n + 1) % LOG_EVERY == 0 or n + 1 == len(items):
                log(f"read {n + 1}/{len(items)} {split} images")
        parts += [x, y]
    log(f"decoded {where} in {time.perf_counter() - t0:.1f} s")
    return Dataset(*parts, classes, ", ".join(sorted(formats)))


def _read_tar(path: Path) -> tuple[set[tuple[str, ...]], dict[tuple[str, ...], bytes]]:
    """Directory and file paths (as parts) of a tar, with file contents; streamed, in memory."""
    dirs, files = set(), {}
    try:
        with tarfile.open(path, mode="r|*") as tf:
            for m in tf:
                parts = _parts(m.name)
                if not parts:
                    continue
                if m.isdir():
                    dirs.add(parts)
                elif m.isfile():
                    files[parts] = tf.extractfile(m).read()
                    dirs.update(parts[:k] for k in range(1, len(parts)))
    except (tarfile.TarError, EOFError, OSError) as e:
        raise DataError(f"data.path {path} is neither a directory nor a readable .tar/.tar.gz "
                        f"archive ({type(e).__name__}: {e})") from e
    return dirs, files


def _read_dir(root: Path) -> tuple[set[tuple[str, ...]], dict[tuple[str, ...], bytes]]:
    dirs, files = set(), {}
    for p in root.rglob("*"):
        parts = p.relative_to(root).parts
        if p.is_dir():
            dirs.add(parts)
        elif p.is_file():
            files[parts] = p.read_bytes()
    return dirs, files


def _parts(name: str) -> tuple[str, ...]:
    return tuple(p for p in PurePosixPath(name).parts if p not in (".", "/"))


def _hidden(parts: tuple[str, ...]) -> bool:
    return any(p.startswith(".") for p in parts)  # .DS_Store, ._* resource forks


def _class_tree(dirs: set, files: dict, where: str) -> dict[str, dict[str, dict[str, tuple]]]:
    """{split: {class: {file name: key of `files`}}}, after finding the top-level folder."""
    dirs = {d for d in dirs if not _hidden(d)}
    keys = [k for k in files if not _hidden(k)]
    top = {d[0] for d in dirs if len(d) == 1} | {k[0] for k in keys if len(k) > 1}
    prefix: tuple[str, ...] = ()
    if not top & set(SPLITS) and len(top) == 1:
        prefix = (top.pop(),)  # everything sits under one folder, e.g. cifar10/train/...
    p = len(prefix)

    tree: dict[str, dict[str, dict[str, tuple]]] = {}
    for split in SPLITS:
        base = prefix + (split,)
        if base not in dirs:
            raise DataError(f"{where} has no {'/'.join(base)}/ folder (expected "
                            "train/<class>/* and test/<class>/*)")
        tree[split] = {d[p + 1]: {} for d in dirs if len(d) == p + 2 and d[:p + 1] == base}
    for k in keys:
        if len(k) <= p or k[:p] != prefix or k[p] not in SPLITS:
            continue  # README, LICENSE and the like beside the splits
        rel = "/".join(k[p:])
        if len(k) != p + 3:
            raise DataError(f"{where}: {rel} is not of the form <split>/<class>/<image>")
        tree[k[p]][k[p + 1]][k[p + 2]] = k
    for split in SPLITS:
        if not any(tree[split].values()):
            raise DataError(f"{where}: the {split} split is empty "
                            f"(no images under {split}/<class>/)")
        for c, names in sorted(tree[split].items()):
            if not names:
                raise DataError(f"{where}: class folder {split}/{c}/ is empty")
    return tree


def _resolve_classes(tree: dict, classes: list[str] | None, where: str) -> list[str]:
    found = sorted(tree["train"])
    if classes is None:
        classes = list(CIFAR10_CLASSES) if set(found) == set(CIFAR10_CLASSES) else found
    classes = [str(c) for c in classes]
    if len(set(classes)) != len(classes):
        raise DataError(f"the class list {classes} has duplicates")
    for split in SPLITS:
        for c in classes:
            if c not in tree[split]:
                raise DataError(f"{where}: class folder {split}/{c}/ is missing "
                                f"(classes: {', '.join(classes)})")
        for c in sorted(tree[split]):
            if c not in classes:
                raise DataError(f"{where}: unknown class folder {split}/{c}/ "
                                f"(classes: {', '.join(classes)})")
    return classes


def _decode(data: bytes, name: str, where: str) -> tuple[np.ndarray, str]:
    """One image file as uint8 (32, 32, 3), never resized or converted, and its format as PIL
    names it ("JPEG", "PNG", ...)."""
    try:
        with Image.open(io.BytesIO(data)) as im:
            im.load()  # decode now, so that a truncated file fails here, named
            size, mode = im.size, im.mode
            if size != IMAGE_SHAPE[1::-1] or mode != "RGB":
                raise DataError(f"{where}: image {name} is {size[0]}x{size[1]} {mode}, "
                                "expected 32x32 RGB (images are never resized or converted)")
            return np.asarray(im, dtype=np.uint8), str(im.format)  # (32, 32, 3)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
        if isinstance(e, DataError):
            raise
        raise DataError(f"{where}: cannot read image {name} ({type(e).__name__}: {e})") from e


# ----------------------------------------------------------------------------------------
# Source: synthetic
#
# Each class is a smooth, periodic colour pattern (a few random low-frequency cosines per
# channel). An image is its class pattern, circularly shifted by up to SHIFT pixels, mixed with
# a class-independent smooth distractor, with a random brightness offset and Gaussian pixel
# noise. The shift and the distractor make raw pixels a weak cue (nearest neighbours in pixel
# space confuse classes), while a small CNN learns the patterns in a few epochs.

SHIFT = 4                 # max circular shift of the class pattern, in pixels
DISTRACTOR = 1.2          # weight of the class-independent pattern (class pattern weight: 1)
BRIGHTNESS = 0.1          # std of the per-image brightness offset, [0, 1] scale
CONTRAST = 0.35           # scale of the patterns around mid-grey, [0, 1] scale
FREQS = 3                 # cosines per channel; spatial frequencies 0..2 cycles per image
SYNTHETIC_KEYS = ("train_per_class", "test_per_class", "num_classes", "seed", "noise")


def make_synthetic(train_per_class: int = 100, test_per_class: int = 20, num_classes: int = 10,
                   seed: int = 0, noise: float = 0.25) -> Dataset:
    """A deterministic, class-balanced, learnable data set; classes are `class0`, `class1`, ..."""
    if train_per_class < 1 or test_per_class < 1 or num_classes < 2 or noise < 0:
        raise DataError("data.synthetic needs train_per_class >= 1, test_per_class >= 1, "
                        f"num_classes >= 2, noise >= 0; got {train_per_class}, {test_per_class}, "
                        f"{num_classes}, {noise}")
    rng = np.random.default_rng(seed)
    patterns = _smooth_patterns(rng, num_classes)  # (K, 32, 32, 3) in [-1, 1]

    def images(per_class: int) -> tuple[np.ndarray, np.ndarray]:
        y = np.repeat(np.arange(num_classes, dtype=np.int64), per_class)
        n = len(y)
        shifts = rng.integers(-SHIFT, SHIFT + 1, size=(n, 2))
        x = np.stack([np.roll(patterns[c], tuple(s), axis=(0, 1)) for c, s in zip(y, shifts)])
        x = 0.5 + CONTRAST * (x + DISTRACTOR * _smooth_patterns(rng, n))
        x += BRIGHTNESS * rng.standard_normal((n, 1, 1, 1))
        x += noise * rng.standard_normal(x.shape)
        return np.clip(np.rint(x * 255), 0, 255).astype(np.uint8), y  # (N, 32, 32, 3)

    x_train, y_train = images(int(train_per_class))
    x_test, y_test = images(int(test_per_class))
    return Dataset(x_train, y_train, x_test, y_test, [f"class{k}" for k in range(num_classes)],
                   "synthetic")


def _smooth_patterns(rng: np.random.Generator, n: int) -> np.ndarray:
    """n periodic low-frequency colour images, (n, 32, 32, 3), values in about [-1, 1]."""
    h, w, ch = IMAGE_SHAPE
    fy = rng.integers(0, FREQS, size=(FREQS, n, ch, 1, 1))
    fx = rng.integers(0, FREQS, size=(FREQS, n, ch, 1, 1))
    phase = rng.uniform(0, 2 * np.pi, size=(FREQS, n, ch, 1, 1))
    amp = rng.uniform(-1, 1, size=(FREQS, n, ch, 1, 1)) / np.sqrt(FREQS)
    yy, xx = np.mgrid[0:h, 0:w] / np.array([h, w]).reshape(2, 1, 1)  # (H, W) each, in [0, 1)
    out = np.zeros((n, ch, h, w))
    for f in range(FREQS):  # one cosine at a time keeps memory at one (n, C, H, W) array
        out += amp[f] * np.cos(2 * np.pi * (fy[f] * yy + fx[f] * xx) + phase[f])
    return out.transpose(0, 2, 3, 1)  # (n, H, W, C)
