"""Trial centres: their codes, names, opening, and per-centre patient numbering."""
