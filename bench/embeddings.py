"""Real MobileNet embeddings for the training benchmarks, cached outside the repo.

Two data sets, both (N, 1024) float32 with a group-aware train/test split:

* ``core50_embeddings()``: the 90 real CORe50 frames in ``shared/data/core50_mini``
  (10 classes), each kept once as is and ``num_aug`` times augmented (random crop,
  flip, small rotation, brightness). Train and test are split by *source image*, so
  augmented copies of a test frame never appear in train.
* ``synthetic_17_classes()``: 17 synthetic classes built from the real embeddings'
  statistics: class means are random mixtures of the real class-mean deviations
  around the real global mean, and each sample adds a real within-class residual
  (train samples take residuals of train sources, test samples of test sources),
  clipped at 0 like the ReLU6 outputs they imitate.

The embedding function is deliberately small (bare LiteRT interpreter); it is meant
to be swapped for ``kiosk.embedding.EmbeddingExtractor`` later.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("KIOSK_SHARED_DIR", ROOT.parent / "shared")).resolve()
EXTRACTOR = SHARED / "models" / "mobilenet_v1_1.0_224_quant_embedding_extractor.tflite"
CORE50 = SHARED / "data" / "core50_mini"
CACHE_DIR = Path(os.environ.get("KIOSK_BENCH_CACHE", Path(tempfile.gettempdir()) / "kiosk-bench"))

INPUT_SIZE = 224
# Output quantization of the MobileNet v1 extractor (uint8 [1,1,1,1024]).
OUT_SCALE = 0.023528477
OUT_ZERO_POINT = 0


@dataclass(frozen=True)
class EmbeddingSet:
    """Embeddings with labels and a train/test split by source image.

    Attributes:
        x: (N, D) float32 embeddings.
        y: (N,) int64 class indices.
        groups: (N,) int64 source-image index of each sample (augmented copies share it).
        train: (N,) bool, True for training samples.
        class_names: names of the classes, indexed by label.
        description: one line saying what the data is.
    """

    x: np.ndarray
    y: np.ndarray
    groups: np.ndarray
    train: np.ndarray
    class_names: tuple[str, ...]
    description: str

    def pycoral_data(self, with_val: bool = False) -> dict[str, np.ndarray]:
        """The pycoral ``data`` dict: train split, and the test split as validation.

        With ``with_val=False`` the validation arrays are empty, which is how the
        benchmark trains (the test split must not steer training).
        """
        test = ~self.train
        empty = np.zeros((0, self.x.shape[1]), np.float32)
        return {
            "data_train": self.x[self.train],
            "labels_train": self.y[self.train],
            "data_val": self.x[test] if with_val else empty,
            "labels_val": self.y[test] if with_val else np.zeros(0, np.int64),
        }


def embed_images(images: list[np.ndarray], model_path: Path = EXTRACTOR) -> np.ndarray:
    """Embeds RGB images with the bare LiteRT interpreter.

    Args:
        images: list of (H, W, 3) uint8 RGB images of any size.
        model_path: the MobileNet v1 embedding extractor.

    Returns:
        (N, 1024) float32 dequantized embeddings.
    """
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(model_path), num_threads=2)
    interpreter.allocate_tensors()
    inp = interpreter.get_input_details()[0]["index"]
    out = interpreter.get_output_details()[0]["index"]
    result = np.empty((len(images), 1024), np.float32)
    for i, image in enumerate(images):
        interpreter.set_tensor(inp, to_model_input(image)[None])
        interpreter.invoke()
        q = interpreter.get_tensor(out).reshape(-1).astype(np.float32)
        result[i] = OUT_SCALE * (q - OUT_ZERO_POINT)
    return result


def to_model_input(image: np.ndarray) -> np.ndarray:
    """Center square crop, then resize to (224, 224, 3) uint8."""
    h, w = image.shape[:2]
    side = min(h, w)
    top, left = (h - side) // 2, (w - side) // 2
    square = image[top : top + side, left : left + side]
    # INTER_AREA averages when shrinking; it degrades to nearest when enlarging.
    interp = cv2.INTER_AREA if side > INPUT_SIZE else cv2.INTER_LINEAR
    return cv2.resize(square, (INPUT_SIZE, INPUT_SIZE), interpolation=interp)


def augment(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One random augmentation of an (H, W, 3) uint8 image: crop, flip, rotation, brightness."""
    h, w = image.shape[:2]
    frac = rng.uniform(0.7, 1.0)
    ch, cw = round(h * frac), round(w * frac)
    top = int(rng.integers(0, h - ch + 1))
    left = int(rng.integers(0, w - cw + 1))
    out = image[top : top + ch, left : left + cw]
    if rng.random() < 0.5:
        out = out[:, ::-1]
    angle = rng.uniform(-12.0, 12.0)
    rot = cv2.getRotationMatrix2D((cw / 2.0, ch / 2.0), angle, 1.0)
    out = cv2.warpAffine(
        np.ascontiguousarray(out), rot, (cw, ch), borderMode=cv2.BORDER_REFLECT_101
    )
    gain = rng.uniform(0.75, 1.25)
    return np.clip(out.astype(np.float32) * gain, 0, 255).astype(np.uint8)


def _list_core50(root: Path) -> tuple[list[Path], list[int], tuple[str, ...]]:
    names = tuple(sorted(p.name for p in root.iterdir() if p.is_dir()))
    files, labels = [], []
    for label, name in enumerate(names):
        for f in sorted((root / name).glob("*.png")):
            files.append(f)
            labels.append(label)
    return files, labels, names


def _group_split(labels: np.ndarray, test_fraction: float, rng: np.random.Generator) -> np.ndarray:
    """(G,) bool: True for source images kept for training, stratified by class."""
    keep = np.ones(len(labels), bool)
    for c in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == c))
        n_test = max(1, round(test_fraction * len(idx)))
        keep[idx[:n_test]] = False
    return keep


def _cache_path(tag: str, *parts: object) -> Path:
    stat = EXTRACTOR.stat()
    key = repr((tag, stat.st_size, stat.st_mtime_ns, *parts)).encode()
    return CACHE_DIR / f"{tag}-{hashlib.sha1(key).hexdigest()[:12]}.npz"


def core50_embeddings(num_aug: int = 13, test_fraction: float = 0.3, seed: int = 0) -> EmbeddingSet:
    """Embeddings of the 90 CORe50 frames plus ``num_aug`` augmented copies of each.

    ``num_aug=13`` gives 1,260 samples (about 870 train / 390 test). Cached as .npz.
    """
    files, labels, names = _list_core50(CORE50)
    path = _cache_path("core50", num_aug, test_fraction, seed, [f.name for f in files])
    if path.exists():
        z = np.load(path)
        x, y, groups, train = z["x"], z["y"], z["groups"], z["train"]
    else:
        rng = np.random.default_rng(seed)
        train_src = _group_split(np.asarray(labels), test_fraction, rng)
        images, y_list, g_list = [], [], []
        for g, (f, label) in enumerate(zip(files, labels, strict=True)):
            rgb = cv2.cvtColor(cv2.imread(str(f), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
            images.append(rgb)
            images.extend(augment(rgb, rng) for _ in range(num_aug))
            y_list += [label] * (num_aug + 1)
            g_list += [g] * (num_aug + 1)
        x = embed_images(images)
        y = np.asarray(y_list, np.int64)
        groups = np.asarray(g_list, np.int64)
        train = train_src[groups]
        CACHE_DIR.mkdir(parents=True, exist_ok=True)
        np.savez(path, x=x, y=y, groups=groups, train=train)
    desc = (
        f"REAL MobileNet v1 embeddings of CORe50 mini, {len(names)} classes, "
        f"{len(files)} frames x {num_aug + 1} (original + {num_aug} augmented), "
        f"train/test split by source frame"
    )
    return EmbeddingSet(x, y, groups, train, names, desc)


def resplit(ds: EmbeddingSet, seed: int, test_fraction: float = 0.3) -> EmbeddingSet:
    """The same samples with another train/test split by source image (stratified)."""
    sources, first = np.unique(ds.groups, return_index=True)
    keep = _group_split(ds.y[first], test_fraction, np.random.default_rng(seed))
    train = keep[np.searchsorted(sources, ds.groups)]
    desc = f"{ds.description} (split seed {seed})"
    return EmbeddingSet(ds.x, ds.y, ds.groups, train, ds.class_names, desc)


def synthetic_17_classes(
    num_classes: int = 17,
    num_train: int = 1020,
    num_test: int = 1020,
    seed: int = 1,
    real: EmbeddingSet | None = None,
) -> EmbeddingSet:
    """A harder, wider synthetic set that imitates real embedding statistics.

    Class means: the real global mean plus a random mixture of the real class-mean
    deviations (so the between-class spread and its directions match the real data).
    Samples: a class mean plus a real within-class residual, clipped at 0. Train
    samples draw residuals from train sources only, test samples from test sources.
    """
    real = core50_embeddings() if real is None else real
    rng = np.random.default_rng(seed)
    x, y = real.x.astype(np.float64), real.y
    classes = np.unique(y)
    means = np.stack([x[y == c].mean(axis=0) for c in classes])
    grand = means.mean(axis=0)
    deviations = means - grand  # (K, D)
    # Mixture weights with unit expected squared norm keep the real spread.
    mix = rng.standard_normal((num_classes, len(classes))) / np.sqrt(len(classes))
    new_means = grand + mix @ deviations
    residuals = x - means[np.searchsorted(classes, y)]

    def draw(n: int, pool: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        labels = np.arange(n) % num_classes
        picks = rng.choice(pool, n)
        samples = np.maximum(new_means[labels] + residuals[picks], 0.0)
        # Samples sharing a residual's source frame are related: keep them grouped.
        return samples.astype(np.float32), labels.astype(np.int64), real.groups[picks]

    x_tr, y_tr, g_tr = draw(num_train, np.flatnonzero(real.train))
    x_te, y_te, g_te = draw(num_test, np.flatnonzero(~real.train))
    xs = np.concatenate([x_tr, x_te])
    ys = np.concatenate([y_tr, y_te])
    groups = np.concatenate([g_tr, g_te])
    train = np.arange(len(xs)) < num_train
    desc = (
        f"SYNTHETIC 1024-d, {num_classes} classes made from the real set's statistics "
        f"(mixed real class means + real within-class residuals, clipped at 0)"
    )
    names = tuple(f"class_{i}" for i in range(num_classes))
    return EmbeddingSet(xs, ys, groups, train, names, desc)


SIGN_DIGITS = SHARED / "data" / "sign_digits_40"
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")


@dataclass(frozen=True)
class CaptureEmbeddings:
    """Every image of a folder set embedded the ways the kiosk embeds it.

    Attributes:
        captured: (N, D) float32, as a capture stores it: the model input goes
            through the stored JPEG and back before it is embedded.
        captured_mirror: (N, D) float32, the decoded JPEG mirrored left-right
            (the copy ``flip_augment`` trains on).
        live: (N, D) float32, as a live frame is embedded (no JPEG).
        live_mirror: (N, D) float32, the live model input mirrored.
        y: (N,) int64 class indices.
        files: (N,) file paths.
        class_names: names, indexed by label.
    """

    captured: np.ndarray
    captured_mirror: np.ndarray
    live: np.ndarray
    live_mirror: np.ndarray
    y: np.ndarray
    files: tuple[str, ...]
    class_names: tuple[str, ...]


def list_image_folder(root: Path) -> tuple[list[Path], np.ndarray, tuple[str, ...]]:
    """(files, (N,) labels, class names) of a folder with one sub-folder of images per class."""
    names = tuple(sorted(p.name for p in root.iterdir() if p.is_dir()))
    files: list[Path] = []
    labels: list[int] = []
    for label, name in enumerate(names):
        for f in sorted((root / name).iterdir()):
            if f.suffix.lower() in IMAGE_SUFFIXES:
                files.append(f)
                labels.append(label)
    return files, np.asarray(labels, np.int64), names


def read_rgb(path: Path) -> np.ndarray:
    """(H, W, 3) uint8 RGB of an image file."""
    return cv2.cvtColor(cv2.imread(str(path), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


def capture_embeddings(root: Path) -> CaptureEmbeddings:
    """Embeds a folder set through the kiosk's own extractor and capture path (cached)."""
    from kiosk.capture import decode_model_input, encode_model_input
    from kiosk.embedding import EmbeddingExtractor

    files, labels, names = list_image_folder(root)
    path = _cache_path("capture", str(root), [f.name for f in files])
    if path.exists():
        z = np.load(path)
        arrays = [z[k] for k in ("captured", "captured_mirror", "live", "live_mirror")]
    else:
        extractor = EmbeddingExtractor(EXTRACTOR, num_threads=2, edgetpu=False)
        rows: list[list[np.ndarray]] = [[], [], [], []]
        for f in files:
            live = extractor.preprocess(read_rgb(f))
            decoded = decode_model_input(encode_model_input(live))
            views = (decoded, decoded[:, ::-1], live, live[:, ::-1])
            for out, model_input in zip(rows, views, strict=True):
                out.append(extractor.embed_input(np.ascontiguousarray(model_input)))
        arrays = [np.stack(r).astype(np.float32) for r in rows]
        CACHE_DIR.mkdir(parents=True, exist_ok=True)
        np.savez(path, captured=arrays[0], captured_mirror=arrays[1], live=arrays[2],
                 live_mirror=arrays[3])  # fmt: skip
    return CaptureEmbeddings(*arrays, labels, tuple(str(f) for f in files), names)
