"""monosweep's sweep platform. Data flows one way:

spec (``spec.py``) -> trials with stable ids (``grid.py``) -> what is left to run (``plan.py``) -> Ray Tune
(``execution/``: one worker per trial runs ``methods.run_trial``) -> the ledger (``ledger/``, in
``storage.py``: local or S3) -> MLflow (``tracking.py``) and reports (``report.py``). ``driver.py`` holds
one ``monosweep run`` together; ``cli.py`` parses, ``commands/`` has one module per command.
"""
