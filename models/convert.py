"""Convert trained PyTorch weights into a full-integer int8 TFLite model and check its graph.

    python -m models.convert --weights models/work/best.pt --data ../shared/data/ham10000 --out models/lesion

The PyTorch weights are copied into the identical Keras graph (models.net),
which TensorFlow's converter quantizes with a representative dataset of
training images: int8 input, int8 output (logits; the kiosk applies the
softmax), every convolution, depthwise convolution, add, mean and fully
connected op in int8. :func:`check_int8` reads the model back and refuses any
float left-over.

Before that, the weights are rounded onto the int8 grid with GPTQ
(:mod:`models.rounding`, ``--rounding gptq``, the default), which keeps each
layer's output closer to the float model's than the converter's own
round-to-nearest (``--rounding nearest``).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from models.data import LABELS, load_rgb, read_isic_folder, split

#: Ops that must run in int8 in the shipped model, and how many leading inputs are
#: activations or weights (the rest are int32 biases or axes, by design).
INT8_OPS = {"CONV_2D": 2, "DEPTHWISE_CONV_2D": 2, "FULLY_CONNECTED": 2, "ADD": 2, "MEAN": 1,
            "AVERAGE_POOL_2D": 1}


def training_sample(data: Path, n: int, seed: int):
    """The items of ``data`` and ``n`` indices drawn (seeded) from its training split."""
    items = read_isic_folder(data)
    train = split(items, seed=0)["train"]
    return items, np.random.default_rng(seed).choice(train, size=min(n, len(train)), replace=False)


def calibration_images(data: Path, size: int, n: int = 256, seed: int = 1, **canvas) -> np.ndarray:
    """``n`` training images (uint8 NHWC) for measuring each layer's inputs before rounding.

    ``data``: an ISIC-format folder, or a pack of every source (``models.sources``, a ``.npz``), whose
    images are made into the model's canvas (``canvas``: ``crop``, ``colour``; see
    ``models.sources.pack_training_images``).
    """
    if str(data).endswith(".npz"):
        from models.sources import pack_training_images

        return pack_training_images(data, n, seed, size, **canvas)
    items, pick = training_sample(data, n, seed)
    return np.stack([load_rgb(items[i].path, size) for i in np.sort(pick)])


def keras_model(weights: Path, size: int, rounding: str = "nearest", data: Path | None = None, **canvas):
    """The Keras model (logits output) with the PyTorch weights loaded.

    ``rounding="gptq"`` first rounds the weights onto the int8 grid with
    :func:`models.rounding.round_state_dict`, calibrated on training images from ``data``.
    """
    import tensorflow as tf
    import torch

    from models.net import build_keras

    state = torch.load(weights, map_location="cpu")
    if rounding == "gptq":
        from models.rounding import round_state_dict

        state = round_state_dict(state, calibration_images(data, size, **canvas))
    elif rounding != "nearest":
        raise ValueError(f"rounding must be 'gptq' or 'nearest', not {rounding!r}")
    state = {k: v.float().numpy() for k, v in state.items()}
    full = build_keras(state, len(LABELS), size)
    logits = full.get_layer("probabilities").input  # drop the softmax: int8 logits keep the ranking
    return tf.keras.Model(full.input, logits)


def representative(data: Path, size: int, n: int = 400, seed: int = 0, **canvas):
    """A generator of ``n`` normalised training images (calibration for the int8 ranges)."""
    from models.net import MEAN, STD

    if str(data).endswith(".npz"):
        imgs = calibration_images(data, size, n, seed, **canvas)

        def gen_pack():
            for rgb in imgs:
                yield [((rgb.astype(np.float32) - MEAN) / STD)[None]]

        return gen_pack
    items, pick = training_sample(data, n, seed)

    def gen():
        for i in pick:
            x = (load_rgb(items[i].path, size).astype(np.float32) - MEAN) / STD
            yield [x[None]]

    return gen


def convert(model, rep) -> bytes:
    """Full-integer quantization with int8 input and output."""
    import tensorflow as tf

    conv = tf.lite.TFLiteConverter.from_keras_model(model)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = rep
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    conv.inference_input_type = tf.int8
    conv.inference_output_type = tf.int8
    return conv.convert()


def op_list(tflite_bytes: bytes) -> list[dict]:
    """Each op of the model with the dtypes of its inputs and outputs."""
    from ai_edge_litert.interpreter import Interpreter

    it = Interpreter(model_content=tflite_bytes)
    tensors = {t["index"]: t for t in it.get_tensor_details()}
    ops = []
    for op in it._get_ops_details():  # noqa: SLF001 - the only API that lists ops
        ops.append({
            "op": op["op_name"],
            "inputs": [str(np.dtype(tensors[i]["dtype"])) for i in op["inputs"] if i >= 0 and i in tensors],
            "outputs": [str(np.dtype(tensors[i]["dtype"])) for i in op["outputs"] if i in tensors],
        })
    return ops


def check_int8(tflite_bytes: bytes) -> list[str]:
    """Problems that make the model not full-integer (empty list = clean)."""
    from ai_edge_litert.interpreter import Interpreter

    problems = []
    it = Interpreter(model_content=tflite_bytes)
    for d in it.get_input_details() + it.get_output_details():
        if d["dtype"] not in (np.int8, np.uint8):
            problems.append(f"model input/output {d['name']} is {np.dtype(d['dtype'])}")
    for op in op_list(tflite_bytes):
        if op["op"] in ("DEQUANTIZE",):
            problems.append("DEQUANTIZE op: a float left-over")
        if op["op"] in INT8_OPS:
            bad = [t for t in op["inputs"][:INT8_OPS[op["op"]]] + op["outputs"] if t not in ("int8", "uint8")]
            if bad:
                problems.append(f"{op['op']} has {bad} tensors")
        if any(t.startswith("float") for t in op["inputs"] + op["outputs"]):
            problems.append(f"{op['op']} touches float tensors")
    return problems


def main(argv=None) -> None:
    """Convert, check and write model.tflite (the manifest is written by models.evaluate)."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--weights", required=True)
    p.add_argument("--data", required=True, help="ISIC-format folder or a pack of every source (.npz)")
    p.add_argument("--out", required=True)
    p.add_argument("--size", type=int, default=224)
    p.add_argument("--rounding", choices=("gptq", "nearest"), default="gptq",
                   help="how weights reach the int8 grid (default: gptq, see models.rounding)")
    p.add_argument("--crop", choices=("centre", "lesion"), default="centre", help="the model's canvas (a pack)")
    p.add_argument("--colour", choices=("none", "shades-of-gray"), default="none", help="the model's canvas (a pack)")
    a = p.parse_args(argv)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    canvas = {"crop": a.crop, "colour": a.colour} if str(a.data).endswith(".npz") else {}
    model = keras_model(Path(a.weights), a.size, a.rounding, Path(a.data), **canvas)
    tfl = convert(model, representative(Path(a.data), a.size, **canvas))
    problems = check_int8(tfl)
    if problems:
        raise SystemExit("not a full-int8 model:\n" + "\n".join(sorted(set(problems))))
    (out / "model.tflite").write_bytes(tfl)
    print(f"wrote {out / 'model.tflite'} ({len(tfl) / 1e6:.2f} MB), ops: "
          + ", ".join(sorted({o['op'] for o in op_list(tfl)})))


if __name__ == "__main__":
    main()
