"""The GCP data lifecycle on the audited core: locks and freeze, investigator e-signatures,
source-data verification (keyed on table, record and field, and on the patient and centre)."""
