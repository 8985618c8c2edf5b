"""The trustworthy core shared by every domain: the trial context, the service context (an
authenticated actor, a transaction, the trial) and the declaration of service entry points."""
