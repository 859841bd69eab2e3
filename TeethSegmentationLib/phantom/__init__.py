"""Synthetic dental CBCT with exact FDI ground truth: the data of the tests, the demo and the default model.

``make_phantom(seed, size, fov, grey, spacing, convention, family)`` returns a :class:`PhantomCase` (image and
uint8 FDI label map on the same grid, plus a JSON-able ``info``); ``write_phantoms`` writes cases as NRRD.

Modules: ``anatomy`` (textbook crown and root dimensions, roots and cusps per type and jaw), ``family``
(A: trained on; B: never trained on), ``dentition`` (arches, tooth plans), ``variation`` (crowding,
rotations, eruption, age, bridges, gaps...), ``tooth`` (one tooth's shape), ``mouth`` (teeth in sockets
and dental work), ``head`` (jaws, skull, airway, soft tissue), ``field_of_view`` (scan box and grid),
``scanner`` (grey values and artefacts), ``grid`` (RAS grid, file conventions).
"""

from TeethSegmentationLib.phantom.generate import (
    CONVENTIONS,
    DENTITIONS,
    FAMILIES,
    FOVS,
    GREYS,
    SIZES,
    PhantomCase,
    make_phantom,
    write_phantoms,
)

__all__ = [
    "CONVENTIONS",
    "DENTITIONS",
    "FAMILIES",
    "FOVS",
    "GREYS",
    "SIZES",
    "PhantomCase",
    "make_phantom",
    "write_phantoms",
]
