"""Registration, screening (eligibility frozen as captured), inclusion, pre-randomization data."""
