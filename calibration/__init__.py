"""Calibration against the trial's published summaries (ABC-SMC with pyabc).

- ``calibration.targets``: the targets file format and loader (``load_targets``);
- ``calibration.statistics``: how each target's statistic is extracted from a
  simulated trial;
- ``calibration.priors``: the priors file format and loader (``load_priors``), and
  how a parameter set changes a scenario;
- ``calibration.problem``: the model a particle runs (R replicates side by side);
- ``calibration.distance``: the distance and the epsilon floor;
- ``calibration.inference``: ABC-SMC with pyabc, resumable;
- ``calibration.posterior``: the posterior's files, the calibrated scenario and
  posterior-ensemble runs (``load_posterior``);
- ``calibration.report``: the fit report.

``peersim calibrate`` (``analysis/cli/calibrate.py``) runs it all. The package
itself imports nothing (so ``peersim --help`` stays quick): import the modules.
"""
