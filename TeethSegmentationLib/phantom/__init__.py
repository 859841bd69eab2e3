"""Synthetic dental CBCT with exact FDI ground truth: the data of the tests, the demo and the default model.

``make_phantom(seed, size, fov, grey, spacing, convention, family)`` returns a :class:`PhantomCase` (image and
uint8 FDI label map on the same grid, plus a JSON-able ``info``); ``write_phantoms`` writes cases as NRRD.

Modules: ``anatomy`` (textbook crown and root dimensions, roots and cusps per type and jaw), ``family``
(A: trained on; B: never trained on), ``dentition`` (arches, tooth plans), ``variation`` (crowding,
rotations, eruption, age, bridges, gaps...), ``tooth`` (one tooth's shape), ``mouth`` (teeth in sockets
and dental work), ``head`` (jaws, skull, airway, soft tissue), ``field_of_view`` (scan box and grid),
``scanner`` (grey values and artefacts), ``grid`` (RAS grid, file conventions).
"""

from typing import Any

from TeethSegmentationLib.phantom.choices import CONVENTIONS, DENTITIONS, FAMILIES, FOVS, GREYS, SIZES

_GENERATOR = ("PhantomCase", "make_phantom", "write_phantoms")


def __getattr__(name: str) -> Any:
    """The generator (numpy, scipy) loads on first use: the command line's --help only needs the choices."""
    if name in _GENERATOR:
        from TeethSegmentationLib.phantom import generate

        return getattr(generate, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


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
