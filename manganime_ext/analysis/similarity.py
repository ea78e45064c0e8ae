"""The study's frame similarity rho(A, B) = A.B / (|A| |B|): the signal cut detection and intro search use.

Frames are uint8, so every dot product is an integer, and we compute it exactly at float32 speed: the
flat frame is cut into rows of ``ROW`` values; one row's products and running sums are integers of at
most ROW * 255**2 < 2**24, which float32 holds exactly whatever the summation order, and the row sums
are added in float64 (exact below 2**53). The result equals the float64 formula bit for bit, at about
a twentieth of its cost, which matters because rho is computed for every frame while ffmpeg decodes.
"""

from typing import List, Optional

import numpy as np

ROW = 256  # 256 * 255**2 = 16,646,400 <= 2**24 = 16,777,216: the longest row float32 sums exactly.


def frame_vector(frame: np.ndarray, out: Optional[np.ndarray] = None) -> np.ndarray:
    """A uint8 frame (any shape) as float32 rows of ``ROW`` values, zero-padded: the operand of ``dot``.

    ``out`` (an earlier result for a frame of the same size) is reused, so a stream allocates nothing.
    """
    flat = np.asarray(frame).reshape(-1)
    rows = -(-flat.size // ROW)
    vec = np.zeros(rows * ROW, np.float32) if out is None else out.reshape(-1)
    np.copyto(vec[:flat.size], flat, casting="unsafe")
    return vec.reshape(rows, ROW)


def dot(a: np.ndarray, b: np.ndarray) -> float:
    """Exact dot product of two ``frame_vector`` results.

    einsum's own loop, not BLAS: while ffmpeg decodes on the same cores, BLAS threads spin against it.
    """
    return float(np.einsum("ij,ij->i", a, b).sum(dtype=np.float64))


def cosine_from_dots(ab: float, norm_a: float, norm_b: float) -> float:
    """rho from A.B and the two norms (so a stream computes each frame's norm once).

    Two black frames are identical (1); a black frame and any other are unlike (0).
    """
    if norm_a == 0.0 or norm_b == 0.0:
        return 1.0 if norm_a == norm_b else 0.0
    return ab / (norm_a * norm_b)


def cosine_similarity(a: np.ndarray, b: np.ndarray) -> float:
    """rho of two frames' ``frame_vector`` results."""
    return cosine_from_dots(dot(a, b), np.sqrt(dot(a, a)), np.sqrt(dot(b, b)))


class RhoStream:
    """rho of each consecutive pair of a stream of frames, one frame at a time: ``push(frame)``, then ``values``.

    Holds two frame vectors, reused in turn, so a stream allocates nothing per frame, and computes
    each frame's norm once.
    """

    def __init__(self) -> None:
        self.values: List[float] = []
        self._prev: Optional[np.ndarray] = None
        self._spare: Optional[np.ndarray] = None
        self._prev_norm = 0.0

    def push(self, frame: np.ndarray) -> None:
        vec = frame_vector(frame, self._spare)
        norm = np.sqrt(dot(vec, vec))
        if self._prev is not None:
            self.values.append(cosine_from_dots(dot(self._prev, vec), self._prev_norm, norm))
        self._prev, self._prev_norm, self._spare = vec, norm, self._prev
