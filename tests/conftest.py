import os

import pytest
import torch

# Tests are CPU-only and must give the same results on any machine.
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.fixture(autouse=True)
def _detect_json_follows_its_schema(monkeypatch):
    """Every ``<name>.json`` that ``visionattn detect`` writes, in any test, is validated
    against the published schema (visionattn/inference/detect_result.schema.json)."""
    from visionattn.inference import command

    made = command._detect_one

    def validated(*args, **kwargs):
        json_path = made(*args, **kwargs)
        validate_detect_json(json_path)
        return json_path

    monkeypatch.setattr(command, "_detect_one", validated)


def validate_detect_json(path) -> dict:
    """The parsed JSON at ``path``, after validating it against the schema (jsonschema)."""
    import json

    import jsonschema

    from visionattn.inference.result import SCHEMA_FILE

    data = json.loads(open(path, encoding="utf-8").read())
    jsonschema.validate(data, json.loads(SCHEMA_FILE.read_text()), cls=jsonschema.Draft202012Validator)
    return data
