"""The README's example input: a "3" in dark pen on light, unevenly lit paper, off-centre, at
200x120 pixels, like a phone photo (drawn, so no MNIST image is involved).

    python docs/project/draw_three.py   # writes docs/project/three.png
"""

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

img = Image.new("L", (200, 120), 215)
d = ImageDraw.Draw(img)
d.arc((120, 14, 166, 58), start=160, end=90, fill=40, width=7)  # upper bowl
d.arc((116, 50, 170, 104), start=270, end=200, fill=40, width=7)  # lower bowl
img = img.filter(ImageFilter.GaussianBlur(1.2))
noise = np.random.default_rng(0).normal(0, 6, (120, 200))  # paper grain
shade = np.linspace(-15, 10, 200)[None, :]  # light from the right
arr = np.clip(np.asarray(img, float) + noise + shade, 0, 255).astype(np.uint8)
Image.fromarray(arr).save(Path(__file__).with_name("three.png"))
