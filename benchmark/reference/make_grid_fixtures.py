"""Writes __test__/fixtures/grid: the pixels torchvision's save_image(make_grid(...)) writes for a
few batches and option sets (normalize, value_range, pad_value, nrow, padding), for
__test__/grid.spec.ts, which compares saveImageGrid's PNG with them byte for byte.

save_image (torchvision 0.26): grid = make_grid(tensor, **kwargs); then
grid.mul(255).add_(0.5).clamp_(0, 255).permute(1, 2, 0).to(torch.uint8). make_grid turns a
1-channel batch into 3 equal channels; our PNG of it is grayscale, so the test compares channel 0
(and checks here that the three are equal).

    node scripts/with-torch.mjs python benchmark/reference/make_grid_fixtures.py
"""
import json
import os

import torch
from safetensors.torch import save_file
from torchvision.utils import make_grid

OUT = os.path.join(os.path.dirname(__file__), '..', '..', '__test__', 'fixtures', 'grid', 'grids.safetensors')

g = torch.Generator().manual_seed(0)
rgb = torch.randn(5, 3, 6, 7, generator=g) * 1.5  # values well beyond [-1, 1]
gray = torch.rand(4, 1, 5, 5, generator=g) * 3 - 1

# name -> (images, make_grid options as torchvision spells them)
CASES = {
    'rgb-minmax': (rgb, dict(nrow=2, padding=1, normalize=True)),
    'rgb-range-pad': (rgb, dict(nrow=3, padding=2, normalize=True, value_range=(-1.0, 1.0), pad_value=0.5)),
    'gray-range-white-pad': (gray, dict(nrow=4, padding=3, normalize=True, value_range=(-0.5, 1.5), pad_value=1.0)),
    'gray-minmax-no-pad': (gray, dict(nrow=3, padding=0, normalize=True)),
    # One image: make_grid returns it alone, without the padding.
    'rgb-one': (rgb[:1], dict(nrow=8, padding=2, normalize=True, value_range=(-1.0, 1.0))),
    'gray-one-minmax': (gray[:1], dict(nrow=8, padding=2, normalize=True)),
}

tensors, meta = {}, {}
for name, (images, options) in CASES.items():
    grid = make_grid(images.clone(), **options)
    pixels = grid.mul(255).add_(0.5).clamp_(0, 255).permute(1, 2, 0).to('cpu', torch.uint8)
    if images.shape[1] == 1 and pixels.shape[-1] == 3:
        assert torch.equal(pixels[..., 0], pixels[..., 1]) and torch.equal(pixels[..., 0], pixels[..., 2])
        pixels = pixels[..., :1]
    tensors[f'{name}.images'] = images.clone()
    tensors[f'{name}.pixels'] = pixels.to(torch.float32).contiguous()
    meta[name] = options

os.makedirs(os.path.dirname(OUT), exist_ok=True)
save_file(tensors, OUT, metadata={'cases': json.dumps(meta)})
print(f'wrote {OUT}: {", ".join(CASES)}')
