"""The seeds' Keras training pipeline, run by `train_vs_keras.py` in the peers' environment (TensorFlow).

    benchmarks/.peers/bin/python benchmarks/keras_seed_cnn.py SETUP_JSON

Not a ferkit module: it imports neither ferkit nor torch. SETUP_JSON names a .npz of 48×48 gray images
(`x`, uint8 N×48×48) with labels (`y`), the augmentation ranges, the batch size and the settings to try
(`{"name", "precision": "float32"|"mixed_bfloat16", "workers"}`) and `threads` (TensorFlow's intra-op
threads; 0: its default, every core); `keep_freed_memory` runs it all inside ferkit's `reuse_freed_memory`
(plain Python, loaded from its file). It builds one model per setting,
warms each up, prints one JSON line `{"ready": ...}`, then answers each line `{"setting", "steps"}` read
on stdin with one timed `model.fit` of that many steps: `{"setting", "images", "seconds"}`, the seconds
counted from the end of the first batch to the end of the last (the images are those in between).
"""

from __future__ import annotations

import importlib.util
import json
import os
import sys
import time
from contextlib import nullcontext
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from keras import layers  # noqa: E402
from tensorflow.keras.preprocessing.image import ImageDataGenerator  # noqa: E402


def seed_cnn(num_classes: int, precision: str) -> keras.Model:
    """ferkit's seed_cnn layer by layer: the seeds' notebook network."""
    keras.mixed_precision.set_dtype_policy(precision)
    model = keras.Sequential([
        keras.Input((48, 48, 1)),
        layers.Conv2D(64, 3), layers.BatchNormalization(), layers.ReLU(), layers.MaxPooling2D(2),
        layers.Conv2D(128, 3), layers.BatchNormalization(), layers.ReLU(), layers.MaxPooling2D(2),
        layers.Flatten(),
        layers.Dense(256), layers.BatchNormalization(), layers.ReLU(),
        layers.Dense(128), layers.BatchNormalization(), layers.ReLU(),
        layers.Dense(num_classes, activation="softmax", dtype="float32"),
    ])  # fmt: skip
    keras.mixed_precision.set_dtype_policy("float32")
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="categorical_crossentropy")
    return model


def augmenter(ranges: dict) -> ImageDataGenerator:
    return ImageDataGenerator(
        rescale=1 / 255, rotation_range=ranges["rotation"], width_shift_range=ranges["width_shift"],
        height_shift_range=ranges["height_shift"], shear_range=ranges["shear"], zoom_range=ranges["zoom"],
        horizontal_flip=ranges["horizontal_flip"], fill_mode="nearest")


class BatchClock(keras.callbacks.Callback):
    def on_train_begin(self, logs=None) -> None:
        self.ends: list[float] = []

    def on_train_batch_end(self, batch, logs=None) -> None:
        self.ends.append(time.perf_counter())


def reuse_freed_memory():
    """ferkit's `training.heap.reuse_freed_memory()`, without importing ferkit."""
    path = Path(__file__).resolve().parents[1] / "src" / "ferkit" / "training" / "heap.py"
    spec = importlib.util.spec_from_file_location("ferkit_heap", path)
    heap = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(heap)
    return heap.reuse_freed_memory()


def counts(model: keras.Model) -> dict:
    trainable = sum(int(np.prod(w.shape)) for w in model.trainable_weights)
    return {"trainable": trainable, "total": model.count_params()}


def main() -> None:
    setup = json.loads(sys.argv[1])
    with reuse_freed_memory() if setup.get("keep_freed_memory") else nullcontext():
        serve(setup)


def serve(setup: dict) -> None:
    if setup["threads"]:
        tf.config.threading.set_intra_op_parallelism_threads(setup["threads"])
    data = np.load(setup["data"])
    x = data["x"][..., None].astype("float32")
    y = keras.utils.to_categorical(data["y"], setup["num_classes"])
    batch = setup["batch"]
    keras.utils.set_random_seed(0)
    runs = {}
    for setting in setup["settings"]:
        model = seed_cnn(setup["num_classes"], setting["precision"])
        flow = augmenter(setup["augment"]).flow(x, y, batch_size=batch, seed=0)
        flow.workers = setting["workers"]
        model.fit(flow, steps_per_epoch=setup["warmup_steps"], epochs=1, verbose=0)
        runs[setting["name"]] = (model, flow)
    print(json.dumps({"ready": True, "params": counts(model), "tensorflow": tf.__version__,
                      "keras": keras.__version__, "intra_op_threads": tf.config.threading
                      .get_intra_op_parallelism_threads() or os.cpu_count(),
                      "inter_op_threads": tf.config.threading.get_inter_op_parallelism_threads()
                      or os.cpu_count()}), flush=True)
    for line in sys.stdin:
        request = json.loads(line)
        model, flow = runs[request["setting"]]
        clock = BatchClock()
        model.fit(flow, steps_per_epoch=request["steps"], epochs=1, verbose=0, callbacks=[clock])
        print(json.dumps({"setting": request["setting"], "images": batch * (len(clock.ends) - 1),
                          "seconds": clock.ends[-1] - clock.ends[0]}), flush=True)


if __name__ == "__main__":
    main()
