"""The metrics logger outside a run."""

import pytest

from marlkit.experiment.logging import MetricsLogger


def test_writing_before_the_run_starts_names_the_missing_step():
    logger = MetricsLogger(tensorboard=False)
    with pytest.raises(RuntimeError, match=r"call on_start\(runner\) before writing"):
        logger.write(0, {"loss": 1.0})
