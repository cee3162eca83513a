"""EmbeddingExtractor: an image in, a float32 embedding out.

Wraps a uint8-quantised embedding extractor (MobileNet with its last layer
removed) in the LiteRT interpreter, on the Edge TPU when the model is compiled
for one and a device is present, else on the CPU.
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Literal

import numpy as np

from kiosk.vision import model_check, runtime
from kiosk.vision.preprocess import preprocess

EdgeTpuChoice = Literal["auto"] | bool


class EmbeddingExtractor:
    """Turn images into embeddings with a quantised TFLite extractor.

    Attributes:
        model_path: the ``.tflite`` file.
        sha256: hex digest of the model's bytes (its identity for saved projects).
        feature_dim: D, the embedding length (1024 for MobileNet v1).
        input_size: the model input as (width, height), e.g. (224, 224).
        on_edgetpu: whether inference runs on an Edge TPU.
        output_quantization: (scale, zero_point) of the uint8 embedding tensor.
    """

    def __init__(
        self,
        model_path: str | os.PathLike[str],
        num_threads: int | None = None,
        edgetpu: EdgeTpuChoice = "auto",
    ) -> None:
        """Load and check the model.

        Args:
            model_path: a uint8 embedding extractor ``.tflite``, or the name of
                a model ``kiosk-models fetch`` installs (with or without
                ``.tflite``), found as ``kiosk-models where`` finds it.
            num_threads: CPU threads; ``None`` uses every core.
            edgetpu: ``"auto"`` runs ``_edgetpu`` models on the Edge TPU and others
                on the CPU; ``True`` requires an Edge TPU; ``False`` forces the CPU.

        Raises:
            ValueError: the file is missing or not a usable extractor (a full
                classifier is refused with a pointer to ``kiosk-extractor``), or
                it needs an Edge TPU that is not there (the message names the CPU model).
        """
        if edgetpu not in ("auto", True, False):
            raise ValueError(f"edgetpu must be 'auto', True or False, not {edgetpu!r}")
        self.model_path = _resolve(model_path)
        content = runtime.read_model(self.model_path)[1]
        self.sha256 = hashlib.sha256(content).hexdigest()
        compiled = runtime.is_edgetpu_model(content)
        if edgetpu is True and not compiled:
            raise ValueError(
                f"{self.model_path.name} is not compiled for the Edge TPU; "
                "use its _edgetpu.tflite version or run it on the CPU"
            )
        if compiled and edgetpu is not False:
            try:
                runtime.load_edgetpu_delegate()
            except ValueError as error:
                raise ValueError(
                    f"{self.model_path.name} needs an Edge TPU, but {error}; "
                    f"use the CPU model {runtime.cpu_twin_name(self.model_path)} instead"
                ) from None
        self.on_edgetpu = compiled and edgetpu is not False
        self._interpreter = runtime.load_interpreter(
            content, num_threads=num_threads, edgetpu=self.on_edgetpu, name=self.model_path.name
        )
        self._input, self._output = _check_extractor_io(self._interpreter, self.model_path.name)
        classes = model_check.classifier_classes(content)
        if classes is not None:
            # Its output would "work" as a 1001-d embedding and train a poor head.
            raise ValueError(
                f"{self.model_path.name} is a full classifier ({classes} class scores after a "
                "softmax), not an embedding extractor: cut its head off with "
                f"`kiosk-extractor {self.model_path}` and use the file it writes"
            )
        _, height, width, _ = self._input["shape"]
        self.input_size: tuple[int, int] = (int(width), int(height))
        self.feature_dim = int(np.prod(self._output["shape"][1:]))
        scale, zero_point = self._output["quantization"]
        self.output_quantization = (float(scale), int(zero_point))
        # One interpreter is not safe to share between threads.
        self._lock = threading.Lock()
        # A corrupt model can load and still fail on its first invoke ("Input
        # tensor 64 lacks data", found by the fuzz test): refuse it now, with a
        # clear message, rather than in the middle of the live preview.
        try:
            self.embed_input(np.zeros((height, width, 3), np.uint8))
        except RuntimeError as error:
            detail = str(error).strip().splitlines()[0] if str(error).strip() else "it fails"
            raise ValueError(f"{self.model_path.name} loads but cannot run: {detail}") from None

    def __repr__(self) -> str:
        where = "Edge TPU" if self.on_edgetpu else "CPU"
        return f"EmbeddingExtractor({self.model_path.name!r}, D={self.feature_dim}, {where})"

    def preprocess(self, image: np.ndarray) -> np.ndarray:
        """(H, W, 3) uint8 RGB of any size -> (h, w, 3) uint8 model input."""
        return preprocess(image, self.input_size)

    def embed_input(self, model_input: np.ndarray) -> np.ndarray:
        """Embed an already preprocessed (h, w, 3) uint8 input; returns (D,) float32."""
        width, height = self.input_size
        if model_input.shape != (height, width, 3) or model_input.dtype != np.uint8:
            raise ValueError(
                f"model input must be ({height}, {width}, 3) uint8, "
                f"got {model_input.shape} {model_input.dtype}"
            )
        with self._lock:
            self._interpreter.set_tensor(self._input["index"], model_input[np.newaxis])
            self._interpreter.invoke()
            quantized = self._interpreter.get_tensor(self._output["index"])
        scale, zero_point = self.output_quantization
        return (quantized.reshape(-1).astype(np.float32) - zero_point) * np.float32(scale)

    def embed(self, image: np.ndarray) -> np.ndarray:
        """Embed one (H, W, 3) uint8 RGB image of any size; returns (D,) float32."""
        return self.embed_input(self.preprocess(image))

    def embed_batch(
        self,
        images: Iterable[np.ndarray] | Sequence[np.ndarray],
        progress: Callable[[int], None] | None = None,
    ) -> np.ndarray:
        """Embed many images; returns (N, D) float32.

        Args:
            images: (H, W, 3) uint8 RGB images, sizes may differ.
            progress: called with the number done after each image.
        """
        rows = []
        for done, image in enumerate(images, start=1):
            rows.append(self.embed(image))
            if progress is not None:
                progress(done)
        if not rows:
            return np.zeros((0, self.feature_dim), np.float32)
        return np.stack(rows)


def _resolve(model: str | os.PathLike[str]) -> Path:
    """A path as given, or a bare model name looked up in the model folders (``kiosk.models``)."""
    path = Path(model)
    if path.exists() or len(path.parts) != 1:
        return path
    from kiosk.models import ModelError, find, resolve_model  # only for names: no cycle at import

    try:
        find(path.name)  # a manifest name or file name
    except ModelError:
        return path  # neither a file nor a known name: read_model says "not found"
    return resolve_model(str(model))


def _check_extractor_io(interpreter: object, name: str) -> tuple[dict, dict]:
    """The single image input and single uint8 output, or ``ValueError`` saying why not."""
    inputs = interpreter.get_input_details()  # type: ignore[attr-defined]
    outputs = interpreter.get_output_details()  # type: ignore[attr-defined]
    if len(inputs) != 1 or len(outputs) != 1:
        raise ValueError(
            f"{name} is not an embedding extractor: it has {len(inputs)} inputs and "
            f"{len(outputs)} outputs (expected one of each)"
        )
    image, embedding = inputs[0], outputs[0]
    shape = tuple(int(d) for d in image["shape"])
    if len(shape) != 4 or shape[0] != 1 or shape[3] != 3 or image["dtype"] != np.uint8:
        raise ValueError(
            f"{name} is not an image model: its input is {shape} "
            f"{np.dtype(image['dtype']).name} (expected uint8 [1, H, W, 3])"
        )
    if embedding["dtype"] != np.uint8 or embedding["quantization"][0] == 0:
        raise ValueError(
            f"{name} is not a uint8-quantized extractor: its output is "
            f"{np.dtype(embedding['dtype']).name}"
        )
    return image, embedding
