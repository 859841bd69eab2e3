"""Synthetic dental CBCT with exact FDI ground truth: the data of the tests, the demo and the default model.

``make_phantom(seed, size, fov, grey, spacing, convention)`` returns a :class:`PhantomCase` (image and
uint8 FDI label map on the same grid, plus a JSON-able ``info``); ``write_phantoms`` writes cases as NRRD.

Modules: ``dentition`` (arches, tooth plans), ``tooth`` (one tooth in its box), ``head`` (jaws, skull,
airway, soft tissue), ``scanner`` (grey values and artefacts), ``grid`` (RAS grid, file conventions).
"""

from TeethSegmentationLib.phantom.generate import (
    CONVENTIONS,
    FOVS,
    GREYS,
    SIZES,
    PhantomCase,
    make_phantom,
    write_phantoms,
)

__all__ = ["CONVENTIONS", "FOVS", "GREYS", "SIZES", "PhantomCase", "make_phantom", "write_phantoms"]
