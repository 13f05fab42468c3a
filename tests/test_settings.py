from __future__ import annotations

from pathlib import Path

import pytest

from rudolph.errors import ConfigurationError
from rudolph.settings import Settings


def test_defaults_are_the_documented_ones() -> None:
    settings = Settings.from_env({})
    assert settings.analyzer == "local"
    assert settings.min_confidence == 55
    assert settings.bucket == "reindeer-dropzone"
    assert settings.aws_endpoint_url is None


def test_values_come_from_the_environment() -> None:
    settings = Settings.from_env(
        {
            "RUDOLPH_ANALYZER": "rekognition",
            "RUDOLPH_MIN_CONFIDENCE": "80",
            "RUDOLPH_MODEL_DIR": "/srv/models",
            "RUDOLPH_AWS_ENDPOINT_URL": "",  # empty means unset
        }
    )
    assert settings.analyzer == "rekognition"
    assert settings.min_confidence == 80.0
    assert settings.model_dir == Path("/srv/models")
    assert settings.aws_endpoint_url is None


def test_every_bad_value_is_named_with_its_variable() -> None:
    with pytest.raises(ConfigurationError) as caught:
        Settings.from_env({"RUDOLPH_MIN_CONFIDENCE": "150", "RUDOLPH_THREADS": "many"})
    message = str(caught.value)
    assert "RUDOLPH_MIN_CONFIDENCE='150'" in message
    assert "RUDOLPH_THREADS='many'" in message
    assert message.endswith("(fix or unset these variables)")
