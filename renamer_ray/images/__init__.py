"""Image adapter, moved from renamer_ray/images.py to renamer_ray/images/decode.py (the next commit
splits it by concern); the package re-exports what callers import."""

from renamer_ray.images.decode import *  # noqa: F401,F403
from renamer_ray.images.decode import NotAnImage, UnreadableHeader, _plan  # noqa: F401
