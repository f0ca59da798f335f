"""Calibration of the suite's standard errors as a study (``ppl_suite.studies``): its settings
(``settings``, the ``[calibration]`` section), its tables (``tables``), the plug-in (``plugin``), its
report section (``report``) and ``ppl-suite calibrate`` (``command``). The computation is
``ppl_suite.calibrate``."""
