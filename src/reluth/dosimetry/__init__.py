"""Dosimetry of [177Lu]Lu-DOTATATE: kinetics, S-values, voxel dose, BED, cumulation, pipeline."""
