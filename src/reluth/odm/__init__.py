"""CDISC ODM 1.3.2: the trial's metadata (from the form registry) and clinical data, with audit
records, e-signatures and locks, exported as one XML document; and the import of another EDC's
ODM clinical data through the domain services."""
