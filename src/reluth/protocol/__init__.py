"""The ReLUTH protocol as code: definition (YAML), eligibility rules, strata, visit schedule."""
