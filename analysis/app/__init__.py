"""The teaching app behind ``peersim app`` (optional extra ``app``).

- ``teaching_model``: ``TeachingModel``, the peersim model behind the keyword
  parameters Mesa's controls re-create it with, and the plain-language site
  controls;
- ``lessons``: preset configurations, each with what to watch for;
- ``views``: the figures and the trial's numbers so far (matplotlib only);
- ``planner``: the planner's levers, what-ifs (as scenario files too) and their
  comparison with the baseline, as ``peersim compare`` makes it (no solara);
- ``page``: the Solara page (imports solara and Mesa's visualisation).

Only ``page`` needs the ``app`` extra. The model never imports this package.
"""
