"""The seed's 64×64 generator (paper preset: zDim 100, 64 features, 1 channel), exported to ONNX by
dcgan, loaded in Python's onnxruntime and compared with PyTorch's own output.

1. Builds the seed's Generator (dcgan.py) with torch.manual_seed(SEED) and BatchNorm weights near 1
   (init "pytorch-example": with the seed's N(0, 0.02) the untrained network's images are one grey
   level, which would compare nothing), sets its running statistics to the batch statistics of
   two training-mode forward passes (momentum None: their plain average), and saves its
   state_dict as safetensors.
2. Loads those weights into dcgan (`DCGAN.loadWeights`, dist/ of this checkout) and exports the
   generator with `exportOnnx`.
3. Runs the file in onnxruntime (CPUExecutionProvider) on fixed z and compares with the PyTorch
   generator in eval mode on the same z: the fixture is PyTorch's answer, made here.

Run (onnxruntime is not in the torch venv; install it beside, not into it):
    pip install --target /tmp/ort-pkgs onnxruntime
    PYTHONPATH=/tmp/ort-pkgs node scripts/with-torch.mjs python benchmark/reference/check_onnx.py
Exits 1 if any value differs by more than 1e-4.
"""
import json
import os
import subprocess
import sys
import tempfile

import numpy as np
import onnxruntime
import torch
from safetensors.torch import save_file

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from dcgan import build  # noqa: E402

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
SEED = 2026
TOLERANCE = 1e-4
# The paper preset's model (crates/dcgan-core/src/options.rs: ModelConfig::default()).
PAPER = dict(z_dim=100, channels=1, features_g=64, features_d=64, image_size=64)

EXPORT_JS = """
const { DCGAN, exportOnnx } = require(process.argv[1])
const [weights, out] = process.argv.slice(2)
;(async () => {
  const gan = await DCGAN.create({ zDim: 100, channels: 1, featuresG: 64, featuresD: 64, imageSize: 64, device: 'cpu' })
  await gan.loadWeights(weights)
  console.log(JSON.stringify(await exportOnnx(gan, out)))
})().catch((e) => { console.error(e); process.exit(1) })
"""


def seed_generator():
    torch.manual_seed(SEED)
    gen, _ = build(**PAPER, init="pytorch-example")
    norms = [m for m in gen.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    for m in norms:
        m.momentum = None  # running statistics = the average of the batches' statistics
    with torch.no_grad():
        gen.train()
        for _ in range(2):
            gen(torch.randn(8, PAPER["z_dim"], 1, 1))
    for m in norms:
        m.momentum = 0.1
    return gen.eval()


def main():
    gen = seed_generator()
    work = tempfile.mkdtemp(prefix="dcgan-check-onnx-")
    weights = os.path.join(work, "generator.safetensors")
    save_file({k: v.contiguous() for k, v in gen.state_dict().items()}, weights)
    onnx_path = os.path.join(work, "generator.onnx")
    done = subprocess.run(["node", "-e", EXPORT_JS, os.path.join(ROOT, "dist", "index.js"), weights, onnx_path],
                          capture_output=True, text=True, check=True)
    info = json.loads(done.stdout)

    z = torch.randn(8, PAPER["z_dim"], 1, 1, generator=torch.Generator().manual_seed(7))
    with torch.no_grad():
        expected = gen(z).numpy()
    session = onnxruntime.InferenceSession(onnx_path, providers=["CPUExecutionProvider"])
    (actual,) = session.run(["images"], {"z": z.numpy()})
    diff = float(np.abs(actual - expected).max())
    result = {
        "onnxruntime": onnxruntime.__version__,
        "torch": torch.__version__,
        "file_bytes": os.path.getsize(onnx_path),
        "opset": info["opset"],
        "inputs": [(i.name, i.shape) for i in session.get_inputs()],
        "outputs": [(o.name, o.shape) for o in session.get_outputs()],
        "batch": int(z.shape[0]),
        "output_range": [float(actual.min()), float(actual.max())],
        "output_std": float(actual.std()),
        "max_abs_diff_vs_pytorch": diff,
        "tolerance": TOLERANCE,
    }
    print(json.dumps(result, indent=2))
    sys.exit(0 if diff <= TOLERANCE else 1)


if __name__ == "__main__":
    main()
