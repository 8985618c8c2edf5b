"""Treatment administrations (second-PRRT cycles 1-2, experimental cycles 3-4) and visits."""
