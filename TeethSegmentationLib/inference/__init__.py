"""From a scan to an FDI label map: sliding windows, the two network stages, the segment pipeline."""
