"""Physical data of lutetium-177, with sources (see docs/dosimetry.md).

Only the numbers the engine uses are here, each once; every other module imports them.
"""

from __future__ import annotations

import math

#: Half-life 6.647 d (Lutathera SmPC, section 2/12); a recent measurement gives 6.639 d.
LU177_HALF_LIFE_H = 6.647 * 24.0  # 159.528 h
LU177_DECAY_CONSTANT_PER_H = math.log(2.0) / LU177_HALF_LIFE_H

#: Mean energy emitted per decay as electrons (beta 133.3 + conversion 13.5 + Auger 1.1 keV)
#: and as photons (35.1 keV), ICRP-107 / MIRD decay data as summarised in the reference sheet.
LU177_BETA_MEAN_KEV = 133.3
LU177_CONVERSION_AND_AUGER_KEV = 13.5 + 1.1
LU177_ELECTRON_MEAN_KEV = 147.9
LU177_PHOTON_MEAN_KEV = 35.1

#: Beta branches of Lu-177 -> Hf-177 (ENSDF/NNDC): end-point energy (MeV), mean energy (MeV),
#: intensity per decay. Used only to shape the voxel kernel (voxel.py).
LU177_BETA_BRANCHES: tuple[tuple[float, float, float], ...] = (
    (0.4983, 0.14935, 0.793),
    (0.3853, 0.11165, 0.091),
    (0.1765, 0.04766, 0.116),
)

#: Photons per decay (energy keV, yield), ICRP Publication 107 (Eckerman & Endo 2008) for
#: Lu-177: the six gamma lines, and the Hf X-rays grouped by shell with their energy-weighted mean
#: energy (K-alpha 54.6-55.9 keV, K-beta 62.9-65.4 keV, L 7.9-10.5 keV). X-rays below 5 keV
#: (0.03 keV per decay) are left out (absorbed within a few micrometres). Sum 35.07 keV per decay
#: (ICRP 107: gamma 31.56 + X 3.54 = 35.10 keV). Used only by the photon part of the voxel kernel.
LU177_PHOTON_LINES: tuple[tuple[float, float], ...] = (
    (208.366, 0.11),
    (112.950, 0.064),
    (321.316, 0.00219),
    (249.674, 0.00212),
    (71.646, 0.00154),
    (136.725, 0.00048),
    (55.486, 0.04487),
    (63.705, 0.01157),
    (8.606, 0.03277),
)

JOULE_PER_KEV = 1.602176634e-16

#: Local deposition of all electron energy: mGy per (MBq·s) for 1 g of tissue.
#: 147.9 keV x 1.602e-16 J/keV x 1e6 decays / 1e-3 kg x 1e3 mGy/Gy = 0.02370 mGy·g/(MBq·s).
LOCAL_DEPOSITION_MGY_G_PER_MBQ_S = LU177_ELECTRON_MEAN_KEV * JOULE_PER_KEV * 1e6 / 1e-3 * 1e3

SECONDS_PER_HOUR = 3600.0
