"""Database engine and session, base model, audit trail, migrations."""
