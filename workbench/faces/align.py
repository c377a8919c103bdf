"""The 5-point face template every aligned crop uses (insightface's ArcFace template, 112 x 112 px:
image-left eye, image-right eye, nose tip, left and right mouth corners)."""

import numpy as np

ARCFACE_TEMPLATE = np.array([[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366],
                             [41.5493, 92.3655], [70.7299, 92.2041]], dtype=np.float32)
