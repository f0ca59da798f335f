"""Imported by the workers of a check (``--plugins ppl_suite.checking.plugin``): registers the user's
models listed in ``PPL_SUITE_CHECK_MODELS`` (``ppl_suite.checking.user_model``)."""

from ppl_suite.checking.user_model import register_from_environment

register_from_environment()
