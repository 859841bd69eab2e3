"""Files in and out: volumes (NRRD, NIfTI, DICOM) with true geometry, reorienting, resampling, .seg.nrrd and STL."""
