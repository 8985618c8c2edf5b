"""Imaging for the dosimetry study: dosimetry-safe DICOM de-identification at the site,
verification, header QC, a central content-addressed store and a synthetic Lu-177 SPECT/CT
generator."""
