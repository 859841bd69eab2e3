"""TeethSegmentation engine: find, segment and FDI-number teeth in dental CBCT.

Plain Python (numpy, scipy, torch, pynrrd). Never imports Qt or Slicer; only ``mrml.py``
touches the Slicer scene, and nothing else in the engine imports it.
"""

__version__ = "0.1.0"
