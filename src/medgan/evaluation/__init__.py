"""medgan.evaluation: the applications that judge synthetic images, above ``medgan.metrics`` and ``medgan.report``.

* ``evaluate``: the ``medgan evaluate`` pipeline (``evaluate.evaluate(real, fake, out, ...)`` writes
  ``metrics.json`` and ``report.html``); ``inputs`` resolves its real, synthetic and training sets.
* ``compare``: ``medgan evaluate --compare RUN_A RUN_B``, two runs against one real set with paired intervals.
* ``utility``: the ``medgan utility`` experiment (does synthetic data help a classifier on real data?) and the
  class-fidelity judge.

Nothing is imported here, so that ``medgan.evaluation.evaluate`` names the module, not the function, and each
application loads only what it needs.
"""
