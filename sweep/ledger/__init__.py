"""The ledger, the sweep's source of truth: one record per trial (``records``), kept with its checkpoints
in the sweep's storage (``store``), and the lease that lets one driver at a time run the sweep (``lease``).
Readers of S3 keep a local copy of what they read (``cache``) and share one with every machine (``snapshot``)."""
