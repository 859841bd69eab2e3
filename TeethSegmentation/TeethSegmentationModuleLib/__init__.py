"""Module-side helpers of the Slicer module (they may import slicer; the engine never does)."""
